"""Window -> conv-map projection and spatial pyramid pooling.

Conventions
-----------
* Input windows: internal boxes, float ``(N, 4)`` ``x1, y1, x2, y2``, 0-based
  inclusive pixel indices of the **original** image.
* Cell windows: int64 ``(N, 4)`` ``cx1, cy1, cx2, cy2``, 0-based inclusive
  indices of conv-map cells; always ``0 <= c1 <= c2 < map size``.
* Backbone geometry: cell ``k`` is centred on resized-image pixel
  ``cell0 + stride * k`` (see :mod:`spp_det.models.geometry`).

Projection rules (``rule``)
---------------------------
``"paper"`` (default; the paper's appendix, with the "proper offset" made
explicit by the backbone's cell-0 centre).  Box edges are scaled as pixel
extents, ``x1_s = r x1`` and ``x2_s = r (x2 + 1) - 1`` with ``r`` the resize
factor, then ``left = floor((x1_s - cell0) / S) + 1`` and
``right = ceil((x2_s - cell0) / S) - 1``: the cells whose centres lie strictly
inside the window.  With ``cell0 = 0`` these are the paper's
``floor(x / S) + 1`` and ``ceil(x / S) - 1``.

``"offset"`` (the released MATLAB code).  Boxes are scaled by
``x_s = x (s - 1) / (min(H, W) - 1)`` (the 1-based formula shifted to 0-based),
then ``left = floor((x1_s - cell0 + offset) / S + 0.5)`` and
``right = ceil((x2_s - cell0 - offset) / S - 0.5)`` with ``offset = S/2 - 1.5``
(6.5 for S = 16): cells whose centres lie within ``[x1 - 1.5, x2 + 1.5]``.

Where ``left > right`` (a window between two cell centres) both become one
cell: ``"paper"``: their midpoint rounded half up; ``"offset"``: the released
code's C integer division of the 1-based indices, ``(l + r) / 2`` truncated
toward zero (``spm_pool_caffe_mex.cpp``), i.e. ``trunc((left + right + 2) / 2) - 1``
0-based, which rounds a half-way midpoint *down* where the paper rule rounds
it up.  Then both are clamped to the map.

Pyramid pooling
---------------
Bin ``i`` of ``n`` over a window of ``h`` cells covers cells
``[floor(i h / n), ceil((i + 1) h / n))``: bins may overlap, never empty (this
is exactly torch's adaptive max pooling).  Output per window: for each level
in the order given (default ``(1, 2, 3, 6)``), the ``(C, n, n)`` block
flattened channel-major (index ``c n^2 + row n + col``), levels concatenated.
Level ``n`` is computed from level ``m`` when ``n`` divides ``m`` (the union of
``m/n`` consecutive bins of ``m`` is exactly bin ``i`` of ``n``), so only the
finest level touches the conv map.
"""
from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F

from . import spp_triton
from .models.geometry import Geometry

DEFAULT_LEVELS = (1, 2, 3, 6)
METHODS = ("auto", "kernel", "triton", "tables", "windows", "roipool")


def spp_dim(channels: int, levels: Sequence[int] = DEFAULT_LEVELS) -> int:
    """Length of one pooled vector: ``channels * sum(n^2)`` (12,800 for 256 x (1,2,3,6))."""
    return channels * sum(n * n for n in levels)


def scale_boxes(boxes: np.ndarray, orig_hw: tuple[int, int], scale: int, rule: str = "paper") -> np.ndarray:
    """Map original-image boxes to the image resized to shorter side ``scale``.

    Returns float64 ``(N, 4)`` boxes in resized-pixel indices (0-based inclusive),
    using the scaling of the given projection ``rule`` (see module docstring).
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    short = min(orig_hw)
    if rule == "paper":
        r = scale / short
        out = b * r
        out[:, 2:] = (b[:, 2:] + 1.0) * r - 1.0
        return out
    if rule == "offset":
        return b * ((scale - 1.0) / (short - 1.0))
    raise ValueError(f"unknown projection rule {rule!r} (use 'paper' or 'offset')")


def project_to_cells(boxes_resized: np.ndarray, geometry: Geometry, map_hw: tuple[int, int],
                     rule: str = "paper", offset: float | None = None) -> np.ndarray:
    """Resized-image boxes ``(N, 4)`` -> cell windows ``(N, 4)`` int64 (see module docstring)."""
    b = np.asarray(boxes_resized, dtype=np.float64).reshape(-1, 4)
    S, c0 = float(geometry.stride), float(geometry.cell0)
    if rule == "paper":
        lo = np.floor((b[:, :2] - c0) / S) + 1.0
        hi = np.ceil((b[:, 2:] - c0) / S) - 1.0
    elif rule == "offset":
        off = S / 2.0 - 1.5 if offset is None else float(offset)
        lo = np.floor((b[:, :2] - c0 + off) / S + 0.5)
        hi = np.ceil((b[:, 2:] - c0 - off) / S - 0.5)
    else:
        raise ValueError(f"unknown projection rule {rule!r} (use 'paper' or 'offset')")
    bad = lo > hi
    if rule == "offset":  # C's int (l1 + r1) / 2 on 1-based cells (l1 = lo + 1): truncation toward zero
        mid = np.trunc((lo + hi + 2.0) / 2.0) - 1.0
    else:
        mid = np.floor((lo + hi) / 2.0 + 0.5)
    lo = np.where(bad, mid, lo)
    hi = np.where(bad, mid, hi)
    limits = np.array([map_hw[1] - 1, map_hw[0] - 1], dtype=np.float64)
    lo = np.clip(lo, 0, limits)
    hi = np.clip(hi, 0, limits)
    return np.concatenate([lo, hi], axis=1).astype(np.int64)


def boxes_to_cells(boxes: np.ndarray, orig_hw: tuple[int, int], scale: int, geometry: Geometry,
                   map_hw: tuple[int, int], rule: str = "paper", offset: float | None = None) -> np.ndarray:
    """Original-image boxes -> cell windows on the conv map of the image at ``scale``."""
    return project_to_cells(scale_boxes(boxes, orig_hw, scale, rule), geometry, map_hw, rule, offset)


def _derive_plan(levels: Sequence[int]) -> tuple[list[int], dict[int, int]]:
    """Which levels to pool from the map, and for the others the finer level they reduce from."""
    direct: list[int] = []
    source: dict[int, int] = {}
    for n in sorted(set(levels), reverse=True):
        parent = next((m for m in direct if m % n == 0), None)
        if parent is None:
            direct.append(n)
        else:
            source[n] = parent
    return direct, source


def _bins(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-open bin bounds ``(N, n)`` for inclusive cell ranges ``[lo, hi]`` (exact integer floor/ceil)."""
    size = (hi - lo + 1)[:, None]
    i = np.arange(n)[None, :]
    start = lo[:, None] + (i * size) // n
    end = lo[:, None] - ((-(i + 1) * size) // n)
    return start, end


def _range_max_tables(fmap_hwc: torch.Tensor, levels_y: int, levels_x: int) -> torch.Tensor:
    """2-D sparse table ``(levels_y, levels_x, H, W, C)``: entry ``[a, b, y, x]`` is the max over
    rows ``[y, y + 2^a)`` and columns ``[x, x + 2^b)`` (entries running past the map are unused)."""
    H, W, _ = fmap_hwc.shape
    rows = [fmap_hwc]
    for a in range(1, levels_y):
        s, prev = 1 << (a - 1), rows[-1]
        cur = prev.clone()
        if H > s:
            torch.maximum(prev[:-s], prev[s:], out=cur[:-s])
        rows.append(cur)
    table = []
    for r in rows:
        cols = [r]
        for b in range(1, levels_x):
            s, prev = 1 << (b - 1), cols[-1]
            cur = prev.clone()
            if W > s:
                torch.maximum(prev[:, :-s], prev[:, s:], out=cur[:, :-s])
            cols.append(cur)
        table.append(torch.stack(cols))
    return torch.stack(table)


def _floor_log2(v: np.ndarray) -> np.ndarray:
    return np.frexp(v.astype(np.float64))[1].astype(np.int64) - 1  # exact for positive integers


def _pool_level_sparse(fmap: torch.Tensor, cells: np.ndarray, n: int) -> torch.Tensor:
    """Level ``n`` of every window by range-max lookups: ``(N, n, n, C)`` (channels last).

    Each bin's max is the max of four (possibly overlapping) power-of-two blocks
    that exactly cover it, read from :func:`_range_max_tables`; one gather for
    all windows instead of one pooling call per window.
    """
    C, H, W = fmap.shape
    N = len(cells)
    ys, ye = _bins(cells[:, 1], cells[:, 3], n)  # (N, n)
    xs, xe = _bins(cells[:, 0], cells[:, 2], n)
    ay, bx = _floor_log2(ye - ys), _floor_log2(xe - xs)
    A, B = int(ay.max()) + 1, int(bx.max()) + 1
    table = _range_max_tables(fmap.permute(1, 2, 0).contiguous(), A, B).reshape(-1, C)
    # corner rows/cols of the covering blocks: (N, n) each
    y0, y1 = ys, ye - (1 << ay)
    x0, x1 = xs, xe - (1 << bx)
    ab = (ay[:, :, None] * B + bx[:, None, :]) * (H * W)  # (N, n_y, n_x)
    idx = np.stack([ab + (y0 * W)[:, :, None] + x0[:, None, :], ab + (y0 * W)[:, :, None] + x1[:, None, :],
                    ab + (y1 * W)[:, :, None] + x0[:, None, :], ab + (y1 * W)[:, :, None] + x1[:, None, :]])
    g = table.index_select(0, torch.from_numpy(idx.reshape(-1)).to(fmap.device)).reshape(4, N, n, n, C)
    return torch.maximum(torch.maximum(g[0], g[1]), torch.maximum(g[2], g[3]))  # (N, n, n, C)


# The CPU kernel.  One pass per window over the cells of its finest level's bins, channels
# innermost (contiguous, vectorised), the coarser levels reduced from those bins, written straight
# into the output row.  The running max ping-pongs between two buffers: an in-place update compiles
# to masked stores (vmaskmovps), which were several times slower on the 2-core AMD machine while
# developing it (not kept as a benchmark).  `benchmarks/bench_spp_pool.py` (2 cores, 2,000 windows
# on 256 x 42 x 57, two idle runs): this kernel 0.034 / 0.048 s, the range-max tables 0.54 / 0.51 s,
# 4 x torchvision.ops.roi_pool 0.59 / 0.57 s (17.4x / 11.8x the kernel); docs/BENCHMARKS.md.
@numba.njit(inline="always", fastmath=True)
def _max_into(dst: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:  # pragma: no cover - compiled
    for c in range(dst.shape[0]):
        x, y = a[c], b[c]
        dst[c] = x if x > y else y


@numba.njit(parallel=True, cache=True, nogil=True, fastmath=True)
def _spp_kernel(fmap: np.ndarray, cells: np.ndarray, levels: np.ndarray, source: np.ndarray,
                offsets: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """fmap ``(H, W, C)`` float32; cells ``(N, 4)``; levels finest first; ``source[l]``: index of
    the level ``l`` is reduced from (``l`` itself when pooled from the map); ``offsets[l]``: its
    first output column in ``out`` ``(N, D)``."""
    C = fmap.shape[2]
    L = levels.shape[0]
    base = np.zeros(L + 1, np.int64)  # level l's bins are rows base[l] .. base[l + 1] - 1
    for l in range(L):
        base[l + 1] = base[l] + levels[l] * levels[l]
    for i in numba.prange(cells.shape[0]):
        x1, y1 = cells[i, 0], cells[i, 1]
        w, h = cells[i, 2] - x1 + 1, cells[i, 3] - y1 + 1
        bins = np.empty((base[L], C), np.float32)  # channels last (< 128 kB: no mmap per window)
        run = np.empty((2, C), np.float32)
        for l in range(L):
            n, s = levels[l], source[l]
            q = levels[s] // n
            for by in range(n):
                for bx in range(n):
                    k = 0
                    run[0, :] = -np.inf
                    if s == l:  # from the map: cells [start, end) of bin (by, bx)
                        for y in range(y1 + (by * h) // n, y1 + ((by + 1) * h + n - 1) // n):
                            for x in range(x1 + (bx * w) // n, x1 + ((bx + 1) * w + n - 1) // n):
                                _max_into(run[1 - k], run[k], fmap[y, x])
                                k = 1 - k
                    else:  # the union of q x q bins of the finer level s
                        for yy in range(by * q, (by + 1) * q):
                            for xx in range(bx * q, (bx + 1) * q):
                                _max_into(run[1 - k], run[k], bins[base[s] + yy * levels[s] + xx])
                                k = 1 - k
                    bins[base[l] + by * n + bx] = run[k]
        for l in range(L):  # channel-major output; reading rows contiguously is 1.8x faster than writing so
            nn, o = levels[l] * levels[l], offsets[l]
            for b in range(nn):
                row = bins[base[l] + b]
                for c in range(C):
                    out[i, o + c * nn + b] = row[c]


def _spp_pool_kernel(fmap: torch.Tensor, cells: np.ndarray, levels: Sequence[int]) -> torch.Tensor:
    C = fmap.shape[0]
    _, source = _derive_plan(levels)
    levels = [int(n) for n in levels]
    # finer levels first, so a reduced level's source bins exist when it is computed
    order = sorted(range(len(levels)), key=lambda k: -levels[k])
    lv = np.array([levels[k] for k in order], np.int64)
    pos = {n: j for j, n in enumerate(lv.tolist())}
    src = np.array([pos[source.get(n, n)] for n in lv.tolist()], np.int64)
    col = np.cumsum([0] + [C * n * n for n in levels])[:-1]
    offsets = np.array([col[k] for k in order], np.int64)
    # numpy's allocator asks for transparent huge pages, so first-touching the 100 MB output of 2,000
    # windows is several times faster than with torch.empty (bench_spp_pool.py, "output allocation")
    out = np.empty((len(cells), C * sum(n * n for n in levels)), np.float32)
    hwc = fmap.detach().to(torch.float32).permute(1, 2, 0).contiguous().numpy()
    # The kernel uses as many threads as torch may (`--threads`, OMP_NUM_THREADS, one per rank under
    # torchrun).  Numba's OpenMP layer, started by the first parallel call, also resets the OpenMP
    # runtime it shares with torch to numba's count (all cores), so torch's count is put back.  Before
    # this, every torchrun rank on 2 cores ran 2 torch and 2 numba threads: data-parallel fine-tuning
    # of the demo took 0.224-0.241 s/it, now 0.090 s/it on 2 idle cores (docs/BENCHMARKS.md, "torchrun,
    # step 2").  The output does not depend on the thread count (one window per thread).
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        _spp_kernel(hwc, np.ascontiguousarray(cells, np.int64), lv, src, offsets, out)
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    return torch.from_numpy(out).to(fmap.dtype)


def spp_pool(fmap: torch.Tensor, cells: np.ndarray | torch.Tensor,
             levels: Sequence[int] = DEFAULT_LEVELS, method: str = "auto") -> torch.Tensor:
    """Pyramid-max-pool each cell window of one conv map.

    fmap: ``(C, H, W)``; cells: ``(N, 4)`` inclusive 0-based cell windows.
    Returns ``(N, C * sum(n^2))`` in ``fmap``'s dtype (order: module docstring).
    Methods, all exact and equal: ``"kernel"`` the compiled CPU kernel above;
    ``"triton"`` the GPU kernel of :mod:`spp_det.spp_triton`;
    ``"tables"`` range-max lookups in torch (:func:`_pool_level_sparse`; runs
    on any device); ``"windows"`` :func:`spp_pool_reference`, one adaptive max
    pool per window and level; ``"roipool"`` one ``torchvision.ops.roi_pool``
    per level (a cell window ``[x1, x2]`` at spatial scale 1 has exactly our
    bins; the only method that back-propagates into ``fmap``: conv
    fine-tuning).  ``"auto"``: the CPU kernel for CPU maps, the Triton kernel
    for maps on a GPU (the tables where Triton is missing).  Only the levels
    that no finer level is a multiple of are pooled from the map; the others
    are reduced from them (except ``"roipool"``).
    """
    C = fmap.shape[0]
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 4)
    N = len(cells)
    if N == 0:
        return fmap.new_zeros((0, C * sum(n * n for n in levels)))
    if method not in METHODS:
        raise ValueError(f"unknown SPP method {method!r} ({', '.join(METHODS)})")
    if method == "roipool":
        from torchvision.ops import roi_pool
        rois = torch.cat([fmap.new_zeros((N, 1)), torch.from_numpy(cells).to(fmap)], 1)
        return torch.cat([roi_pool(fmap[None], rois, n, 1.0).reshape(N, C * n * n) for n in levels], 1)
    if method == "auto":
        method = ("kernel" if fmap.device.type == "cpu"
                  else "triton" if spp_triton.available(fmap.device) else "tables")
    if method == "kernel":
        return _spp_pool_kernel(fmap, cells, levels)
    if method == "windows":
        return spp_pool_reference(fmap, cells, levels)
    direct, source = _derive_plan(levels)
    if method == "triton":
        return spp_triton.spp_pool_triton(fmap, cells, levels, direct, source)
    pooled: dict[int, torch.Tensor] = {n: _pool_level_sparse(fmap, cells, n) for n in direct}
    for n in sorted(source, reverse=True):  # channels-last reductions: the inner C axis stays contiguous
        m = source[n]
        q = m // n
        pooled[n] = pooled[m].reshape(N, n, q, n, q, C).amax(dim=(2, 4))
    return torch.cat([pooled[n].permute(0, 3, 1, 2).reshape(N, C * n * n) for n in levels], dim=1)


def spp_pool_reference(fmap: torch.Tensor, cells: np.ndarray, levels: Sequence[int] = DEFAULT_LEVELS) -> torch.Tensor:
    """Window by window (one adaptive max pool per window and level): the straightforward version,
    used by :func:`spp_pool` for a few windows on a large map, and by the tests."""
    cells = np.asarray(cells, dtype=np.int64).reshape(-1, 4)
    out = [torch.cat([F.adaptive_max_pool2d(fmap[:, y1:y2 + 1, x1:x2 + 1], n).reshape(-1) for n in levels])
           for x1, y1, x2, y2 in cells.tolist()]
    return torch.stack(out) if out else fmap.new_zeros((0, fmap.shape[0] * sum(n * n for n in levels)))


def spp_image(fmap: torch.Tensor, levels: Sequence[int] = DEFAULT_LEVELS) -> torch.Tensor:
    """Image-level SPP (classification): ``(B, C, H, W)`` -> ``(B, C * sum(n^2))``,
    the same bins and order as :func:`spp_pool` over the whole map."""
    B, C = fmap.shape[:2]
    return torch.cat([F.adaptive_max_pool2d(fmap, n).reshape(B, C * n * n) for n in levels], dim=1)
