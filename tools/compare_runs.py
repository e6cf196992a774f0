#!/usr/bin/env python
"""Side-by-side mAP (VOC) and COCO AP of finished experiments, one column per work directory.

Usage: python tools/compare_runs.py runs/demo runs/demo_5scale [--split test]
"""
import argparse
import json
import sys
from pathlib import Path

from spp_det.cli import run_main
from spp_det.layout import Layout
from spp_det.variants import VARIANTS


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("workdirs", nargs="+")
    p.add_argument("--split", default="test")
    args = p.parse_args()

    def go() -> None:
        cols = []
        for w in args.workdirs:
            files = {v.name: Layout(Path(w)).eval_result(args.split, v.name) for v in VARIANTS}
            if not any(f.is_file() for f in files.values()):
                raise FileNotFoundError(f"{w}/eval: no {args.split}_*.json (run the eval stage first)")
            cols.append({v: json.loads(f.read_text()) for v, f in files.items() if f.is_file()})
        names = [Path(w).name for w in args.workdirs]
        print(f"{'mAP (VOC) / COCO AP on ' + args.split:<40}" + "".join(f"{n:>22}" for n in names))
        for v in VARIANTS:
            cells = []
            for c in cols:
                r = c.get(v.name)
                if r is None:
                    cells.append("-")
                    continue
                ap = r.get("coco", {}).get("AP")
                cells.append(f"{100 * r['mAP']:.2f}" + ("" if ap is None else f" / {100 * ap:.2f}"))
            print(f"{v.title:<40}" + "".join(f"{c:>22}" for c in cells))

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
