"""Whether a mirrored object is still of its class: the check behind ``finetune.use_flipped: check``.

The paper fine-tunes on the training split and its horizontal mirror. That assumes a mirrored object keeps
its class: true of VOC's 20 classes and of the demo, silhouettes and photos families, false of characters,
digits and chiral signs (on the glyphs family's train/val split the mirrors cost fine-tuned fc7 5.0 mAP;
docs/BENCHMARKS.md, "A fourth family"). :func:`check_mirrors` tests the assumption on the training split
itself, before fine-tuning, from the features fine-tuning starts from:

1. the pooled features (frozen trunk, :meth:`WindowSource.pool`) of the objects (ground-truth boxes,
   difficult ones left out) of up to ``images`` training images (a seeded sample), of the same objects in
   the mirrored views, and of up to ``bg_per_image`` proposals per image that overlap no object by more
   than ``bg_overlap`` (a background class), all multiplied by one number that brings the mean norm of the
   objects' features to 20 (R-CNN's feature scaling);
2. a multinomial logistic regression (scikit-learn, the classes + background) in stratified k-fold
   cross-validation over the objects: each fold's model learns from the other folds' originals (and the
   background windows not held out), and is scored on its held-out originals (``original``: how often
   they get their class) and on the mirrors of the same held-out objects (``mirrored``);
3. mirrors are used when ``mirrored >= min_ratio * original``.

On the train splits of the four families, ``mirrored / original``: demo 0.988, silhouettes 0.985, photos
0.995, glyphs 0.614 (a mirrored ``K`` is taken for a ``K`` 2 % of the time, an original 52 %); ``min_ratio``
0.85 lies between (docs/BENCHMARKS.md, "Mirrored views: the check", ``benchmarks/bench_mirror_check.py``).
The decision is one for the whole split: a dataset with one chiral class among many symmetric ones keeps
its mirrors (the per-class accuracies, in ``mirrors.json``, show such a class).

Conventions
-----------
``records``: the unmirrored training views (:class:`spp_det.data.voc.ImageRecord`); ``inputs.load(r)``
gives what ``pooler`` pools from for a view ``r`` (its conv maps, or the image in R-CNN mode), mirrored
views included (``r.flip()``); ``proposals(r)``: internal ``(N, 4)`` boxes of the unmirrored view.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .boxes import box_iou
from .data.voc import ImageRecord
from .features import InputSource, WindowSource

log = logging.getLogger(__name__)


@dataclass
class MirrorCheck:
    """The outcome of :func:`check_mirrors`: accuracies on held-out objects and their mirrors (overall
    and per class, ``{name: [original, mirrored, objects]}``) and the decision ``use_mirrors``."""

    use_mirrors: bool
    original: float
    mirrored: float
    min_ratio: float
    objects: int
    images: int
    background: int
    seconds: float
    per_class: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def ratio(self) -> float:
        return self.mirrored / self.original if self.original > 0 else 1.0

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}

    def summary(self) -> str:
        if self.reason:
            return f"mirrored views {'used' if self.use_mirrors else 'not used'}: {self.reason}"
        return (f"mirrored views {'used' if self.use_mirrors else 'NOT used'}: held-out objects get their class "
                f"{100 * self.original:.1f} % of the time, their mirrors {100 * self.mirrored:.1f} % (ratio "
                f"{self.ratio:.3f}, mirrors used at >= {self.min_ratio}; {self.objects} objects of {self.images} "
                f"images, {self.background} background windows, {self.seconds:.1f} s)")


@torch.no_grad()
def check_mirrors(records: Sequence[ImageRecord], classes: Sequence[str], inputs: InputSource,
                  pooler: WindowSource, proposals: Callable[[ImageRecord], np.ndarray], *, images: int = 500,
                  bg_per_image: int = 8, bg_overlap: float = 0.3, folds: int = 5, C: float = 0.1,
                  min_ratio: float = 0.85, seed: int = 0) -> MirrorCheck:
    """Whether fine-tuning should use mirrored views of ``records`` (module docstring)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    picked = [records[i] for i in sorted(rng.permutation(len(records))[:images])]
    X, Xm, y, bg = [], [], [], []
    for r in picked:
        gt, labels = r.gt_for_training(False)
        if len(gt) == 0:
            continue
        hw, mirror, maps = (r.height, r.width), r.flip(), inputs.load(r)
        X.append(_pooled(pooler, maps, gt, hw))
        Xm.append(_pooled(pooler, inputs.load(mirror), mirror.gt_for_training(False)[0], hw))
        y.append(labels)
        props = np.asarray(proposals(r), np.float32).reshape(-1, 4)
        props = props[box_iou(props, gt).max(1) < bg_overlap] if len(props) else props
        if len(props):
            bg.append(_pooled(pooler, maps, props[rng.permutation(len(props))[:bg_per_image]], hw))
    y = np.concatenate(y) if y else np.zeros(0, int)
    counts = np.bincount(y, minlength=len(classes)) if len(y) else np.zeros(len(classes), int)
    present = counts[counts > 0]
    k = int(min(folds, present.min())) if len(present) else 0
    if len(present) < 2 or k < 2 or not bg:
        why = ("fewer than 2 classes with objects" if len(present) < 2 else
               "a class has fewer than 2 objects" if k < 2 else "no background windows")
        return MirrorCheck(True, float("nan"), float("nan"), min_ratio, len(y), len(picked), 0,
                           time.perf_counter() - t0, reason=f"the check cannot run ({why}); the paper's choice kept")
    X, Xm, B = np.concatenate(X), np.concatenate(Xm), np.concatenate(bg)
    scale = 20.0 / max(float(np.linalg.norm(X, axis=1).mean()), 1e-12)
    X, Xm, B = X * scale, Xm * scale, B * scale
    background = len(classes)  # the background class's label
    bg_fold = np.arange(len(B)) % k
    hit, hit_m = np.zeros(len(y), bool), np.zeros(len(y), bool)
    for f, (train, held) in enumerate(StratifiedKFold(k, shuffle=True, random_state=seed).split(X, y)):
        model = LogisticRegression(C=C, max_iter=2000).fit(
            np.concatenate([X[train], B[bg_fold != f]]),
            np.concatenate([y[train], np.full(int((bg_fold != f).sum()), background)]))
        hit[held] = model.predict(X[held]) == y[held]
        hit_m[held] = model.predict(Xm[held]) == y[held]
    original, mirrored = float(hit.mean()), float(hit_m.mean())
    per_class = {classes[c]: [float(hit[y == c].mean()), float(hit_m[y == c].mean()), int(counts[c])]
                 for c in range(len(classes)) if counts[c]}
    return MirrorCheck(mirrored >= min_ratio * original, original, mirrored, min_ratio, len(y), len(picked),
                       len(B), time.perf_counter() - t0, per_class)


def _pooled(pooler: WindowSource, inputs, boxes: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return pooler.pool(inputs, np.asarray(boxes, np.float32), hw).float().cpu().numpy()
