#!/usr/bin/env python
"""Print proposal recall at IoU 0.5 and 0.7 against the number of proposals per image.

Usage: python tools/eval_proposals.py --config configs/demo.yaml [--split test]
       python tools/eval_proposals.py --voc-root DIR --split test --proposals FILE.npz|FILE.mat [--classes a,b]
"""
import argparse
import sys

from spp_det.cli import run_main
from spp_det.config import VOC_CLASSES, load_config


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config")
    p.add_argument("--voc-root")
    p.add_argument("--split")
    p.add_argument("--proposals", help="a proposal .npz (ours) or R-CNN .mat file")
    p.add_argument("--classes")
    p.add_argument("--counts", default="10,50,100,200,300,500,1000,2000")
    args = p.parse_args()

    def go() -> None:
        from proposals.cache import load_proposals
        from proposals.rcnn_mat import load_rcnn_mat
        from proposals.recall import format_recall_table, proposal_recall
        from spp_det.data.voc import VOCDataset
        if args.config:
            cfg = load_config(args.config)
            root, classes = cfg.dataset.root, cfg.dataset.classes
            split = args.split or cfg.dataset.test_split
            from spp_det.workspace import Workspace
            path = args.proposals or Workspace(cfg).data.proposals_path(split)
        else:
            if not (args.voc_root and args.split and args.proposals):
                raise ValueError("give --config, or --voc-root, --split and --proposals")
            root, split, path = args.voc_root, args.split, args.proposals
            classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
        props = load_rcnn_mat(path) if str(path).endswith(".mat") else load_proposals(path)
        ds = VOCDataset(root, split, classes)
        res = proposal_recall(ds.records, props, [int(c) for c in args.counts.split(",")])
        print(f"Proposal recall on {root} / {split} ({len(ds)} images, {path}):")
        print(format_recall_table(res))

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
