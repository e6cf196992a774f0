"""Model combination (paper section 4.3): several trained pipelines, one set of detections.

Every test window is scored by each model.  ``mode="union"`` (the paper's): per
class, the windows above the score threshold from all models (box-regressed
first when the order is ``before_nms``) are united and NMS'd at ``test.nms``
(0.3), at most ``max_per_class`` kept.  ``mode="average"`` (not in the paper;
docs/BENCHMARKS.md, "Model combination"): each window's class scores are the
mean of the models' scores and its regressed box applies the mean of their
deltas (:func:`spp_det.detect.averaged_candidates`), then the same threshold
and NMS; the models must have scored the same windows (the same proposals).
Each model's own detections are written and scored too (its candidates
through the same NMS: identical to its own test stage), so the table compares
each model with the combination on the same images.

The models must share the test split (same image ids).  They may use
different backbones, scales and proposals: each uses its own conv5 cache and
proposal file.  In union mode with ``bbox_reg_order: after_nms`` a model's
regression needs its NMS survivors, so its post-NMS detections enter the union
instead (an approximation, noted in the output); average mode refuses that order.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from .detect import Detections, averaged_candidates, candidates, combine
from .evaluation.coco import evaluate_comp4_voc_coco
from .inference import TrainedModels, write_detections
from .io_utils import save_json, save_text
from .variants import VARIANT
from .workspace import Workspace

log = logging.getLogger(__name__)

MODES = ("union", "average")  # how the models' scored windows become one set (module docstring)


def run_combination(workspaces: Sequence[Workspace], out_dir: str | Path, variant: str | None = None,
                    progress: bool = True, mode: str = "union") -> dict:
    """Detect with every model and with their combination; write comp4 files and ``summary.json``.

    ``variant``: which of each model's variants to combine (default: its main
    one, ``fc7_bbox`` when box regression was trained).  ``mode``: one of :data:`MODES`.
    Returns ``{name: {"mAP", "ap", "coco"}}`` for each model and ``"combined"``.
    """
    if len(workspaces) < 2:
        raise ValueError("model combination needs at least two experiments")
    if mode not in MODES:
        raise ValueError(f"combination mode {mode!r}: must be one of {', '.join(MODES)}")
    out = Path(out_dir)
    ref = workspaces[0]
    split, classes = ref.cfg.dataset.test_split, ref.data.classes
    records = ref.data.dataset(split).records
    for ws in workspaces[1:]:
        if ws.data.classes != classes:
            raise ValueError(f"{ws.root}: classes {ws.data.classes} differ from {ref.root}'s {classes}")
        ids = [r.image_id for r in ws.data.dataset(ws.cfg.dataset.test_split).records]
        if ids != [r.image_id for r in records]:
            raise ValueError(f"{ws.root}: its test split has other images than {ref.root}'s")
    names = [ws.cfg.name for ws in workspaces]
    if len(set(names)) != len(names):
        names = [f"{n}_{i}" for i, n in enumerate(names)]
    models = [TrainedModels.from_workspace(ws) for ws in workspaces]
    chosen = [variant or m.main_variant for m in models]
    for m, v, ws in zip(models, chosen, workspaces):
        if v not in m.variants():
            raise ValueError(f"{ws.root}: has no variant {v!r} (has {m.variants()})")
    approx = [n for n, ws in zip(names, workspaces) if ws.cfg.test.bbox_reg_order == "after_nms"]
    if mode == "average" and len({VARIANT[v].bbox for v in chosen}) > 1:
        raise ValueError(f"averaging variants {chosen}: some with box regression, some without (choose one "
                         "variant for all)")
    if mode == "average" and approx and any(VARIANT[v].bbox for v in chosen):
        raise ValueError(f"{workspaces[names.index(approx[0])].root}: test.bbox_reg_order is after_nms; "
                         "averaging regresses every window before NMS (use before_nms, or mode union)")
    caches = [ws.models.detection_inputs() for ws in workspaces]
    cfg = ref.cfg.test
    per_model: list[list[tuple[str, Detections]]] = [[] for _ in workspaces]
    united: list[tuple[str, Detections]] = []
    for r in tqdm(records, desc="combine", unit="img", disable=not progress):
        hw = (r.height, r.width)
        if mode == "union":
            parts = []
            for k, (ws, m, cache, v) in enumerate(zip(workspaces, models, caches, chosen)):
                cand = m.detect(cache.load(r), ws.data.boxes_for(r, split), hw,
                                nms=ws.cfg.test.bbox_reg_order != "after_nms")[v]
                parts.append(cand)
                per_model[k].append((r.image_id, combine([cand], cfg)))
            united.append((r.image_id, combine(parts, cfg)))
            continue
        boxes = ref.data.boxes_for(r, split)
        scores, pooled = [], []
        for k, (ws, m, cache, v) in enumerate(zip(workspaces, models, caches, chosen)):
            if k and not np.array_equal(ws.data.boxes_for(r, split), boxes):
                raise ValueError(f"{ws.root}: image {r.image_id} has other proposals than in {ref.root}; "
                                 "averaging needs the same windows (mode union does not)")
            if len(boxes) == 0:
                per_model[k].append((r.image_id, Detections.concat([])))
                continue
            sc, pool5 = m.window_scores(cache.load(r), boxes, hw, variants=[v])
            scores.append(sc[VARIANT[v].svm])
            pooled.append(pool5)
            cand = candidates(boxes, scores[-1], hw, ws.cfg.test, pool5, m.bbox_reg if VARIANT[v].bbox else None)
            per_model[k].append((r.image_id, combine([cand], cfg)))
        regs = [m.bbox_reg for m in models] if VARIANT[chosen[0]].bbox else None
        avg = averaged_candidates(boxes, scores, hw, cfg, pooled, regs) if len(boxes) else Detections.concat([])
        united.append((r.image_id, combine([avg], cfg)))
    summary = {}
    for name, per_image in list(zip(names, per_model)) + [("combined", united)]:
        d = out / name
        write_detections(d, split, classes, per_image)
        # score the files as written (1-decimal comp4 boxes), exactly as the eval stage scores a model's own
        res, _ = evaluate_comp4_voc_coco(d, records, classes, split, ref.cfg.eval.use_07_metric)
        summary[name] = {"mAP": res["mAP"], "ap": res["ap"], "coco": res["coco"]}
    summary["_info"] = {"models": {n: str(ws.root) for n, ws in zip(names, workspaces)}, "variants": chosen,
                        "nms": cfg.nms, "mode": mode,
                        "after_nms_approximation": approx if mode == "union" else []}
    save_json(summary, out / "summary.json")
    text = format_combination(summary, names)
    save_text(text + "\n", out / "summary.txt")
    return summary


def format_combination(summary: dict, names: Sequence[str]) -> str:
    how = {"union": "union of scored windows", "average": "scores and deltas averaged on shared windows"}
    lines = [f"Model combination ({how[summary['_info'].get('mode', 'union')]}, per-class NMS "
             f"{summary['_info']['nms']}):",
             f"  {'model':<24} {'mAP':>6}   {'COCO AP':>7} {'AP50':>6}"]
    for n in list(names) + ["combined"]:
        s = summary[n]
        lines.append(f"  {n:<24} {100 * s['mAP']:6.2f}   {100 * s['coco']['AP']:7.2f} {100 * s['coco']['AP50']:6.2f}")
    if summary["_info"]["after_nms_approximation"]:
        lines.append(f"  (post-NMS detections united for {summary['_info']['after_nms_approximation']}: "
                     "bbox_reg_order after_nms)")
    return "\n".join(lines)
