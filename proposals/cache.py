"""Per-split proposal cache: one ``.npz`` keyed by image id, built by worker processes.

The file maps each image id to a float32 ``(N, 4)`` array of internal boxes
(0-based inclusive ``x1, y1, x2, y2``) and holds a ``__meta__`` JSON entry with
the hash of the parameters that made it; a file made with other parameters is
never reused.  While computing, a ``<name>.partial.npz`` checkpoint is written
atomically every ``checkpoint_every`` images, so a killed run resumes where it
stopped; the final file replaces it atomically. Under torchrun each rank searches its share into
``<name>.shard<r>of<w>.npz`` (resumable the same way) and rank 0 merges them into the file one process
would have written (:func:`merge_shards`).
"""
from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from spp_det.data.images import load_image
from spp_det.io_utils import save_npz

from .selective_search import SearchParams, selective_search

log = logging.getLogger(__name__)
META = "__meta__"


def save_proposals(path: str | Path, boxes: dict[str, np.ndarray], meta: dict) -> None:
    arrays = {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in boxes.items()}
    arrays[META] = np.array(json.dumps(meta, sort_keys=True))
    save_npz(path, **arrays)


def load_proposals(path: str | Path, expect_hash: Optional[str] = None) -> dict[str, np.ndarray]:
    """Read a proposal file -> ``{image_id: (N, 4) float32}``; checks the hash if given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: proposal file not found")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z[META])) if META in z.files else {}
        if expect_hash is not None and meta.get("hash") != expect_hash:
            raise ValueError(f"{path}: proposals were made with other parameters "
                             f"(hash {meta.get('hash')} != {expect_hash})")
        return {k: z[k] for k in z.files if k != META}


def read_meta(path: str | Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z[META])) if META in z.files else {}


def _work(item: tuple[str, str, tuple[int, int], SearchParams]) -> tuple[str, np.ndarray, float]:
    image_id, path, hw, params = item
    t = time.perf_counter()
    boxes = selective_search(load_image(path, hw), params)
    return image_id, boxes, time.perf_counter() - t


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core; no oversubscription
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it saves and stops us
    try:  # Linux: die with the parent, even when it is killed with -9, instead of writing BrokenPipe tracebacks
        import ctypes
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _meta(params: SearchParams, params_hash: str, num_images: int) -> dict:
    return {"hash": params_hash, "params": params.to_dict(), "num_images": num_images}


def shard_path(out_path: str | Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` writes its share of a split: ``<name>.shard<rank>of<world>.npz``."""
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}.shard{rank}of{world}.npz")


def shard_files(out_path: str | Path) -> list[Path]:
    """Every shard file of a split on disk, of any world size, with their partial checkpoints."""
    out_path = Path(out_path)
    return sorted(out_path.parent.glob(f"{out_path.stem}.shard*of*.npz"))


def merge_shards(out_path: str | Path, shards: Sequence[Path], items: Sequence[tuple[str, str, tuple[int, int]]],
                 params: SearchParams, params_hash: str) -> None:
    """Write ``out_path`` from the shard files of every rank (each made with ``params_hash``), as
    :func:`compute_proposals` would have written it for ``items`` in one process; then every shard file
    of the split is removed (also those a killed run with another number of ranks left)."""
    done: dict[str, np.ndarray] = {}
    for s in shards:
        done.update(load_proposals(s, params_hash))
    missing = [i for i, _, _ in items if i not in done]
    if missing:
        raise ValueError(f"{out_path}: the ranks' shards lack {len(missing)} images, e.g. {missing[:3]}")
    save_proposals(out_path, {i: done[i] for i, _, _ in items}, _meta(params, params_hash, len(items)))
    for s in shard_files(out_path):
        s.unlink()


def partial_path(out_path: str | Path) -> Path:
    """Where :func:`compute_proposals` checkpoints a split in progress: ``<name>.partial.npz``."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + ".partial.npz")


def compute_proposals(items: Sequence[tuple[str, str, tuple[int, int]]], out_path: str | Path,
                      params: SearchParams, params_hash: str, workers: int = 2,
                      checkpoint_every: int = 100, progress: bool = True) -> dict[str, np.ndarray]:
    """Selective search for ``items`` = ``[(image_id, image_path, (H, W)), ...]``.

    Writes ``out_path`` (atomically) and returns the boxes.  Resumes from a
    partial checkpoint made with the same ``params_hash``; skips all work if
    ``out_path`` already holds a complete result for the same hash.
    """
    out_path = Path(out_path)
    ids = [i for i, _, _ in items]
    meta = _meta(params, params_hash, len(ids))
    if out_path.is_file() and read_meta(out_path).get("hash") == params_hash:
        done = load_proposals(out_path)
        if set(done) == set(ids):
            return done
    partial = partial_path(out_path)
    done: dict[str, np.ndarray] = {}
    if partial.is_file():
        try:
            if read_meta(partial).get("hash") == params_hash:
                done = {k: v for k, v in load_proposals(partial).items() if k in set(ids)}
                log.info("resuming proposals from %s (%d/%d done)", partial, len(done), len(ids))
        except (ValueError, OSError, EOFError):  # unreadable checkpoint: start over
            done = {}
    todo = [(i, str(p), hw, params) for i, p, hw in items if i not in done]
    big = sum(1 for *_, hw, _ in todo if params.max_image_side and max(hw) > params.max_image_side)
    if big:
        log.info("%s: %d of %d images are larger than proposals.max_image_side = %d px: searched downscaled to it, "
                 "boxes mapped back", out_path.stem, big, len(todo), params.max_image_side)
    t0 = time.perf_counter()
    busy = 0.0
    last_ckpt = len(done)
    bar = tqdm(total=len(ids), initial=len(done), desc=f"proposals {out_path.stem}", unit="img",
               disable=not progress)
    pool = mp.get_context("spawn").Pool(workers, initializer=_init_worker) if workers > 1 and todo else None
    try:
        results: Iterable = pool.imap_unordered(_work, todo, chunksize=1) if pool else map(_work, todo)
        for image_id, boxes, dt in results:
            done[image_id] = boxes
            busy += dt
            bar.update(1)
            if len(done) - last_ckpt >= checkpoint_every and len(done) < len(ids):
                save_proposals(partial, done, meta)
                last_ckpt = len(done)
        if pool:
            pool.close()
            pool.join()
    except BaseException:
        if pool:
            pool.terminate()
            pool.join()
        if len(done) > last_ckpt:  # keep what was finished for the next run
            save_proposals(partial, done, meta)
        raise
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    if todo:
        n = sum(len(done[i]) for i, *_ in todo)
        log.info("selective search: %d images in %.1f s (%.2f img/s, %.2f s/img per worker, %.0f boxes/img)",
                 len(todo), wall, len(todo) / max(wall, 1e-9), busy / len(todo), n / len(todo))
    save_proposals(out_path, done, meta)
    if partial.exists():
        os.remove(partial)
    return done
