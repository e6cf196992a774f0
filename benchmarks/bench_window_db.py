#!/usr/bin/env python
"""Memory of fine-tuning's window database: what ``build_window_db`` holds for an experiment's fine-tuning
split (with its mirrors, as fine-tuning builds it), measured with ``tracemalloc`` after the split's
proposals are loaded, so that only the database itself counts.

Usage: python benchmarks/bench_window_db.py [--config configs/demo.yaml] [--set key=value ...]
       (the config's proposals must exist: run its proposals stage first)
"""
import sys
import tracemalloc

from spp_det.cli import config_parser, load_from_args, run_main


def main() -> int:
    args = config_parser(__doc__.splitlines()[0]).parse_args(["--config", "demo", *sys.argv[1:]])

    def go() -> None:
        from spp_det.finetune import build_window_db
        from spp_det.workspace import Workspace
        cfg = load_from_args(args)
        ws = Workspace(cfg)
        split = ws.finetune_split
        ws.data.proposals(split)  # held anyway while fine-tuning runs: not counted
        tracemalloc.start()
        # with the mirrors unless use_flipped is false (for check: the most it can hold)
        db = build_window_db(ws.data, split, ws.models.finetune_cfg.use_flipped is not False, cfg)
        held, peak = tracemalloc.get_traced_memory()
        n = sum(len(d.labels) for d in db)
        print(f"{cfg.name} / {split}: {len(db)} views, {n} windows ({n / len(db):.0f} a view); held "
              f"{held / 1e6:.2f} MB = {held / n:.1f} bytes a window (peak while building {peak / 1e6:.2f} MB)")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
