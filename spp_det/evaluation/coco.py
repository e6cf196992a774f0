"""COCO metrics (pycocotools) for the same detections the VOC evaluation scores.

* :func:`records_to_coco`: ground truth of any dataset's records as a COCO
  dict (difficult / crowd objects become ``iscrowd: 1``, i.e. ignored regions);
  also what ``spp-det voc-to-coco`` writes.
* :func:`detections_to_results`: detections (internal 0-based inclusive boxes)
  as a COCO results list (``[x, y, w, h]``, ``w = x2 - x1 + 1``).
* :func:`coco_metrics`: AP (IoU 0.50:0.95), AP50, AP75, AP small/medium/large,
  AR@100 from ``COCOeval`` with ``iouType="bbox"``.
* :func:`evaluate_comp4_voc_coco`: both metrics of one folder of comp4 files, scored
  as written (what the eval stage, model combination and the peer benchmark report).

COCO computes IoU in continuous coordinates (no +1 rule), interpolates
precision at 101 recall points and keeps up to 100 detections per image,
so AP50 differs slightly from VOC07 mAP on the same detections.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.coco import internal_to_coco
from .voc import ClassDetections, evaluate, load_comp4_dir


def coco_image_ids(records: Sequence) -> dict[str, int]:
    """Record id -> COCO integer id (the json's own id for COCO datasets, else 1, 2, ... in order)."""
    return {r.image_id: int(r.extra.get("coco_id", i + 1)) for i, r in enumerate(records)}


def records_to_coco(records: Sequence, classes: Sequence[str]) -> dict:
    """COCO ground-truth dict of ``records`` (category ids are class index + 1)."""
    ids = coco_image_ids(records)
    images, anns = [], []
    for r in records:
        images.append({"id": ids[r.image_id], "file_name": str(r.extra.get("file_name", Path(r.path).name)),
                       "width": int(r.width), "height": int(r.height)})
        for b, lab, diff in zip(internal_to_coco(r.boxes), r.labels, r.difficult):
            anns.append({"id": len(anns) + 1, "image_id": ids[r.image_id], "category_id": int(lab) + 1,
                         "bbox": [float(v) for v in b], "area": float(b[2] * b[3]), "iscrowd": int(bool(diff))})
    return {"images": images, "annotations": anns,
            "categories": [{"id": i + 1, "name": c, "supercategory": "object"} for i, c in enumerate(classes)]}


def detections_to_results(dets: Sequence[ClassDetections], records: Sequence) -> list[dict]:
    """COCO results list from per-class detections with internal boxes (``dets[c]`` is class ``c``)."""
    ids = coco_image_ids(records)
    out = []
    for c, d in enumerate(dets):
        for image_id, score, box in zip(d.image_ids, d.scores, internal_to_coco(d.boxes)):
            out.append({"image_id": ids[str(image_id)], "category_id": c + 1,
                        "bbox": [round(float(v), 2) for v in box], "score": float(score)})
    return out


METRIC_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")


def coco_metrics(gt: dict, results: list[dict]) -> dict[str, float]:
    """pycocotools bbox evaluation; returns the 9 summary numbers as fractions (AP = AP@[.5:.95])."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    if not results:
        return {k: 0.0 for k in METRIC_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools reports -1 where a size range has no GT: keep it as nan, not as a negative AP
    return {k: (float(v) if v >= 0 else float("nan")) for k, v in zip(METRIC_NAMES, np.asarray(ev.stats))}


def evaluate_comp4_voc_coco(results_dir: str | Path, records: Sequence, classes: Sequence[str], split: str,
                            use_07_metric: bool = True) -> tuple[dict, list[dict]]:
    """VOC AP (:func:`~spp_det.evaluation.voc.evaluate`, its dict with ``"coco"`` added: the
    :func:`coco_metrics` of the same detections) of the comp4 files in ``results_dir``, and the
    COCO results list they were scored from."""
    dets = load_comp4_dir(results_dir, records, classes, split)
    res = evaluate(dets, records, classes, use_07_metric)
    results = detections_to_results(dets, records)
    res["coco"] = coco_metrics(records_to_coco(records, classes), results)
    return res, results
