#!/usr/bin/env python
"""Evaluate VOC comp4 result files with the official devkit rules; print per-class AP and mAP.

Usage: python tools/eval_voc.py --voc-root data/VOCdevkit/VOC2007 --split test --results DIR [--out ap.json]

DIR holds comp4_det_<split>_<cls>.txt (or results/VOC2007/Main/ below it), lines
'image_id score x1 y1 x2 y2' with 1-based boxes, from any detector. Needs only Annotations/ and
ImageSets/ of the dataset. A class with no test object is reported as such and left out of the mean
(null in --out); a missing or empty results directory, or a non-finite score, is an error.
"""
import argparse
import sys

from spp_det.cli import run_main
from spp_det.config import VOC_CLASSES


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--voc-root", required=True, help="dataset root with Annotations/ and ImageSets/Main/")
    p.add_argument("--split", default="test")
    p.add_argument("--results", required=True, help="directory of comp4 files")
    p.add_argument("--classes", help="comma-separated class list (default: the 20 VOC classes)")
    p.add_argument("--metric", choices=["voc07", "voc10"], default="voc07",
                   help="voc07: 11-point (default); voc10: area under the precision envelope")
    p.add_argument("--out", help="write {'mAP': m, 'ap': {cls: ap}, 'npos': {cls: n}} here (JSON)")
    args = p.parse_args()

    def go() -> None:
        from spp_det.data.voc import VOCDataset
        from spp_det.evaluation.voc import evaluate_comp4_dir, format_ap_table
        from spp_det.io_utils import save_json
        classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
        ds = VOCDataset(args.voc_root, args.split, classes, require_images=False)  # Annotations + ImageSets only
        res = evaluate_comp4_dir(args.results, ds.records, classes, args.split, args.metric == "voc07")
        print(format_ap_table(res, f"AP on {args.split} ({len(ds)} images):"))
        if args.out:
            save_json({"mAP": res["mAP"], "ap": res["ap"], "npos": res["npos"]}, args.out)

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
