#!/usr/bin/env python
"""Combine two (or more) trained experiments: score every test window with each, unite, per-class NMS 0.3.

Usage: python tools/combine_models.py --configs configs/demo.yaml configs/demo_zf5.yaml --out runs/combined
       [--variant fc7_bbox]

Each experiment must have finished its pipeline (tools/run_pipeline.py). Prints each model's mAP and the
combination's (VOC metric of the first config, plus COCO AP); writes comp4 files and summary.json to --out.
"""
import argparse
import sys

from spp_det.cli import run_main, setup_logging
from spp_det.stages import stage_done


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", required=True, help="experiment YAMLs (at least two)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--variant", help="variant of each model to combine (default: fc7_bbox if trained, else fc7)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    setup_logging(args.verbose)

    def go() -> None:
        from spp_det.combine import format_combination, run_combination
        from spp_det.config import load_config
        from spp_det.workspace import Workspace
        wss = [Workspace(load_config(c)) for c in args.configs]
        for ws in wss:
            if not stage_done(ws, "test"):
                raise ValueError(f"{ws.root}: its pipeline has not finished for this config "
                                 "(run tools/run_pipeline.py --config ... first)")
        summary = run_combination(wss, args.out, args.variant, progress=not args.no_progress)
        print(format_combination(summary, [k for k in summary if k not in ("combined", "_info")]))

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
