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
from typing import Optional, Union

import numpy as np
import torch

from .bbox_reg import decode
from .linear import LinearModels
from .boxes import batched_nms, clip_boxes, nms
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
    H, W = image_hw
    picks = [(c, keep) for c in range(scores.shape[1]) if len(keep := np.nonzero(scores[:, c] > cfg.score_thresh)[0])]
    if not picks:
        return Detections.concat([])
    rows = np.concatenate([keep for _, keep in picks])  # all classes at once, class by class
    labels = np.concatenate([np.full(len(keep), c, np.int64) for c, keep in picks])
    b = boxes[rows] if reg is None else decode(boxes[rows], np.concatenate(reg.class_deltas(pool5, picks)))
    return Detections(clip_boxes(b, H, W), scores[rows, labels].astype(np.float32), labels)


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
    at ``cfg.nms`` and the ``max_per_class`` cap, highest scores first (model combination).  Output
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
    return Detections(allx.boxes[keep], allx.scores[keep], allx.labels[keep])
