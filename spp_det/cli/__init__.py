"""The ``spp-det`` command and the plumbing its subcommands share.

``spp-det COMMAND ...`` (also ``python -m spp_det``; from a clone, ``tools/<x>.py`` are thin wrappers of
the same commands) has one subcommand per user action, listed with one line each by ``spp-det --help``
(the table: :data:`spp_det.cli.commands.COMMANDS`). Every command that works on an experiment takes
the same arguments: ``--config`` (a YAML path, or the name of a shipped config such as ``demo``),
``--set key=value`` (repeatable), ``--workdir``, and ``--no-progress`` / ``--quiet`` / ``--verbose``.

Errors a user can fix (bad data, a bad config value, a missing file) end as one line ``error: ...``
and exit code 2; SIGTERM and Ctrl-C keep finished work and exit 143 / 130 (:func:`run_main`).
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..config import Config, load_config


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def shipped_configs() -> list[Path]:
    """Folders that hold the shipped ``configs/*.yaml``: a clone's ``configs/``, or where ``pip install``
    put them (``<prefix>/share/spp-det/configs``, setup.cfg's data_files)."""
    here = Path(__file__).resolve().parents[2] / "configs"
    return [d for d in (here, Path(sys.prefix) / "share" / "spp-det" / "configs") if d.is_dir()]


def find_config(name: str) -> Path:
    """``name`` if it is a file, else the shipped config of that name (``demo`` -> ``configs/demo.yaml``)."""
    p = Path(name)
    if p.is_file():
        return p
    if p.parent == Path(".") and p.suffix in ("", ".yaml", ".yml"):
        for d in shipped_configs():
            f = d / (p.stem + ".yaml")
            if f.is_file():
                return f
    raise FileNotFoundError(f"{name}: no such config file (nor a shipped config of that name; shipped: "
                            f"{', '.join(sorted({f.stem for d in shipped_configs() for f in d.glob('*.yaml')}))})")


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """``--config``, ``--set``, ``--workdir``: the experiment and its overrides."""
    p.add_argument("--config", required=required,
                   help="experiment YAML: a path, or the name of a shipped config (demo, voc07_zf5, ...)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set finetune.iterations=1000 (repeatable)")
    p.add_argument("--workdir", help="override the config's workdir")


def add_output_args(p: argparse.ArgumentParser) -> None:
    """``--no-progress``, ``--quiet``, ``--verbose``: how much a command says."""
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="for scripts: no progress bars, no per-stage lines, warnings only; results and errors still print")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def config_parser(description: str) -> argparse.ArgumentParser:
    """A stand-alone parser with the shared experiment arguments (for benchmark scripts)."""
    p = argparse.ArgumentParser(description=description)
    add_config_args(p)
    add_output_args(p)
    return p


def progress_of(args: argparse.Namespace) -> bool:
    return not (getattr(args, "no_progress", False) or getattr(args, "quiet", False))


def load_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides) + ([f"workdir={args.workdir}"] if args.workdir else [])
    return load_config(find_config(args.config), overrides)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send before killing a job), raised like Ctrl-C so that the same
    clean-up runs: the stage in progress saves what it finished (proposals, fine-tuning checkpoints)."""


def _raise_terminated(signum, frame):
    raise Terminated()


def run_main(fn) -> int:
    """Run ``fn()``; turn expected user errors into one clear line and exit code 2; SIGTERM and
    Ctrl-C keep finished work and exit 143 / 130."""
    from ..data.images import ImageError
    from ..data.voc import DatasetError
    from ..io_utils import WorkdirBusy
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


def build_parser() -> argparse.ArgumentParser:
    from .commands import COMMANDS
    p = argparse.ArgumentParser(
        prog="spp-det", description="SPP-net object detection (He et al., ECCV 2014 / TPAMI 2015): every step "
        "of the method as one command. `spp-det COMMAND --help` for a command's arguments.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for c in COMMANDS:
        sp = sub.add_parser(c.name, help=c.help, description=c.description or c.help,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        c.add_arguments(sp)
        sp.set_defaults(_command=c)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``spp-det [COMMAND] [ARGS]``; returns the exit code."""
    p = build_parser()
    args = p.parse_args(argv)
    if getattr(args, "_command", None) is None:
        p.print_help()
        return 2
    setup_logging(getattr(args, "verbose", False), getattr(args, "quiet", False))
    return run_main(lambda: args._command.run(args))


def tool_main(command: str) -> int:
    """``tools/<x>.py ARGS`` = ``spp-det COMMAND ARGS``."""
    return main([command, *sys.argv[1:]])
