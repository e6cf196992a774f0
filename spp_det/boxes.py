"""Box conventions, IoU, flips and clipping: the one place they are defined.

Internal convention (used by every library function unless a docstring says
otherwise): a box array is float ``(N, 4)`` holding ``x1, y1, x2, y2`` as
**0-based, inclusive** pixel indices of the original image, exactly like VOC's
XML but shifted by one.  A box's width is ``x2 - x1 + 1`` (the "+1 pixel rule"
of the VOC devkit and of the original R-CNN / SPP-net code).

Conversions to other conventions happen only at boundaries:

* VOC files (XML, comp4 result files) are 1-based inclusive:
  :func:`voc_to_internal` / :func:`internal_to_voc`.
* torchvision.ops counts width as ``x2 - x1`` (exclusive end): :func:`to_exclusive`
  adds 1 to ``x2, y2`` so that ``torchvision.ops.box_iou`` on the converted boxes
  equals the +1-rule IoU of the originals.
* R-CNN's selective-search ``.mat`` files are ``[y1 x1 y2 x2]`` 1-based:
  handled in :mod:`proposals.rcnn_mat`.
"""
from __future__ import annotations

import numpy as np
import torch
import torchvision.ops as tvops

__all__ = [
    "voc_to_internal", "internal_to_voc", "to_exclusive", "box_iou", "flip_boxes", "clip_boxes", "nms",
]


def voc_to_internal(boxes: np.ndarray) -> np.ndarray:
    """1-based inclusive VOC boxes ``(N, 4)`` -> internal 0-based inclusive (float32)."""
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) - 1.0


def internal_to_voc(boxes: np.ndarray) -> np.ndarray:
    """Internal 0-based inclusive boxes ``(N, 4)`` -> VOC 1-based inclusive (float32)."""
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4) + 1.0


def to_exclusive(boxes: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Internal inclusive boxes -> torchvision's exclusive-end boxes (``x2 + 1, y2 + 1``), same float dtype."""
    t = torch.as_tensor(boxes).reshape(-1, 4)
    t = t if t.is_floating_point() else t.float()
    return t + t.new_tensor([0.0, 0.0, 1.0, 1.0])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``(N, M)`` of inclusive boxes with the +1 pixel rule (VOC devkit).

    Both inputs use the same inclusive convention (0- or 1-based: IoU does not
    care).  Computed by ``torchvision.ops.box_iou`` on the exclusive form, in
    float64 so that IoU == 0.5 is exact for integer boxes.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float64)
    return tvops.box_iou(to_exclusive(torch.from_numpy(a)), to_exclusive(torch.from_numpy(b))).numpy()


def flip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Horizontal flip of internal (0-based inclusive) boxes in an image ``width`` wide.

    ``x' = W - 1 - x`` with x1/x2 swapped (VOC 1-based: ``x' = W + 1 - x``).
    """
    b = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    x1 = width - 1 - b[:, 2]
    x2 = width - 1 - b[:, 0]
    b[:, 0], b[:, 2] = x1, x2
    return b


def clip_boxes(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip internal boxes to ``[0, W-1] x [0, H-1]``."""
    b = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width - 1)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height - 1)
    return b


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS on internal inclusive boxes; returns kept indices, highest score first.

    Uses ``torchvision.ops.nms`` on the exclusive form, so overlaps follow the
    +1 rule like the original code.
    """
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    keep = tvops.nms(to_exclusive(np.asarray(boxes, dtype=np.float32)),
                     torch.as_tensor(np.asarray(scores, dtype=np.float32)), float(iou_threshold))
    return keep.numpy()


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                device: torch.device | str = "cpu") -> np.ndarray:
    """:func:`nms` within each label at once (boxes of different labels never suppress each other);
    returns kept indices, highest score first.  One ``torchvision.ops.batched_nms`` call instead of one
    :func:`nms` per class (20 classes: 4.2 ms per image on the H100 machine's CPU; docs/BENCHMARKS.md,
    "On a GPU").  ``device``: where it runs (boxes and scores are moved there; kept indices come back)."""
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    keep = tvops.batched_nms(to_exclusive(np.asarray(boxes, dtype=np.float32)).to(device),
                             torch.as_tensor(np.asarray(scores, dtype=np.float32)).to(device),
                             torch.as_tensor(np.asarray(labels, dtype=np.int64)).to(device), float(iou_threshold))
    return keep.cpu().numpy()
