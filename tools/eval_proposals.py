#!/usr/bin/env python
"""Proposal recall at IoU 0.5 and 0.7 and average best overlap against the number of proposals per image.

Usage: python tools/eval_proposals.py --config configs/demo.yaml [--split test] [--plot recall.png]
       python tools/eval_proposals.py --voc-root DIR --split test --proposals A.npz [B.mat ...]
              [--labels a,b] [--classes a,b] [--plot recall.png]
Several proposal files (ours .npz, R-CNN .mat) are compared on one table each and one plot.
"""
import argparse
import sys
from pathlib import Path

from spp_det.cli import run_main
from spp_det.config import VOC_CLASSES, load_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--voc-root")
    p.add_argument("--split")
    p.add_argument("--proposals", nargs="+", help="proposal .npz (ours) or R-CNN .mat files")
    p.add_argument("--labels", help="comma-separated names of the proposal files (default: file names)")
    p.add_argument("--classes")
    p.add_argument("--counts", default="10,20,50,100,200,300,500,1000,1500,2000")
    p.add_argument("--plot", help="write the curves of recall and ABO against the number of proposals here (PNG)")
    args = p.parse_args()

    def go() -> None:
        from proposals.cache import load_proposals
        from proposals.rcnn_mat import load_rcnn_mat
        from proposals.recall import format_recall_table, plot_recall, proposal_recall
        from spp_det.data.voc import VOCDataset
        if args.config:
            cfg = load_config(args.config)
            root, classes = cfg.dataset.root, cfg.dataset.classes
            split = args.split or cfg.dataset.test_split
            from spp_det.workspace import Workspace
            paths = args.proposals or [Workspace(cfg).data.proposals_path(split)]
        else:
            if not (args.voc_root and args.split and args.proposals):
                raise ValueError("give --config, or --voc-root, --split and --proposals")
            root, split, paths = args.voc_root, args.split, args.proposals
            classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
        labels = args.labels.split(",") if args.labels else [Path(x).name for x in paths]
        if len(labels) != len(paths):
            raise ValueError(f"--labels has {len(labels)} names for {len(paths)} proposal files")
        ds = VOCDataset(root, split, classes)
        counts = [int(c) for c in args.counts.split(",")]
        results = {}
        for label, path in zip(labels, paths):
            props = load_rcnn_mat(path) if str(path).endswith(".mat") else load_proposals(path)
            results[label] = proposal_recall(ds.records, props, counts)
            print(f"Proposal recall on {root} / {split} ({len(ds)} images, {path}):")
            print(format_recall_table(results[label]))
        if args.plot:
            plot_recall(results, args.plot, f"{root} / {split}")
            print(f"plot: {args.plot}")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
