"""Scoring windows, box regression, per-class NMS: from conv map + proposals to detections.

For each class: keep windows scoring > ``score_thresh`` (-1.5); with
``bbox_reg_order = "before_nms"`` (default) regress them, clip to the image,
then NMS at ``nms`` (0.3); with ``"after_nms"`` (released code) NMS the raw
windows, then regress and clip the survivors.  At most ``max_per_class``
(100) detections per class per image, highest scores first.
All boxes are internal (0-based inclusive, original-image pixels).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .bbox_reg import decode
from .boxes import clip_boxes, nms
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


def svm_scores(features: np.ndarray, svm: dict) -> np.ndarray:
    """``(N, C)`` scores ``(scale * x) . w + b`` of unscaled features ``(N, D)``."""
    return (features * svm["scale"]) @ svm["W"] + svm["b"]


def bbox_deltas(pool5: np.ndarray, reg: dict, cls: int) -> np.ndarray:
    """``(N, 4)`` regression output of class ``cls`` for unscaled pooled features ``(N, D)``."""
    return (pool5 * reg["scale"]) @ reg["W"][cls] + reg["b"][cls]


def postprocess(boxes: np.ndarray, scores: np.ndarray, image_hw: tuple[int, int], cfg: TestConfig,
                pool5: Optional[np.ndarray] = None, reg: Optional[dict] = None) -> Detections:
    """Per-class threshold, (regression,) NMS and cap; see the module docstring.

    boxes: ``(N, 4)`` windows; scores: ``(N, C)``; pool5: ``(N, D)`` unscaled
    pooled features (needed with ``reg``).
    """
    H, W = image_hw
    out = []
    for c in range(scores.shape[1]):
        keep = np.nonzero(scores[:, c] > cfg.score_thresh)[0]
        if not len(keep):
            continue
        b, s = boxes[keep], scores[keep, c]
        if reg is not None and cfg.bbox_reg_order == "before_nms":
            b = clip_boxes(decode(b, bbox_deltas(pool5[keep], reg, c)), H, W)
        k = nms(b, s, cfg.nms)[: cfg.max_per_class]
        b, s = b[k], s[k]
        if reg is not None and cfg.bbox_reg_order == "after_nms":
            b = clip_boxes(decode(b, bbox_deltas(pool5[keep[k]], reg, c)), H, W)
        out.append(Detections(clip_boxes(b, H, W), s.astype(np.float32), np.full(len(s), c, np.int64)))
    return Detections.concat(out)


def combine(parts: list[Detections], num_classes: int, cfg: TestConfig) -> Detections:
    """Union of several models' detections of one image, then per-class NMS (model combination)."""
    allx = Detections.concat(parts)
    out = []
    for c in range(num_classes):
        m = allx.labels == c
        if m.any():
            k = nms(allx.boxes[m], allx.scores[m], cfg.nms)[: cfg.max_per_class]
            out.append(Detections(allx.boxes[m][k], allx.scores[m][k], allx.labels[m][k]))
    return Detections.concat(out)
