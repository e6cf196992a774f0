#!/usr/bin/env python
"""Run every stage of an experiment in order, skipping stages already complete for its config.

Usage: python tools/run_pipeline.py --config configs/demo.yaml [--stages proposals,conv5] [--force svm]
       torchrun --nproc-per-node 2 tools/run_pipeline.py --config configs/demo.yaml   (spp_det/distributed.py)
"""
import sys

from spp_det.cli import config_parser, load_from_args, run_main, setup_logging
from spp_det.distributed import Dist
from spp_det.pipeline import STAGES, run_pipeline


def main() -> int:
    p = config_parser(__doc__.splitlines()[0])
    p.add_argument("--stages", help=f"comma-separated subset of: {','.join(STAGES)}")
    p.add_argument("--force", default="", help="comma-separated stages to recompute from scratch (partial outputs "
                   "and caches deleted), with every stage downstream of them")
    args = p.parse_args()
    setup_logging(args.verbose)

    def go() -> None:
        stages = [s for s in args.stages.split(",") if s] if args.stages else None
        unknown = [s for s in (stages or []) + [f for f in args.force.split(",") if f] if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
        run_pipeline(load_from_args(args), stages, progress=not args.no_progress,
                     force=[f for f in args.force.split(",") if f], dist=Dist.from_env())

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
