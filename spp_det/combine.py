"""Model combination (paper section 4.3): several trained pipelines, one set of detections.

Every test window is scored by each model; per class, the windows above the
score threshold from all models (box-regressed first when the order is
``before_nms``) are united and NMS'd at ``test.nms`` (0.3), at most
``max_per_class`` kept.  Each model's own detections are written and scored
too (its candidates through the same NMS: identical to its own test stage),
so the table compares each model with the combination on the same images.

The models must share the test split (same image ids).  They may use
different backbones, scales and proposals: each uses its own conv5 cache and
proposal file.  With ``bbox_reg_order: after_nms`` a model's regression needs
its NMS survivors, so its post-NMS detections enter the union instead (an
approximation, noted in the output).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from .detect import Detections, combine
from .evaluation.coco import evaluate_comp4_voc_coco
from .inference import TrainedModels, write_detections
from .io_utils import save_json, save_text
from .workspace import Workspace

log = logging.getLogger(__name__)


def run_combination(workspaces: Sequence[Workspace], out_dir: str | Path, variant: str | None = None,
                    progress: bool = True) -> dict:
    """Detect with every model and with their combination; write comp4 files and ``summary.json``.

    ``variant``: which of each model's variants to combine (default: its main
    one, ``fc7_bbox`` when box regression was trained).  Returns
    ``{name: {"mAP", "ap", "coco"}}`` for each model and ``"combined"``.
    """
    if len(workspaces) < 2:
        raise ValueError("model combination needs at least two experiments")
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
    caches = [ws.models.detection_inputs() for ws in workspaces]
    cfg = ref.cfg.test
    per_model: list[list[tuple[str, Detections]]] = [[] for _ in workspaces]
    united: list[tuple[str, Detections]] = []
    for r in tqdm(records, desc="combine", unit="img", disable=not progress):
        hw = (r.height, r.width)
        parts = []
        for k, (ws, m, cache, v) in enumerate(zip(workspaces, models, caches, chosen)):
            cand = m.detect(cache.load(r), ws.data.boxes_for(r, split), hw,
                            nms=ws.cfg.test.bbox_reg_order != "after_nms")[v]
            parts.append(cand)
            per_model[k].append((r.image_id, combine([cand], cfg)))
        united.append((r.image_id, combine(parts, cfg)))
    summary = {}
    for name, per_image in list(zip(names, per_model)) + [("combined", united)]:
        d = out / name
        write_detections(d, split, classes, per_image)
        # score the files as written (1-decimal comp4 boxes), exactly as the eval stage scores a model's own
        res, _ = evaluate_comp4_voc_coco(d, records, classes, split, ref.cfg.eval.use_07_metric)
        summary[name] = {"mAP": res["mAP"], "ap": res["ap"], "coco": res["coco"]}
    summary["_info"] = {"models": {n: str(ws.root) for n, ws in zip(names, workspaces)}, "variants": chosen,
                        "nms": cfg.nms, "after_nms_approximation": approx}
    save_json(summary, out / "summary.json")
    text = format_combination(summary, names)
    save_text(text + "\n", out / "summary.txt")
    return summary


def format_combination(summary: dict, names: Sequence[str]) -> str:
    lines = [f"Model combination (union of scored windows, per-class NMS {summary['_info']['nms']}):",
             f"  {'model':<24} {'mAP':>6}   {'COCO AP':>7} {'AP50':>6}"]
    for n in list(names) + ["combined"]:
        s = summary[n]
        lines.append(f"  {n:<24} {100 * s['mAP']:6.2f}   {100 * s['coco']['AP']:7.2f} {100 * s['coco']['AP50']:6.2f}")
    if summary["_info"]["after_nms_approximation"]:
        lines.append(f"  (post-NMS detections united for {summary['_info']['after_nms_approximation']}: "
                     "bbox_reg_order after_nms)")
    return "\n".join(lines)
