#!/usr/bin/env python
"""Write a VOC-format split as a COCO instances json (difficult objects become iscrowd = 1).

Usage: python tools/voc_to_coco.py --voc-root data/generated/VOCdevkit/VOC2007 --split test \
           --classes disc,block,triangle,star,ring,cross --out data/generated/coco/test.json

file_name is relative to <voc-root>/JPEGImages: use that folder as dataset.root with dataset.format: coco.
"""
import argparse
import sys

from spp_det.cli import run_main
from spp_det.config import VOC_CLASSES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voc-root", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--classes", help="comma-separated class list (default: the 20 VOC classes)")
    p.add_argument("--out", required=True)
    args = p.parse_args()

    def go() -> None:
        from spp_det.data.voc import VOCDataset
        from spp_det.evaluation.coco import records_to_coco
        from spp_det.io_utils import save_json
        classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
        ds = VOCDataset(args.voc_root, args.split, classes)
        gt = records_to_coco(ds.records, classes)
        save_json(gt, args.out)
        print(f"{args.out}: {len(gt['images'])} images, {len(gt['annotations'])} objects")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
