"""One linear SVM per class with hard negative mining (R-CNN's ``rcnn_train``).

* Features: fc7 of the fine-tuned net (or pooled conv5 for the no-fine-tuning
  baseline), scaled to mean norm 20 (:mod:`spp_det.window_features`).
* Positives: the class's GT boxes (non-difficult unless
  ``dataset.use_difficult``).  Negatives: windows (GT of other classes and
  proposals) with IoU < ``neg_overlap`` (0.3) with every GT of the class.
* One pass over the images.  First image: all its negatives, then train.
  After that, negatives scoring > ``hard_thresh`` (-1.0001) and not already
  cached are added; a class is retrained when it has more than
  ``retrain_limit`` (2,000) new ones, and at the end; after each retrain,
  cached negatives scoring < ``evict_thresh`` (-1.2) are evicted.
* Optional (``prune_neg_overlap``, paper: 0.7): a new negative that overlaps
  an already chosen negative of the same image by more than that is dropped.
* Solver: scikit-learn's ``LinearSVC`` = liblinear ``-s 3`` (L2-regularised
  hinge loss, dual), ``C``, positive weight ``-w1``, bias feature ``-B``
  (``intercept_scaling``), stopping tolerance ``tol`` = liblinear's default
  0.1 as in R-CNN.  Score = ``w . x + b``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
from sklearn.svm import LinearSVC
from tqdm import tqdm

from .boxes import box_iou, nms
from .config import SvmConfig
from .distributed import Dist
from .linear import LinearModels
from .window_features import TrainingWindows, WindowFeatures

log = logging.getLogger(__name__)


@dataclass
class ClassCache:
    X_pos: np.ndarray
    X_neg: list[np.ndarray] = field(default_factory=list)
    keys_neg: list[np.ndarray] = field(default_factory=list)  # (image index, window index) rows
    num_added: int = 0
    retrains: int = 0
    mining: list[list[int]] = field(default_factory=list)  # [images seen, negatives kept] after each retrain

    def negatives(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.X_neg:
            return np.zeros((0, self.X_pos.shape[1]), np.float32), np.zeros((0, 2), np.int64)
        X, K = np.concatenate(self.X_neg), np.concatenate(self.keys_neg)
        self.X_neg, self.keys_neg = [X], [K]
        return X, K


def train_linear_svm(X_pos: np.ndarray, X_neg: np.ndarray, cfg: SvmConfig) -> tuple[np.ndarray, float]:
    """liblinear ``-s 3 -c C -w1 pos_weight -B bias`` -> (w ``(D,)``, b)."""
    if len(X_pos) == 0 or len(X_neg) == 0:
        raise ValueError("an SVM needs at least one positive and one negative")
    X = np.concatenate([X_pos, X_neg]).astype(np.float64)
    y = np.concatenate([np.ones(len(X_pos)), -np.ones(len(X_neg))])
    svm = LinearSVC(C=cfg.C, loss="hinge", penalty="l2", dual=True, class_weight={1: cfg.pos_weight, -1: 1.0},
                    fit_intercept=True, intercept_scaling=cfg.bias, tol=cfg.tol, max_iter=cfg.max_iter,
                    random_state=0)  # liblinear shuffles coordinates: fix it for reproducible models
    svm.fit(X, y)
    return svm.coef_[0].astype(np.float32), float(svm.intercept_[0])


class HardNegativeMiner:
    """R-CNN's one-pass hard negative mining for all classes at once.

    Feed images in order with :meth:`add_image`; ``W`` ``(D, C)`` and ``B``
    ``(C,)`` hold the current SVMs.  Rules (module docstring): the first image
    adds all its negatives and trains; later images add negatives scoring
    > ``hard_thresh`` under the current model; a class retrains when it has
    more than ``retrain_limit`` new ones and after the last image; each
    retrain evicts cached negatives scoring < ``evict_thresh``.
    """

    def __init__(self, positives: list[np.ndarray], cfg: SvmConfig, active: Optional[Sequence[int]] = None):
        """``positives[c]``: scaled features ``(P_c, D)`` of class ``c``'s positives; ``active``: the classes
        this miner trains (default all; under torchrun each rank its share). An inactive class keeps a zero
        model, and the scores of the active ones are still computed as columns of one ``(N, C)`` product, so
        a class's model does not depend on which others are trained beside it."""
        self.cfg = cfg
        self.caches = [ClassCache(np.asarray(p, np.float32)) for p in positives]
        dim = self.caches[0].X_pos.shape[1]
        self.active = list(range(len(positives))) if active is None else list(active)
        self.W = np.zeros((dim, len(positives)), np.float32)
        self.B = np.zeros(len(positives), np.float32)
        self.images_seen = 0

    def retrain(self, c: int) -> None:
        cache = self.caches[c]
        X_neg, K = cache.negatives()
        self.W[:, c], self.B[c] = train_linear_svm(cache.X_pos, X_neg, self.cfg)
        cache.num_added = 0
        cache.retrains += 1
        keep = X_neg @ self.W[:, c] + self.B[c] >= self.cfg.evict_thresh
        cache.X_neg, cache.keys_neg = [X_neg[keep]], [K[keep]]
        cache.mining.append([self.images_seen, int(keep.sum())])

    def add_image(self, idx: int, X: np.ndarray, is_neg: np.ndarray, boxes: np.ndarray, last: bool) -> None:
        """X: scaled features ``(N, D)``; is_neg: ``(N, C)`` bool (IoU < neg_overlap with every GT of
        the class); boxes: internal ``(N, 4)`` (for the optional overlap pruning)."""
        first = self.images_seen == 0
        self.images_seen += 1
        Z = X @ self.W + self.B
        for c in self.active:
            cache = self.caches[c]
            # one pass over the images: this image's windows cannot be cached yet, so every
            # candidate is new ("not already cached" holds by construction)
            cand = np.nonzero(is_neg[:, c] if first else is_neg[:, c] & (Z[:, c] > self.cfg.hard_thresh))[0]
            if len(cand) and self.cfg.prune_neg_overlap is not None:
                cand = cand[nms(boxes[cand], Z[cand, c], self.cfg.prune_neg_overlap)]  # drop > 70 %-overlapping negatives
            if len(cand):
                cache.X_neg.append(X[cand])
                cache.keys_neg.append(np.stack([np.full(len(cand), idx), cand], 1))
                cache.num_added += len(cand)
            if (first or cache.num_added > self.cfg.retrain_limit or last) and cache.X_neg:
                self.retrain(c)


def shared_features(records: Sequence, compute: Callable, dist: Dist = Dist()) -> Iterator[tuple]:
    """``(record, compute(record))`` for every record in order. Under torchrun (``dist.world`` = W > 1) rank
    ``r`` computes record ``g W + r`` of each group ``g`` of W and every rank receives the whole group
    (``Dist.all_gather``): the W ranks split the work of a pass every one of them needs whole (the
    mining pass's fc7 features: 8 MB per image at 1,024-d, far cheaper to send than to compute)."""
    if dist.world == 1:
        for r in records:
            yield r, compute(r)
        return
    for g in range(0, len(records), dist.world):
        i = g + dist.rank
        group = dist.all_gather(compute(records[i]) if i < len(records) else None)
        for k, x in enumerate(group[:len(records) - g]):
            yield records[g + k], x


def train_svms(data: TrainingWindows, feats: WindowFeatures, scale: float, classes: Sequence[str],
               cfg: SvmConfig, progress: bool = True, only: Optional[Sequence[int]] = None,
               dist: Dist = Dist()) -> LinearModels:
    """One SVM per class on ``feats`` (scaled by ``scale``) of ``data``'s windows: GT boxes of the class
    as positives, R-CNN's one-pass hard negative mining over the proposals (IoU < ``neg_overlap``
    with every GT of the class, difficult ones included). ``only``: train these class indices (the
    others keep zero models and no ``info``; :meth:`LinearModels.merge` puts the shares together).
    ``dist``: torchrun's ranks, which then share the mining pass's feature computation
    (:func:`shared_features`); every rank must call this together."""
    records, C, kind = data.records, len(classes), feats.kind
    active = list(range(C)) if only is None else list(only)
    t0 = time.perf_counter()

    # positives: GT boxes of each class
    pos: list[list[np.ndarray]] = [[] for _ in range(C)]
    for r in tqdm(records, desc=f"svm {kind} positives", unit="img", disable=not progress, leave=False):
        gt, labels = r.gt_for_training(data.use_difficult)
        if np.isin(labels, active).any():
            x = feats(data.inputs.load(r), gt, (r.height, r.width)) * scale
            for c in active:
                if (labels == c).any():
                    pos[c].append(x[labels == c])
    for c in active:
        if not pos[c]:
            raise ValueError(f"class {classes[c]!r} has no (non-difficult) training object in split {data.split!r}")

    def features(r) -> np.ndarray:
        return feats(data.inputs.load(r), data.windows(r)[0], (r.height, r.width)) * scale

    mined = shared_features(records, features, dist)
    if not active:  # more ranks than classes: this one only computes its share of the features
        dim = max((x.shape[1] for _, x in mined), default=0)
        return LinearModels(np.zeros((C, dim, 1)), np.zeros((C, 1)), scale, list(classes), f"svm_{kind}")
    dim = next(p[0].shape[1] for p in pos if p)
    miner = HardNegativeMiner([np.concatenate(p) if p else np.zeros((0, dim), np.float32) for p in pos], cfg,
                              active)
    for idx, (r, X) in enumerate(tqdm(mined, desc=f"svm {kind} mining", unit="img", total=len(records),
                                      disable=not progress)):
        boxes, _ = data.windows(r)
        gt_all, lab_all = r.gt_for_training(True)  # negatives avoid every GT, difficult ones too
        iou = box_iou(boxes, gt_all) if len(gt_all) else np.zeros((len(boxes), 0))
        is_neg = np.stack([iou[:, lab_all == c].max(1) < cfg.neg_overlap if (lab_all == c).any()
                           else np.ones(len(boxes), bool) for c in range(C)], 1)
        miner.add_image(idx, X, is_neg, boxes, last=idx == len(records) - 1)
    W, B, caches = miner.W, miner.B, miner.caches
    dt = time.perf_counter() - t0
    info = {classes[i]: {"pos": len(caches[i].X_pos), "neg_cached": int(sum(len(x) for x in caches[i].X_neg)),
                         "retrains": caches[i].retrains, "mining": caches[i].mining} for i in active}
    log.info("SVMs (%s, %d-d) trained in %.1f s: %s", kind, W.shape[0], dt,
             {c: {k: v for k, v in d.items() if k != "mining"} for c, d in info.items()})
    return LinearModels(W.T[:, :, None], B[:, None], scale, list(classes), f"svm_{kind}", info)
