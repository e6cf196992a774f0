"""Class-specific bounding-box regression on SPP-pooled conv5 (R-CNN appendix C).

Training windows: GT boxes and proposals whose best IoU with a GT (+1 rule) is
>= ``min_overlap`` (0.5), assigned to that GT and its class.  Targets
(widths with the +1 rule, ``w = x2 - x1 + 1``, centre ``x1 + w / 2``)::

    dx = (gx - px) / pw,  dy = (gy - py) / ph,  dw = log(gw / pw),  dh = log(gh / ph)

Ridge regression (scikit-learn ``Ridge``, intercept not penalised), lambda =
``lam`` (4000), per class on pooled conv5 scaled to mean norm 20.
``max_per_class`` windows at most per class (seeded sample; null = all) bound
the memory: VOC 2007 has ~10^5 such windows x 12,800 floats; and the classes
are trained in groups whose features fit ``max_memory_gb`` (each group one
pass over the maps of its images), which leaves every model unchanged.
"""
from __future__ import annotations

import logging
import time
from typing import Optional, Sequence

import numpy as np
from sklearn.linear_model import Ridge
from tqdm import tqdm

from .boxes import box_iou
from .linear import LinearModels
from .config import BboxRegConfig
from .window_features import TrainingWindows, WindowFeatures

log = logging.getLogger(__name__)


def _centres(b: np.ndarray) -> tuple[np.ndarray, ...]:
    w = b[:, 2] - b[:, 0] + 1.0
    h = b[:, 3] - b[:, 1] + 1.0
    return b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w, h


def encode(proposals: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Regression targets ``(N, 4)`` (dx, dy, dw, dh) from internal boxes to internal GT boxes."""
    px, py, pw, ph = _centres(np.asarray(proposals, np.float64))
    gx, gy, gw, gh = _centres(np.asarray(gt, np.float64))
    return np.stack([(gx - px) / pw, (gy - py) / ph, np.log(gw / pw), np.log(gh / ph)], 1)


def decode(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode`: apply ``(N, 4)`` deltas to internal boxes ``(N, 4)``."""
    px, py, pw, ph = _centres(np.asarray(boxes, np.float64))
    d = np.asarray(deltas, np.float64)
    cx, cy = d[:, 0] * pw + px, d[:, 1] * ph + py
    w, h = np.exp(d[:, 2]) * pw, np.exp(d[:, 3]) * ph
    return np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w - 1.0, cy + 0.5 * h - 1.0], 1).astype(np.float32)


def class_groups(sizes: Sequence[int], budget: float) -> list[list[int]]:
    """Consecutive groups of the indices of ``sizes`` (bytes) whose sums stay within ``budget``; an item
    larger than the budget is a group of its own."""
    groups: list[list[int]] = []
    total = 0
    for i, n in enumerate(sizes):
        if groups and total + n <= budget:
            groups[-1].append(i)
            total += n
        else:
            groups.append([i])
            total = n
    return groups


def train_bbox_regressors(data: TrainingWindows, feats: WindowFeatures, scale: float, classes: Sequence[str],
                          bcfg: BboxRegConfig, seed: int = 0, progress: bool = True,
                          only: Optional[Sequence[int]] = None) -> LinearModels:
    """Per-class ridge regressors (module docstring) on ``feats`` (scaled by ``scale``) of ``data``'s
    windows that overlap a GT of the class by ``min_overlap`` or more. ``only``: train these class
    indices (the others keep identity regressors and no ``info``; :meth:`LinearModels.merge` puts the
    shares together); the windows of each class are sampled as when all are trained."""
    records, C = data.records, len(classes)
    active = list(range(C)) if only is None else list(only)
    cache = data.inputs
    t0 = time.perf_counter()
    # pass 1: choose windows (indices only)
    chosen = []  # (record index, boxes, targets, class)
    for i, r in enumerate(records):
        gt, labels = r.gt_for_training(data.use_difficult)
        if not len(gt):
            continue
        boxes, _ = data.windows(r)
        iou = box_iou(boxes, gt)
        best = iou.argmax(1)
        ok = iou[np.arange(len(boxes)), best] >= bcfg.min_overlap
        if ok.any():
            chosen.append((i, boxes[ok], encode(boxes[ok], gt[best[ok]]), labels[best[ok]]))
    rng = np.random.default_rng([seed, 19])
    per_class = [np.concatenate([np.stack([np.full(len(t), k), np.arange(len(t))], 1)[cl == c]
                                 for k, (_, _, t, cl) in enumerate(chosen)]) if chosen else np.zeros((0, 2), int)
                 for c in range(C)]
    for c in range(C):
        cap = bcfg.max_per_class
        if cap and len(per_class[c]) > cap:
            per_class[c] = per_class[c][np.sort(rng.choice(len(per_class[c]), cap, replace=False))]
    # pass 2, per group of classes whose features fit max_memory_gb: the features of their chosen windows,
    # image by image, then one ridge fit per class
    dim = feats.pooler.dim
    Wt = np.zeros((C, dim, 4), np.float32)
    bt = np.zeros((C, 4), np.float32)
    counts = {}
    groups = class_groups([len(per_class[c]) * dim * 4 for c in active], bcfg.max_memory_gb * 2 ** 30)
    if len(groups) > 1:
        log.info("bbox regression: %d classes in %d groups of at most %.1f GB of features", len(active),
                 len(groups), bcfg.max_memory_gb)
    for group in groups:
        cls = [active[g] for g in group]
        X = {c: np.zeros((len(per_class[c]), dim), np.float32) for c in cls}
        Y = {c: np.zeros((len(per_class[c]), 4), np.float64) for c in cls}
        where: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for c in cls:
            p = per_class[c]
            for k in np.unique(p[:, 0]):
                rows = np.nonzero(p[:, 0] == k)[0]
                where.setdefault(int(k), []).append((c, rows, p[rows, 1]))
        for k in tqdm(sorted(where), desc="bbox-reg features", unit="img", disable=not progress):
            i, boxes, targets, _ = chosen[k]
            r = records[i]
            fmap = cache.load(r)
            for c, rows, win in where[k]:
                X[c][rows] = feats(fmap, boxes[win], (r.height, r.width)) * scale
                Y[c][rows] = targets[win]
        for c in cls:
            counts[classes[c]] = len(X[c])
            if len(X[c]) == 0:
                log.warning("bbox regression: class %s has no training window; identity regressor", classes[c])
                continue
            model = Ridge(alpha=bcfg.lam, fit_intercept=True).fit(X[c], Y[c])
            Wt[c], bt[c] = model.coef_.T, model.intercept_
            X[c] = None  # free as we go
    counts = {classes[c]: counts[classes[c]] for c in active}  # in class order
    log.info("bbox regressors trained in %.1f s on %s windows", time.perf_counter() - t0, counts)
    return LinearModels(Wt, bt, scale, list(classes), "bbox", {c: {"windows": n} for c, n in counts.items()})

