#!/usr/bin/env python
"""Proposal quality side by side: recall at IoU 0.5 / 0.7 and average best overlap against the number
of proposals, per method, on a split of each dataset family, with the time per image and a curve PNG.

Methods: the ones of ``benchmarks/bench_proposals.py`` (OpenCV fast mode with k = 50/100 and with
OpenCV's own k = 150/300, uncapped as OpenCV returns them, and R-CNN's fast mode re-implemented),
each with ``min_size`` 8 (our default) and R-CNN's 20 where it differs, with near-duplicates
deferred behind distinct boxes before the 2,000 cap (``proposals.defer_iou``), ranked as OpenCV
ranks (``proposals.ranking: opencv``) and with the two rankings interleaved (``interleaved``, alone and
with ``min_size`` 6 and near-duplicates deferred). Choose settings on the
train/val splits (``--split val``, the default); report test once.

Usage: python benchmarks/bench_proposal_recall.py [--configs configs/demo.yaml ...] [--split val]
       [--limit 60] [--only METHOD ...] [--out docs/proposal_recall]
"""
import argparse
import time
from pathlib import Path

import cv2

from bench_proposals import METHODS
from proposals.recall import format_recall_table, plot_recall, proposal_recall
from proposals.selective_search import SearchParams, selective_search
from spp_det.cli import run_main, setup_logging
from spp_det.config import load_config
from spp_det.data.voc import VOCDataset

DEFAULT_CONFIGS = ["configs/demo.yaml", "configs/family_silhouettes.yaml", "configs/family_photos.yaml"]
COUNTS = (10, 20, 50, 100, 200, 300, 500, 1000, 1500, 2000, 3000, 5000)


def settings() -> dict[str, SearchParams]:
    out = {}
    for name, p in METHODS.items():
        if "150" in name:  # OpenCV's own defaults: all the boxes it returns (~800-1,700 here)
            p = SearchParams(**{**p.to_dict(), "max_boxes": 10 ** 6})
        out[name] = p
    out["rcnn fast mode (ours), k 50/100, near-duplicates (IoU >= 0.8) deferred"] = SearchParams(mode="rcnn",
                                                                                                defer_iou=0.8)
    out["rcnn fast mode (ours), k 50/100, boxes >= 20 px (R-CNN)"] = SearchParams(mode="rcnn", min_size=20)
    out["rcnn fast mode (ours), k 50/100, OpenCV's ranking"] = SearchParams(mode="rcnn", ranking="opencv")
    out["rcnn fast mode (ours), k 50/100, interleaved ranking"] = SearchParams(mode="rcnn", ranking="interleaved")
    out["rcnn fast mode (ours), k 50/100, interleaved, boxes >= 6 px, near-duplicates (IoU >= 0.9) deferred"] = \
        SearchParams(mode="rcnn", ranking="interleaved", min_size=6, defer_iou=0.9)
    out["rcnn fast mode (ours), k 50/100, uncapped"] = SearchParams(mode="rcnn", max_boxes=10 ** 6)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--split", default="val")
    p.add_argument("--limit", type=int, default=60, help="first N images of the split (0: all)")
    p.add_argument("--only", action="append", metavar="METHOD", help="run only this method (its exact name "
                   "in the table; repeatable)")
    p.add_argument("--out", default="docs/proposal_recall", help="PNG prefix: <out>_<config name>.png")
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        cv2.setNumThreads(1)
        methods = settings()
        if args.only:
            unknown = sorted(set(args.only) - set(methods))
            if unknown:
                raise ValueError(f"--only: unknown method {unknown[0]!r}; the methods are {sorted(methods)}")
            methods = {k: v for k, v in methods.items() if k in args.only}
        for c in args.configs:
            cfg = load_config(c)
            records = VOCDataset(cfg.dataset.root, args.split, cfg.dataset.classes).records
            records = records[: args.limit] if args.limit else records
            selective_search(records[0].load(), SearchParams(mode="rcnn"))  # numba compilation, untimed
            results, lines = {}, []
            for name, params in methods.items():
                props, t = {}, 0.0
                for r in records:
                    img = r.load()
                    t0 = time.perf_counter()
                    props[r.image_id] = selective_search(img, params)
                    t += time.perf_counter() - t0
                res = proposal_recall(records, props, COUNTS)
                results[name] = res
                at = {k: i for i, k in enumerate(COUNTS)}[2000]
                lines.append(f"| {name} | {t / len(records):.3f} | {res['mean_boxes']:.0f} | "
                             f"{res['recall'][0.5][at]:.3f} | {res['recall'][0.7][at]:.3f} | {res['abo'][at]:.3f} |")
                print(f"{cfg.name} / {args.split} ({len(records)} images), {name}:\n{format_recall_table(res)}",
                      flush=True)
            png = Path(f"{args.out}_{cfg.name}.png")
            plot_recall(results, png, f"{cfg.name} / {args.split}, first {len(records)} images")
            print(f"\n{cfg.name} / {args.split}, {len(records)} images ({png}):")
            print("| method | s / image (1 core) | boxes / image | R@0.5 (<= 2,000) | R@0.7 (<= 2,000) | ABO |")
            print("|---|---|---|---|---|---|")
            print("\n".join(lines), flush=True)

    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
