"""Shared command-line plumbing for the scripts in ``tools/``."""
from __future__ import annotations

import argparse
import logging
import signal
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


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before killing a job), raised like Ctrl-C so that the same
    clean-up runs: the stage in progress saves what it finished (proposals, fine-tuning checkpoints)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def run_main(fn) -> int:
    """Run ``fn()``; turn expected user errors into one clear line and exit code 2; SIGTERM and
    Ctrl-C keep finished work and exit 143 / 130."""
    from .data.images import ImageError
    from .data.voc import DatasetError
    from .io_utils import WorkdirBusy
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        fn()
    except (DatasetError, ImageError, FileNotFoundError, FileExistsError, ValueError, KeyError, WorkdirBusy) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # read-only or full disk, permissions: the path and the reason, no traceback
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"{what}: finished work is kept; rerun the same command to resume", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
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
        from .pipeline import open_workdir, run_stage
        from .workspace import Workspace
        cfg = load_from_args(args)
        ws = Workspace(cfg)
        with open_workdir(ws):
            save_config(cfg, ws.layout.config)
            # the embedded dataset is made on first use, and every split is read and checked before any work
            run_stage(ws, "dataset", progress=not args.no_progress)
            run_stage(ws, stage, progress=not args.no_progress, force=args.force)

    return run_main(go)
