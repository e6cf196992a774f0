#!/usr/bin/env python
"""Generate the embedded default dataset: a VOC2007-layout set of textured shapes on photos.

Usage: python tools/make_synthetic_voc.py --root data/generated/VOCdevkit/VOC2007 [--seed 0]
       [--num-trainval 200] [--num-test 120]
"""
import argparse
import sys

from spp_det.cli import run_main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="data/generated/VOCdevkit/VOC2007")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-trainval", type=int, default=200)
    p.add_argument("--num-test", type=int, default=120)
    p.add_argument("--min-side", type=int, default=300)
    p.add_argument("--max-side", type=int, default=400)
    args = p.parse_args()

    def go() -> None:
        from spp_det.data.synthetic import CLASSES, make_synthetic_voc
        root = make_synthetic_voc(args.root, args.seed, args.num_trainval, args.num_test, args.min_side, args.max_side)
        print(f"dataset ready at {root} (classes: {', '.join(CLASSES)})")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
