"""COCO-format detection datasets (one ``instances``-style json per split).

Config: ``dataset.format: coco``, ``dataset.coco_files: {split: path/to/instances.json}``,
``dataset.root``: the folder ``file_name`` is relative to; ``dataset.classes``:
category names (the json may have more categories only if
``dataset.coco_skip_unknown`` is set; by default an unknown one is an error).

Box conventions: COCO ``bbox = [x, y, w, h]`` in continuous pixel units
(``[x, x + w)``); records hold **internal** boxes (0-based inclusive), so
``x1 = x``, ``x2 = x + w - 1`` (``w`` below 1 is treated as 1 px), and back
``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]`` (:func:`internal_to_coco`): integer
boxes round-trip exactly.  ``iscrowd`` objects are marked ``difficult``:
excluded from training, and ignored regions in evaluation (VOC's difficult
rule and COCO's crowd rule).  ``image_id`` of a record is the json's integer
id as a string; ``extra["coco_id"]`` keeps the integer.

Validated on load, errors naming the file: malformed json, missing keys,
duplicate ids, an image file that does not exist, a non-positive size, a box
outside the image (more than 1 px), an unknown category, an empty split.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .voc import DatasetError, DetectionDataset, ImageRecord

OUTSIDE_TOLERANCE = 1.0  # px: COCO boxes often overrun the border by a fraction of a pixel; clip those


def coco_to_internal(bbox: Sequence[float]) -> np.ndarray:
    """``[x, y, w, h]`` -> internal ``[x1, y1, x2, y2]`` (0-based inclusive)."""
    x, y, w, h = (float(v) for v in bbox)
    return np.array([x, y, x + max(w, 1.0) - 1.0, y + max(h, 1.0) - 1.0], np.float64)


def internal_to_coco(boxes: np.ndarray) -> np.ndarray:
    """Internal ``(N, 4)`` boxes -> COCO ``(N, 4)`` ``[x, y, w, h]``."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0] + 1.0, b[:, 3] - b[:, 1] + 1.0], 1)


def _need(d: dict, key: str, what: str, path: Path):
    if not isinstance(d, dict) or key not in d:
        raise DatasetError(f"{path}: {what} has no {key!r}")
    return d[key]


class COCODataset(DetectionDataset):
    """All records of one COCO json, validated on load (same interface as :class:`VOCDataset`)."""

    def __init__(self, json_path: str | Path, image_root: str | Path, classes: Sequence[str], split: str = "",
                 skip_unknown: bool = False):
        path = Path(json_path)
        self.split, self.classes, self.root, self.json_path = split, list(classes), Path(image_root), path
        if not path.is_file():
            raise DatasetError(f"{path}: COCO annotation file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))  # a BOM is dropped
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DatasetError(f"{path}: malformed json: {e}") from None
        images = _need(data, "images", "the file", path)
        anns = _need(data, "annotations", "the file", path)
        cats = _need(data, "categories", "the file", path)
        if not images:
            raise DatasetError(f"{path}: split {split!r} is empty (no images)")
        cls_index = {c: i for i, c in enumerate(self.classes)}
        cat_to_cls: dict[int, int] = {}
        for c in cats:
            name = _need(c, "name", "a category", path)
            if name in cls_index:
                cat_to_cls[int(_need(c, "id", f"category {name!r}", path))] = cls_index[name]
            elif not skip_unknown:
                raise DatasetError(f"{path}: unknown category {name!r} (config classes: {', '.join(self.classes)}; "
                                   "set dataset.coco_skip_unknown to ignore other categories)")
        per_image: dict[int, list[dict]] = {}
        for k, a in enumerate(anns):
            per_image.setdefault(int(_need(a, "image_id", f"annotation {k}", path)), []).append(a)
        self.records: list[ImageRecord] = []
        seen: set[int] = set()
        for im in images:
            iid = int(_need(im, "id", "an image", path))
            if iid in seen:
                raise DatasetError(f"{path}: image id {iid} is listed twice")
            seen.add(iid)
            self.records.append(self._record(im, iid, per_image.get(iid, []), cat_to_cls, path))
        unknown_ids = set(per_image) - seen
        if unknown_ids:
            raise DatasetError(f"{path}: annotations refer to image ids not in 'images': {sorted(unknown_ids)[:5]}")
        self._index()

    def _record(self, im: dict, iid: int, anns: list[dict], cat_to_cls: dict[int, int], path: Path) -> ImageRecord:
        fname = _need(im, "file_name", f"image {iid}", path)
        W, H = int(_need(im, "width", f"image {iid}", path)), int(_need(im, "height", f"image {iid}", path))
        if W <= 0 or H <= 0:
            raise DatasetError(f"{path}: image {iid} ({fname}) size must be positive, got {W}x{H}")
        img_path = self.root / fname
        if not img_path.is_file():
            raise DatasetError(f"{path}: image {iid}: file not found: {img_path}")
        boxes, labels, crowd = [], [], []
        for a in anns:
            cid = int(_need(a, "category_id", f"an annotation of image {iid}", path))
            if cid not in cat_to_cls:
                continue  # a skipped category (unknown ones were rejected above)
            bbox = _need(a, "bbox", f"annotation {a.get('id', '?')}", path)
            if len(bbox) != 4 or bbox[2] < 0 or bbox[3] < 0:
                raise DatasetError(f"{path}: annotation {a.get('id', '?')} of image {iid} has a bad bbox {bbox} "
                                   "(want [x, y, w, h] with w, h >= 0)")
            b = coco_to_internal(bbox)
            t = OUTSIDE_TOLERANCE
            if b[0] < -t or b[1] < -t or b[2] > W - 1 + t or b[3] > H - 1 + t:
                raise DatasetError(f"{path}: annotation {a.get('id', '?')} of image {iid} ({fname}): bbox {bbox} "
                                   f"is outside the {W}x{H} image")
            boxes.append(np.clip(b, 0, [W - 1, H - 1, W - 1, H - 1]))
            labels.append(cat_to_cls[cid])
            crowd.append(bool(a.get("iscrowd", 0)))
        n = len(boxes)
        return ImageRecord(image_id=str(iid), path=img_path, width=W, height=H,
                           boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(labels, np.int64),
                           difficult=np.asarray(crowd, bool), truncated=np.zeros(n, bool),
                           extra={"coco_id": iid, "file_name": fname})

