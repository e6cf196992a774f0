"""Shared command-line plumbing for the scripts in ``tools/``."""
from __future__ import annotations

import argparse
import logging
import sys
from .config import Config, load_config


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def config_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--config", required=True, help="experiment YAML (configs/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set finetune.iterations=1000 (repeatable)")
    p.add_argument("--workdir", help="override the config's workdir")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def load_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides) + ([f"workdir={args.workdir}"] if args.workdir else [])
    return load_config(args.config, overrides)


def run_main(fn) -> int:
    """Run ``fn()``; turn expected user errors into one clear line and exit code 2."""
    from .data.images import ImageError
    from .data.voc import DatasetError
    try:
        fn()
    except (DatasetError, ImageError, FileNotFoundError, FileExistsError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is kept; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


def stage_main(stage: str, description: str) -> int:
    """Entry point of a one-stage tool: ``tools/<stage>.py --config X``."""
    parser = config_parser(description)
    parser.add_argument("--force", action="store_true",
                        help="recompute from scratch (its partial outputs and caches deleted) and reset every stage "
                             "downstream of it, so they recompute too")
    args = parser.parse_args()
    setup_logging(args.verbose)

    def go() -> None:
        from .config import save_config
        from .pipeline import run_stage
        from .workspace import Workspace
        cfg = load_from_args(args)
        ws = Workspace(cfg)
        ws.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, ws.root / "config.yaml")
        if cfg.dataset.generate is not None:  # the embedded dataset is made on first use
            run_stage(ws, "dataset", progress=not args.no_progress)
        run_stage(ws, stage, progress=not args.no_progress, force=args.force)

    return run_main(go)
