"""PASCAL VOC detection AP, following the official devkit (``VOCevaldet.m``).

Per class: detections of all images pooled and sorted by score (descending,
**stable**, like MATLAB's ``sort``); each is matched to the single GT of that
class in its image with the highest IoU (+1 pixel rule), difficult ones
included.  IoU ``>= 0.5``: a difficult GT -> ignored (neither TP nor FP); an
unclaimed GT -> TP (claims it); a claimed GT -> FP.  Otherwise FP.  ``npos``
counts non-difficult GTs.  VOC07 AP averages, over ``t = k / 10`` for
k = 0..10 (the doubles nearest 0.0, 0.1, ..., 1.0, so a recall of exactly 3/10
counts at t = 0.3), the max precision at recall >= t (0 if none).  VOC2010+
AP is the area under the precision envelope.

Result files (comp4): ``<dir>/comp4_det_<split>_<cls>.txt`` (also found under
``<dir>/results/VOC2007/Main/``), one detection a line:
``image_id score x1 y1 x2 y2`` with VOC 1-based inclusive boxes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class ClassDetections:
    """Detections of one class: image ids ``(K,)``, scores ``(K,)``, boxes ``(K, 4)`` (any inclusive convention
    shared with the GT boxes)."""

    image_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    @staticmethod
    def empty() -> "ClassDetections":
        return ClassDetections(np.zeros(0, dtype=object), np.zeros(0), np.zeros((0, 4)))


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = True) -> float:
    """AP from cumulative recall/precision arrays (devkit ``VOCevaldet`` / ``VOCap``)."""
    rec, prec = np.asarray(rec, np.float64), np.asarray(prec, np.float64)
    if use_07_metric:
        ap = 0.0
        for k in range(11):
            t = k / 10.0
            p = prec[rec >= t]
            ap += (p.max() if p.size else 0.0) / 11.0
        return float(ap)
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))


def eval_class(dets: ClassDetections, gt: Mapping[str, tuple[np.ndarray, np.ndarray]],
               iou_threshold: float = 0.5, use_07_metric: bool = True) -> dict:
    """AP of one class.

    gt: image id -> (boxes ``(G, 4)``, difficult ``(G,)`` bool) for **this class**
    (images without objects of the class may be absent).
    Returns ``{"ap", "rec", "prec", "npos", "tp", "fp", "status"}``; ``status`` ``(K,)`` int8 in the order
    of ``dets``: 1 true positive, 0 false positive, -1 ignored (matched a difficult object).
    """
    npos = int(sum((~np.asarray(d, bool)).sum() for _, d in gt.values()))
    order = np.argsort(-np.asarray(dets.scores, np.float64), kind="stable")
    claimed = {k: np.zeros(len(b), bool) for k, (b, _) in gt.items()}
    tp = np.zeros(len(order))
    fp = np.zeros(len(order))
    for n, d in enumerate(order):
        image_id = dets.image_ids[d]
        bb = np.asarray(dets.boxes[d], np.float64)
        if image_id not in gt or len(gt[image_id][0]) == 0:
            fp[n] = 1
            continue
        g, diff = gt[image_id]
        g = np.asarray(g, np.float64)
        iw = np.minimum(g[:, 2], bb[2]) - np.maximum(g[:, 0], bb[0]) + 1.0
        ih = np.minimum(g[:, 3], bb[3]) - np.maximum(g[:, 1], bb[1]) + 1.0
        inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
        union = ((bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0)
                 + (g[:, 2] - g[:, 0] + 1.0) * (g[:, 3] - g[:, 1] + 1.0) - inter)
        ov = np.where(inter > 0, inter / union, -np.inf)
        j = int(np.argmax(ov))  # first of equal maxima, like the devkit's strict '>'
        if ov[j] >= iou_threshold:
            if diff[j]:
                continue
            if not claimed[image_id][j]:
                tp[n] = 1
                claimed[image_id][j] = True
            else:
                fp[n] = 1
        else:
            fp[n] = 1
    status = np.full(len(order), -1, np.int8)
    status[order] = np.where(tp > 0, 1, np.where(fp > 0, 0, -1))
    keep = (tp + fp) > 0  # ignored (difficult) detections drop out of both counts
    ctp, cfp = np.cumsum(tp[keep]), np.cumsum(fp[keep])
    rec = ctp / npos if npos > 0 else np.full(len(ctp), np.nan)
    prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    ap = voc_ap(rec, prec, use_07_metric) if npos > 0 else float("nan")
    return {"ap": ap, "rec": rec, "prec": prec, "npos": npos, "tp": int(tp.sum()), "fp": int(fp.sum()),
            "status": status}


def gt_by_class(records: Sequence, num_classes: int) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per class: image id -> (boxes, difficult) from dataset records (internal boxes)."""
    out: list[dict] = [dict() for _ in range(num_classes)]
    for r in records:
        for c in np.unique(r.labels):
            m = r.labels == c
            out[int(c)][r.image_id] = (r.boxes[m], r.difficult[m])
    return out


def evaluate(dets: Sequence[ClassDetections], records: Sequence, classes: Sequence[str],
             use_07_metric: bool = True, iou_threshold: float = 0.5) -> dict:
    """``{"mAP": m, "ap": {cls: ap}, "npos": {cls: n}, "metric", "curves": {cls: (recall, precision, ap)}}``
    (``curves``: :func:`eval_class`'s cumulative arrays, detections in score order); ``dets[c]`` boxes in
    the records' convention.

    A class with no (non-difficult) test object has no recall: its AP is NaN (``null`` in the JSON
    files) and it is left out of the mean. The devkit has no such case (every VOC class is in every
    VOC test set; its code would divide by zero); this is what a subset of VOC, or another dataset,
    needs. No test object of any class is an error.
    """
    gts = gt_by_class(records, len(classes))
    aps, npos, curves = {}, {}, {}
    for c, name in enumerate(classes):
        res = eval_class(dets[c], gts[c], iou_threshold, use_07_metric)
        aps[name], npos[name] = res["ap"], res["npos"]
        curves[name] = (res["rec"], res["prec"], res["ap"])
    valid = [a for a in aps.values() if not np.isnan(a)]
    if not valid:
        raise ValueError(f"no test object of any class ({', '.join(classes)}) in these records: nothing to evaluate")
    return {"mAP": float(np.mean(valid)), "ap": aps, "npos": npos,
            "metric": "VOC07 11-point" if use_07_metric else "VOC2010+ area", "curves": curves}


# ---------------------------------------------------------------- comp4 files
def comp4_path(results_dir: str | Path, split: str, cls: str) -> Path:
    return Path(results_dir) / f"comp4_det_{split}_{cls}.txt"


def find_comp4(results_dir: str | Path, split: str, cls: str) -> Path | None:
    for d in (Path(results_dir), Path(results_dir) / "results" / "VOC2007" / "Main"):
        p = comp4_path(d, split, cls)
        if p.is_file():
            return p
    return None


def read_comp4(path: str | Path) -> ClassDetections:
    """Parse a comp4 file; boxes returned as written (VOC 1-based).  Errors name file and line."""
    ids, scores, boxes = [], [], []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 6:
            raise ValueError(f"{path}:{n}: expected 'image_id score x1 y1 x2 y2', got {line!r}")
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            raise ValueError(f"{path}:{n}: non-numeric value in {line!r}") from None
        if not all(np.isfinite(vals)):
            raise ValueError(f"{path}:{n}: score and box must be finite numbers, got {line!r}")
        ids.append(parts[0])
        scores.append(vals[0])
        boxes.append(vals[1:])
    return ClassDetections(np.asarray(ids, dtype=object), np.asarray(scores, np.float64),
                           np.asarray(boxes, np.float64).reshape(-1, 4))


def write_comp4(path: str | Path, dets: ClassDetections) -> None:
    """Write VOC 1-based boxes (callers convert from internal first)."""
    from ..io_utils import save_text
    lines = [f"{i} {s:.6f} {b[0]:.1f} {b[1]:.1f} {b[2]:.1f} {b[3]:.1f}\n"
             for i, s, b in zip(dets.image_ids, dets.scores, dets.boxes)]
    save_text("".join(lines), path)


def load_comp4_dir(results_dir: str | Path, records: Sequence, classes: Sequence[str],
                   split: str) -> list[ClassDetections]:
    """One :class:`ClassDetections` per class from comp4 files, boxes converted to internal 0-based.

    A class whose file is missing has no detections (logged); a missing results directory, one without
    a comp4 file of any class, and ids not in ``records`` are errors.
    """
    if not Path(results_dir).is_dir():
        raise ValueError(f"{results_dir}: results directory not found")
    files = {c: find_comp4(results_dir, split, c) for c in classes}
    if not any(files.values()):
        raise ValueError(f"{results_dir}: no comp4 result file for split {split!r} "
                         f"(want comp4_det_{split}_<class>.txt for classes {', '.join(classes)})")
    dets = []
    known = {r.image_id for r in records}
    for c in classes:
        p = files[c]
        d = read_comp4(p) if p else ClassDetections.empty()
        unknown = sorted(set(d.image_ids.tolist()) - known)
        if unknown:
            raise ValueError(f"{p}: detections for images not in split {split!r}: {unknown[:5]}")
        dets.append(ClassDetections(d.image_ids, d.scores, d.boxes - 1.0))  # to internal 0-based
    missing = [c for c, p in files.items() if p is None]
    if missing:  # said once every file has parsed, so that a bad file's error stays the only line
        log.warning("%s: no comp4 file for %s: no detections of those classes (AP 0)", results_dir,
                    ", ".join(missing))
    return dets


def evaluate_comp4_dir(results_dir: str | Path, records: Sequence, classes: Sequence[str], split: str,
                       use_07_metric: bool = True) -> dict:
    """Evaluate comp4 files (VOC 1-based boxes) against records (A class without a file has AP 0)."""
    return evaluate(load_comp4_dir(results_dir, records, classes, split), records, classes, use_07_metric)


def format_ap_table(result: dict, title: str = "") -> str:
    names = list(result["ap"])
    width = max(8, *(len(n) for n in names))
    lines = [title] if title else []
    lines += [f"  {n:<{width}}  {100 * a:6.2f}" if np.isfinite(a) else
              f"  {n:<{width}}       -   (no test object: not in the mean)" for n, a in result["ap"].items()]
    lines.append(f"  {'mAP':<{width}}  {100 * result['mAP']:6.2f}   ({result.get('metric', '')})")
    return "\n".join(lines)
