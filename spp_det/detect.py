"""Scoring windows, box regression, per-class NMS: from conv map + proposals to detections.

For each class: keep windows scoring > ``score_thresh`` (-1.5); with
``bbox_reg_order = "before_nms"`` (default) regress them, clip to the image,
then NMS at ``nms`` (0.3); with ``"after_nms"`` (released code) NMS the raw
windows, then regress and clip the survivors.  At most ``max_per_class``
(100) detections per class per image, highest scores first.  With ``box_voting``
(not in the paper; off by default) each detection NMS keeps then takes the
score-weighted mean box of its class's candidates that overlap it by IoU >=
``box_voting`` (:func:`box_voting`).
All boxes are internal (0-based inclusive, original-image pixels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from .bbox_reg import decode
from .linear import LinearModels
from .boxes import batched_nms, box_iou, clip_boxes, nms
from .config import TestConfig


@dataclass
class Detections:
    """boxes ``(K, 4)`` internal; scores ``(K,)``; labels ``(K,)`` class indices."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @staticmethod
    def concat(parts: list["Detections"]) -> "Detections":
        if not parts:
            return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
        return Detections(np.concatenate([p.boxes for p in parts]), np.concatenate([p.scores for p in parts]),
                          np.concatenate([p.labels for p in parts]))




def candidates(boxes: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int], cfg: TestConfig,
               pool5: Union[np.ndarray, torch.Tensor, None] = None, reg: Optional[LinearModels] = None) -> Detections:
    """Per class, the windows scoring > ``score_thresh``, regressed (if ``reg``) and clipped: no NMS.

    What model combination takes the union of.  boxes: ``(N, 4)``; scores:
    ``(N, C)``; pool5: ``(N, D)`` unscaled pooled features (needed with ``reg``; an array or a tensor,
    on a GPU too: :class:`LinearModels` regresses where it lies).
    """
    return averaged_candidates(boxes, [scores], image_hw, cfg, [pool5], None if reg is None else [reg])


def averaged_candidates(boxes: np.ndarray, scores: Sequence[np.ndarray], image_hw: tuple[int, int], cfg: TestConfig,
                        pool5: Optional[Sequence[Union[np.ndarray, torch.Tensor, None]]] = None,
                        regs: Optional[Sequence[LinearModels]] = None) -> Detections:
    """:func:`candidates` of several models that scored the same windows: per class, the windows whose
    mean score is > ``score_thresh``, moved by the mean of the models' regression deltas (if
    ``regs``), clipped (model combination by averaging; not in the paper).  One model: exactly
    :func:`candidates`.

    Conventions: boxes ``(N, 4)`` internal, the windows every model scored; ``scores[m]`` ``(N, C)``
    model m's scores; ``pool5[m]`` ``(N, D_m)`` its unscaled pooled features and ``regs[m]`` its
    regressors (the models' features may differ in width: each regressor reads its own model's).
    """
    H, W = image_hw
    mean = scores[0] if len(scores) == 1 else sum(np.asarray(s, np.float64) for s in scores) / len(scores)
    picks = [(c, keep) for c in range(mean.shape[1]) if len(keep := np.nonzero(mean[:, c] > cfg.score_thresh)[0])]
    if not picks:
        return Detections.concat([])
    rows = np.concatenate([keep for _, keep in picks])  # all classes at once, class by class
    labels = np.concatenate([np.full(len(keep), c, np.int64) for c, keep in picks])
    if regs is None:
        b = boxes[rows]
    else:
        deltas = [np.concatenate(r.class_deltas(x, picks)) for r, x in zip(regs, pool5)]
        b = decode(boxes[rows], deltas[0] if len(deltas) == 1 else sum(deltas) / len(deltas))
    return Detections(clip_boxes(b, H, W), mean[rows, labels].astype(np.float32), labels)


def postprocess(boxes: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int], cfg: TestConfig,
                pool5: Union[np.ndarray, torch.Tensor, None] = None, reg: Optional[LinearModels] = None) -> Detections:
    """Per-class threshold, (regression,) NMS and cap; see the module docstring.

    boxes: ``(N, 4)`` windows; scores: ``(N, C)``; pool5: ``(N, D)`` unscaled
    pooled features (needed with ``reg``; array or tensor, as in :func:`candidates`).
    """
    if reg is None or cfg.bbox_reg_order == "before_nms":
        return combine([candidates(boxes, scores, image_hw, cfg, pool5, reg)], cfg)
    H, W = image_hw  # after_nms (released code): NMS the raw windows, then regress the survivors
    out = []
    for c in range(scores.shape[1]):
        keep = np.nonzero(scores[:, c] > cfg.score_thresh)[0]
        if not len(keep):
            continue
        k = nms(boxes[keep], scores[keep, c], cfg.nms)[: cfg.max_per_class]
        b = clip_boxes(decode(boxes[keep[k]], reg.deltas(pool5[keep[k]], c)), H, W)
        out.append(Detections(b, scores[keep[k], c].astype(np.float32), np.full(len(k), c, np.int64)))
    return Detections.concat(out)


def combine(parts: list[Detections], cfg: TestConfig, device: Union[torch.device, str] = "cpu") -> Detections:
    """Union of detections of one image (e.g. several models' :func:`candidates`), then per-class NMS
    at ``cfg.nms`` and the ``max_per_class`` cap, highest scores first (model combination), then
    :func:`box_voting` among the whole union when ``cfg.box_voting`` is set.  Output
    grouped by class in label order.  ``device``: where the NMS runs (the detector's GPU: 1.1 ms per image
    there against 2.2 ms on the H100 machine's CPU; docs/BENCHMARKS.md, "On a GPU").  Candidates are
    boxes and scores in numpy; only the kept indices come back."""
    allx = Detections.concat(parts)
    keep = batched_nms(allx.boxes, allx.scores, allx.labels, cfg.nms, device)  # score order, all classes
    labels = allx.labels[keep]
    order = np.argsort(labels, kind="stable")  # by class, score order within each
    keep, labels = keep[order], labels[order]
    rank = np.arange(len(keep)) - np.searchsorted(labels, labels)  # place within its class
    keep = keep[rank < cfg.max_per_class]
    kept = Detections(allx.boxes[keep], allx.scores[keep], allx.labels[keep])
    return kept if cfg.box_voting is None else box_voting(kept, allx, cfg.box_voting)


def box_voting(kept: Detections, pool: Detections, iou_threshold: float) -> Detections:
    """Box voting (Gidaris and Komodakis, "Object detection via a multi-region & semantic
    segmentation-aware CNN model", ICCV 2015, section 5): each detection of ``kept`` takes as its box
    the mean of the boxes of ``pool`` of its class that overlap it by IoU >= ``iou_threshold`` (+1
    rule), weighted by ``max(score, 0)``; its score and label stay.  A detection no positive-scoring
    box of ``pool`` overlaps keeps its own box.

    Conventions: ``kept`` (K boxes) and ``pool`` (M boxes, usually the candidates ``kept`` was chosen
    from by NMS, so each kept box votes for itself) hold internal boxes ``(., 4)`` of one image;
    returns K detections in ``kept``'s order.  A mean of boxes is not clipped again: every box of
    ``pool`` lies in the image when the pool was (:func:`candidates` clips).
    """
    boxes = kept.boxes.astype(np.float64)
    for c in np.unique(kept.labels):
        k = np.nonzero(kept.labels == c)[0]
        p = np.nonzero(pool.labels == c)[0]
        if not len(p):
            continue
        w = np.maximum(pool.scores[p].astype(np.float64), 0.0)[None, :] * (box_iou(kept.boxes[k], pool.boxes[p])
                                                                            >= iou_threshold)
        total = w.sum(1)
        ok = total > 0
        boxes[k[ok]] = (w[ok] @ pool.boxes[p].astype(np.float64)) / total[ok, None]
    return Detections(boxes.astype(np.float32), kept.scores, kept.labels)
