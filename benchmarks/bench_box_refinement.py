#!/usr/bin/env python
"""Box regression alone against rescoring and box voting, on a finished experiment's test split.

Variants, all from the same fc7 scores, regressors and NMS (the experiment's ``test`` config, its
``box_voting`` ignored):

- ``fc7``, ``fc7 + bbox``: the pipeline's rows;
- ``+ vote``: MR-CNN's box voting after NMS (:func:`spp_det.detect.box_voting`, IoU 0.5);
- ``bbox rescored``: each regressed candidate pooled again at its new box and scored by its class's
  SVM (cheap with SPP: the conv map is already there), then NMS;
- ``union``: MR-CNN's iterative localisation, one step: the raw candidates with their scores and the
  rescored regressed ones, together through NMS.

Each is written as comp4 files and scored as the eval stage scores them (VOC07 mAP, COCO AP, AP75).
Also times, per image, NMS of the regressed candidates alone and followed by voting (best of 3).
A diagnostic for choosing test-time options, not a pipeline stage.

Usage: python benchmarks/bench_box_refinement.py WORKDIR [WORKDIR ...]
"""
import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spp_det.cli import run_main
from spp_det.config import load_config
from spp_det.detect import Detections, box_voting, candidates, combine
from spp_det.evaluation.coco import evaluate_comp4_voc_coco
from spp_det.head import batched
from spp_det.inference import TrainedModels, write_detections
from spp_det.layout import Layout
from spp_det.workspace import Workspace

VOTE_IOU = 0.5  # MR-CNN's


def _seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@torch.no_grad()
def refine_variants(workdir: str) -> dict[str, dict]:
    cfg = load_config(Layout(workdir).config, [f"workdir={workdir}", "test.box_voting=null"])
    ws = Workspace(cfg)
    m = TrainedModels.from_workspace(ws)
    if m.bbox_reg is None:
        raise ValueError(f"{workdir}: has no box regressors")
    tc, split = cfg.test, cfg.dataset.test_split
    records = ws.data.dataset(split).records
    inputs = ws.models.detection_inputs()

    def scored(maps, d: Detections, hw) -> Detections:
        """``d`` with each box's own class's SVM score at its (new) place."""
        if not len(d):
            return d
        fc7 = batched(m.head.fc7_features, m.pooler.pool(maps, d.boxes, hw), m.batch)
        return Detections(d.boxes, np.asarray(m.svm_fc7.scores(fc7))[np.arange(len(d)), d.labels], d.labels)

    rows: dict[str, list] = {}
    seconds = {"NMS": 0.0, "NMS + voting": 0.0}
    for r in records:
        maps, boxes, hw = inputs.load(r), ws.data.boxes_for(r, split), (r.height, r.width)
        pooled = m.pooler.pool(maps, boxes, hw)
        scores = np.asarray(m.svm_fc7.scores(batched(m.head.fc7_features, pooled, m.batch)))
        raw = candidates(boxes, scores, hw, tc)
        reg = candidates(boxes, scores, hw, tc, pooled, m.bbox_reg)
        again = scored(maps, reg, hw)
        for name, pool in (("fc7", raw), ("fc7 + bbox", reg), ("fc7 + bbox rescored", again),
                           ("union", Detections.concat([raw, again]))):
            kept = combine([pool], tc)
            rows.setdefault(name, []).append((r.image_id, kept))
            rows.setdefault(f"{name} + vote", []).append((r.image_id, box_voting(kept, pool, VOTE_IOU)))
        for part, vote in (("NMS", None), ("NMS + voting", VOTE_IOU)):
            tv = dataclasses.replace(tc, box_voting=vote)
            seconds[part] += min(_seconds(lambda: combine([reg], tv)) for _ in range(3))
    out = {part: {"ms_per_image": 1000 * t / len(records)} for part, t in seconds.items()}
    with tempfile.TemporaryDirectory() as tmp:
        for name, per_image in rows.items():
            d = Path(tmp) / name.replace(" ", "_").replace("+", "p")
            write_detections(d, split, ws.data.classes, per_image)
            res, _ = evaluate_comp4_voc_coco(d, records, ws.data.classes, split, cfg.eval.use_07_metric)
            out[name] = {"mAP": 100 * res["mAP"], "AP": 100 * res["coco"]["AP"], "AP75": 100 * res["coco"]["AP75"]}
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdirs", nargs="+")
    args = p.parse_args()

    def go() -> None:
        for w in args.workdirs:
            print(f"{w} (VOC07 mAP / COCO AP / AP75):")
            for name, v in refine_variants(w).items():
                if "ms_per_image" in v:
                    print(f"  {name:<28} {v['ms_per_image']:6.1f} ms per image")
                else:
                    print(f"  {name:<28} {v['mAP']:6.2f} / {v['AP']:6.2f} / {v['AP75']:6.2f}")

    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
