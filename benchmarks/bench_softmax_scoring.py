#!/usr/bin/env python
"""SVMs vs the fine-tuned fc8 softmax as the window scorer, on a finished experiment's test split.

R-CNN and SPP-net score windows with per-class SVMs on fc7; Fast R-CNN uses the fine-tuned
network's own softmax. This scores the same windows both ways (same fc7, same NMS and box
regression; softmax probabilities of the object classes, threshold 0.001) and prints VOC07 mAP.
A diagnostic, not a pipeline option.

Usage: python benchmarks/bench_softmax_scoring.py WORKDIR [WORKDIR ...]
"""
import argparse
import copy

import numpy as np
import torch

from spp_det.cli import run_main
from spp_det.config import load_config
from spp_det.detect import postprocess
from spp_det.evaluation.voc import ClassDetections, evaluate
from spp_det.head import batched
from spp_det.layout import Layout
from spp_det.linear import LinearModels
from spp_det.stages import fine_tuned_head
from spp_det.workspace import Workspace


def per_class(per_image: list, num_classes: int) -> list[ClassDetections]:
    out = []
    for c in range(num_classes):
        ids, scores, boxes = [], [], []
        for image_id, d in per_image:
            m = d.labels == c
            ids += [image_id] * int(m.sum())
            scores.append(d.scores[m])
            boxes.append(d.boxes[m])
        out.append(ClassDetections(np.asarray(ids, dtype=object), np.concatenate(scores), np.concatenate(boxes)))
    return out


@torch.no_grad()
def score_both_ways(workdir: str) -> dict[str, float]:
    cfg = load_config(Layout(workdir).config, [f"workdir={workdir}"])
    ws = Workspace(cfg)
    split = cfg.dataset.test_split
    records = ws.data.dataset(split).records
    head, svm = fine_tuned_head(ws), LinearModels.load(ws.layout.svm("fc7"))
    reg = LinearModels.load(ws.layout.bbox_reg) if ws.layout.bbox_reg.is_file() else None
    pooler, inputs = ws.models.pooler(), ws.models.detection_inputs()
    soft_cfg = copy.copy(cfg.test)
    soft_cfg.score_thresh = 1e-3
    rows: dict[str, list] = {"svm": [], "softmax": [], "svm + bbox": [], "softmax + bbox": []}
    for r in records:
        boxes, hw = ws.data.boxes_for(r, split), (r.height, r.width)
        pooled = pooler.pool(inputs.load(r), boxes, hw)
        fc7 = batched(head.fc7_features, pooled, cfg.features.batch_windows)
        scores = {"svm": (svm.scores(fc7.numpy()), cfg.test),
                  "softmax": (torch.softmax(head.fc8(fc7), 1)[:, 1:].numpy(), soft_cfg)}
        for name, (s, tc) in scores.items():
            rows[name].append((r.image_id, postprocess(boxes, s, hw, tc)))
            if reg is not None:
                rows[f"{name} + bbox"].append((r.image_id, postprocess(boxes, s, hw, tc, pooled.numpy(), reg)))
    classes = ws.data.classes
    return {k: 100 * evaluate(per_class(v, len(classes)), records, classes)["mAP"] for k, v in rows.items() if v}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdirs", nargs="+")
    args = p.parse_args()

    def go() -> None:
        for w in args.workdirs:
            res = score_both_ways(w)
            print(f"{w}: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))

    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
