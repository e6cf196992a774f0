"""Running the stages of :mod:`spp_det.stages` in order, skipping those already done.

``run_pipeline(cfg)`` runs every stage of the table (or ``stages``), in table order. A stage whose
manifest holds its current key and whose outputs exist is skipped; one that reruns says why (which
key parts changed). ``force`` resets the named stages and everything downstream of them first
(:func:`spp_det.stages.force`), so they are recomputed from scratch.

Under torchrun (``dist``, :mod:`spp_det.distributed`) every rank runs this same sequence: a stage the
table marks ``sharded`` runs on every rank (each on its share of the work), any other on rank 0
alone; a barrier ends each stage, and rank 0 alone locks the work directory, writes the config and
the manifests, and prints.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator, Optional, Sequence

from .config import Config, save_config
from .distributed import Dist
from .io_utils import remove_stale_temps, save_json, workdir_lock
from .stages import STAGE_NAMES, force as reset_stage, get_stage, mark_done, manifest_info, stale_reason
from .workspace import Workspace

log = logging.getLogger(__name__)
STAGES = STAGE_NAMES  # the stage names in order (the table itself: spp_det.stages.STAGES)


@contextlib.contextmanager
def open_workdir(ws: Workspace) -> Iterator[None]:
    """Hold the work directory's lock (one run at a time) and clear what killed runs left there:
    temporary files of writes that never finished, in the work directory and the shared caches. Under
    torchrun, rank 0 does this and the other ranks wait for it."""
    if not ws.dist.main:
        ws.dist.barrier()
        yield
        return
    with workdir_lock(ws.root):
        n = remove_stale_temps(ws.root, depth=3)  # reaches <root>/conv5/<cache dir>/ and <root>/proposals/
        for shared, depth in ((ws.layout.conv5_root, 1), (ws.layout.proposals_dir, 0)):
            if not shared.resolve().is_relative_to(ws.root.resolve()):  # a shared cache elsewhere
                n += remove_stale_temps(shared, depth)
        if n:
            log.info("removed %d temporary files left by killed runs", n)
        ws.dist.barrier()
        yield


def run_stage(ws: Workspace, stage: str, progress: bool = True, force: bool = False, quiet: bool = False) -> dict:
    """Run one stage unless it is already done for this config and data; returns its timing record.

    ``force``: reset it and everything downstream first (recomputed from scratch); ``quiet``: no line
    per stage (what the stage prints as its result, such as the AP tables, still prints). Refuses to run
    when a stage it reads from is missing or was made under another config or data, so stale outputs
    are never consumed.
    """
    st = get_stage(stage)
    main = ws.dist.main
    say = print if main and not quiet else (lambda *a, **k: None)
    if not st.used(ws):
        say(f"[{stage}] not used by this config, skipped", flush=True)
        return {"stage": stage, "skipped": True, "seconds": None}
    stale = [u for u in st.reads if stale_reason(ws, u) is not None]
    if stale:
        raise ValueError(f"stage {stage!r} needs {', '.join(stale)} first: missing, or made under another "
                         f"config or other data (run `spp-det run`, or the stage commands in order)")
    if force:
        if main:
            reset_stage(ws, stage)
        ws.dist.barrier()
    reason = stale_reason(ws, stage) if st.manifest else None
    if st.manifest and reason is None:
        log.info("stage %s: done for this config and data, skipped", stage)
        say(f"[{stage}] up to date, skipped", flush=True)
        return {"stage": stage, "skipped": True, "seconds": manifest_info(ws, stage).get("seconds")}
    if reason is not None:
        log.info("stage %s: running (%s)", stage, "forced" if force else reason)
    say(f"[{stage}] running", flush=True)
    t0 = time.perf_counter()
    if st.sharded:
        outputs = st.run(ws, progress and main)
    elif main:
        with ws.dist.alone():  # with the threads of the ranks that wait on this machine
            outputs = st.run(ws, progress and main)
    else:
        outputs = []
    ws.dist.barrier()  # every rank's share is written (or rank 0's stage done)
    dt = time.perf_counter() - t0
    if st.manifest and main:
        mark_done(ws, stage, outputs, {"seconds": dt})
    ws.dist.barrier()  # the manifest exists before any rank looks at the next stage
    say(f"[{stage}] finished in {dt:.1f} s", flush=True)
    return {"stage": stage, "skipped": False, "seconds": dt}


def run_pipeline(cfg: Config, stages: Optional[Sequence[str]] = None, progress: bool = True,
                 force: Sequence[str] = (), dist: Dist = Dist(), quiet: bool = False) -> Workspace:
    """Run ``stages`` (default: all) in table order; ``force``: stages to recompute from scratch with
    everything downstream of them; ``dist``: this process's rank under torchrun. Prints a timing table
    at the end (not if ``quiet``: nor a line per stage)."""
    ws = Workspace(cfg, dist)
    for s in list(stages or ()) + list(force):
        get_stage(s)  # unknown names fail before any work
    with open_workdir(ws):
        if dist.main:
            save_config(cfg, ws.layout.config)
        timings = []
        for s in STAGES:
            if s in force:  # resets its downstream stages too, whether or not they run now
                if dist.main:
                    reset_stage(ws, s)
                dist.barrier()
            if stages is None or s in stages:
                timings.append(run_stage(ws, s, progress, quiet=quiet))
    lines = ["Stage times (this run; skipped stages show their last run's time):"]
    for t in timings:
        sec = t["seconds"]
        lines.append(f"  {t['stage']:<11} {'skipped' if t['skipped'] else 'ran':>8}  "
                     f"{(f'{sec:8.1f} s') if sec is not None else '       -  '}")
    if dist.main:
        if not quiet:
            print("\n".join(lines), flush=True)
        save_json(timings, ws.layout.timings)
    return ws
