#!/usr/bin/env python
"""Generate a VOC2007-layout dataset: the demo's textured shapes on photos, or another family.

Usage: python tools/make_synthetic_voc.py --root data/generated/VOCdevkit/VOC2007 [--seed 0]
       [--num-trainval 200] [--num-test 120] [--family shapes|silhouettes|photos]
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
    p.add_argument("--family", default="shapes", help="shapes (the demo's), silhouettes or photos "
                   "(spp_det/data/scenes.py)")
    args = p.parse_args()

    def go() -> None:
        from spp_det.data.synthetic import family_classes, make_synthetic_voc
        root = make_synthetic_voc(args.root, args.seed, args.num_trainval, args.num_test, args.min_side, args.max_side,
                                  family=args.family)
        print(f"dataset ready at {root} (classes: {', '.join(family_classes(args.family))})")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
