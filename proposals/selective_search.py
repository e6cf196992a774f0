"""Selective search producing internal boxes: R-CNN's fast mode re-implemented, or OpenCV's (ximgproc).

``mode``: ``rcnn`` (the default) is R-CNN's fast mode (:mod:`proposals.hierarchical_grouping`: HSV
and Lab colour spaces, k in {base_k, base_k + inc_k} = {50, 100}, two similarity strategies, ranked
by hierarchy level x random as R-CNN ranks them, as OpenCV does with ``ranking="opencv"``, or the two
orders alternately with ``ranking="interleaved"``);
``fast`` / ``quality`` are OpenCV's strategy sets (fast: the same colour spaces, k and strategies;
boxes ranked by OpenCV's own random order).
Output boxes: float32 ``(N, 4)`` ``x1, y1, x2, y2``, 0-based inclusive pixel
indices of the image passed in, in the method's ranking order, duplicates
and boxes under ``min_size`` px on either side removed, at most ``max_boxes``; with ``defer_iou``,
near-duplicates of better-ranked boxes go behind the others before the cap
(:func:`proposals.hierarchical_grouping.defer_near_duplicates`).
Images with a side over ``max_image_side`` are searched downscaled, their boxes mapped back.
"""
from __future__ import annotations

import ctypes
from dataclasses import asdict, dataclass
from typing import Optional

import cv2
import numpy as np


@dataclass(frozen=True)
class SearchParams:
    mode: str = "rcnn"
    base_k: int = 50
    inc_k: int = 50
    sigma: float = 0.8
    max_boxes: int = 2000
    min_size: int = 8
    max_image_side: Optional[int] = 1000  # as proposals.max_image_side (tests/test_proposals.py checks they agree)
    defer_iou: Optional[float] = None
    ranking: str = "rcnn"  # mode rcnn only (OpenCV's modes rank as OpenCV does): hierarchical_grouping.RANKINGS

    def to_dict(self) -> dict:
        return asdict(self)


def _seed_c_rand(seed: int) -> None:
    """Seed libc's ``rand()``, which OpenCV's selective search uses to rank regions.

    ``cv2.setRNGSeed`` does not reach it; without this, two runs on the same
    image return differently ordered (hence differently truncated) boxes.
    """
    try:
        ctypes.CDLL(None).srand(seed)
    except (OSError, AttributeError):  # pragma: no cover - non-POSIX platforms
        pass


def unique_boxes(boxes: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct box, in original order."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    _, first = np.unique(np.asarray(boxes), axis=0, return_index=True)
    return np.sort(first)


def _opencv_boxes(img: np.ndarray, params: SearchParams) -> np.ndarray:
    if not hasattr(cv2, "ximgproc"):  # (mode rcnn needs only plain OpenCV)
        raise ImportError("cv2.ximgproc is missing: install opencv-contrib-python(-headless), not opencv-python")
    _seed_c_rand(0)  # OpenCV ranks regions with C's rand(): seed it so runs are reproducible
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(img)
    if params.mode == "fast":
        ss.switchToSelectiveSearchFast(params.base_k, params.inc_k, params.sigma)
    elif params.mode == "quality":
        ss.switchToSelectiveSearchQuality(params.base_k, params.inc_k, params.sigma)
    else:
        raise ValueError(f"unknown selective search mode {params.mode!r}")
    rects = np.asarray(ss.process(), dtype=np.float64).reshape(-1, 4)  # x, y, w, h
    return np.stack([rects[:, 0], rects[:, 1], rects[:, 0] + rects[:, 2] - 1, rects[:, 1] + rects[:, 3] - 1], 1)


def selective_search(image_bgr: np.ndarray, params: SearchParams = SearchParams()) -> np.ndarray:
    """Run selective search on a BGR uint8 image; see the module docstring for the output."""
    h, w = image_bgr.shape[:2]
    r = 1.0
    img = image_bgr
    if params.max_image_side and max(h, w) > params.max_image_side:
        r = params.max_image_side / max(h, w)
        img = cv2.resize(image_bgr, (max(1, round(w * r)), max(1, round(h * r))), interpolation=cv2.INTER_AREA)
    if params.mode == "rcnn":
        from .hierarchical_grouping import GroupingParams, hierarchical_grouping
        ks = (params.base_k, params.base_k + params.inc_k)
        # min_side 1 and no cap here: both apply below, after the boxes are mapped back
        boxes = hierarchical_grouping(img, GroupingParams(ks=ks, sigma=params.sigma, ranking=params.ranking,
                                                          min_side=1, max_boxes=1 << 30)).astype(np.float64)
    else:
        boxes = _opencv_boxes(img, params)
    if r != 1.0:  # back to the original image's pixel indices (edges scale as extents)
        boxes[:, :2] = np.floor(boxes[:, :2] / r)
        boxes[:, 2:] = np.ceil((boxes[:, 2:] + 1) / r) - 1
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w - 1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h - 1)
    boxes = boxes[unique_boxes(boxes)]
    keep = ((boxes[:, 2] - boxes[:, 0] + 1) >= params.min_size) & ((boxes[:, 3] - boxes[:, 1] + 1) >= params.min_size)
    boxes = boxes[keep]
    if params.defer_iou is not None:
        from .hierarchical_grouping import defer_near_duplicates
        boxes = defer_near_duplicates(boxes, params.defer_iou, params.max_boxes)
    return boxes[: params.max_boxes].astype(np.float32)
