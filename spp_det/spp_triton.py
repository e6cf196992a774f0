"""Spatial pyramid pooling of many windows on a GPU: a Triton kernel.

Conventions
-----------
The same as :mod:`spp_det.spp` (which calls this module for maps on a GPU):
``fmap`` ``(C, H, W)`` on a CUDA device, any float dtype; ``cells`` int ``(N, 4)``
``cx1, cy1, cx2, cy2`` inclusive 0-based cell windows inside the map.  Output
``(N, C * sum(n^2))`` in ``fmap``'s dtype and on its device: for each level in
the order given, the ``(C, n, n)`` block flattened channel-major, levels
concatenated.  Bin ``i`` of ``n`` over ``h`` cells covers cells
``[floor(i h / n), ceil((i + 1) h / n))``.  Maximum is exact in every dtype, so
the output equals the CPU kernel's bit for bit (``tests/test_spp.py``).

How it works, two kernels per level pooled from the map (6 of the default
1, 2, 3, 6): one program per (window, bin, block of channels) reads the bin's
cells from the map in ``(H, W, C)`` layout (contiguous channels: coalesced
loads) and writes the bin's max channels-last; then one program per (window,
block of channels) loads that ``(bins, channels)`` tile, writes it transposed
into the channel-major output row, and reduces the levels that divide it (1, 2
and 3: the union of ``q x q`` finer bins is exactly the coarser bin, see
:mod:`spp_det.spp`) from the tile in registers.  The map is read once and every
store is coalesced.  ``benchmarks/bench_spp_pool.py --device cuda`` times it against
``torchvision.ops.roi_pool`` (docs/BENCHMARKS.md).

With ``TRITON_INTERPRET=1`` in the environment before this module is imported,
Triton runs the kernel on the CPU (on CPU tensors): how CI tests the kernel's
logic without a GPU.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch

try:  # torch's Linux wheels bring Triton; elsewhere the GPU falls back to the range-max tables
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the installation
    triton = None


def available(device: torch.device) -> bool:
    """Whether the kernel can pool a map on ``device`` (a CUDA device, or any with TRITON_INTERPRET=1)."""
    if triton is None:
        return False
    return device.type == "cuda" or interpreting()


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if triton is not None:
    @triton.jit
    def _fine_bins_kernel(fmap_ptr, cells_ptr, bins_ptr, W, C,
                          n: tl.constexpr, BLOCK_C: tl.constexpr):  # pragma: no cover - compiled
        """Level ``n`` from the map.  fmap ``(H, W, C)`` contiguous; cells ``(N, 4)`` int64; bins
        ``(N, n * n, C)`` channels last.  Program (window i, bin b, channel block cb)."""
        i = tl.program_id(0).to(tl.int64)
        b = tl.program_id(1)
        cb = tl.program_id(2)
        by = b // n
        bx = b % n
        x1 = tl.load(cells_ptr + i * 4)
        y1 = tl.load(cells_ptr + i * 4 + 1)
        w = tl.load(cells_ptr + i * 4 + 2) - x1 + 1
        h = tl.load(cells_ptr + i * 4 + 3) - y1 + 1
        ys = y1 + (by * h) // n  # all non-negative: // is floor
        ye = y1 + ((by + 1) * h + n - 1) // n
        xs = x1 + (bx * w) // n
        xe = x1 + ((bx + 1) * w + n - 1) // n
        c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = c < C
        acc = tl.full([BLOCK_C], float("-inf"), tl.float32)
        for y in range(ys, ye):
            for x in range(xs, xe):
                v = tl.load(fmap_ptr + (y * W + x) * C + c, mask=mask, other=float("-inf"))
                acc = tl.maximum(acc, v.to(tl.float32))
        tl.store(bins_ptr + (i * (n * n) + b) * C + c, acc.to(bins_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _reduce_level(tile, r, n: tl.constexpr, k: tl.constexpr, NBK: tl.constexpr):  # pragma: no cover
        """Level ``k`` (``k`` divides ``n``) from the ``(NB, BLOCK_C)`` tile of level ``n``'s bins (row
        ``r`` = bin ``by * n + bx``): ``(NBK, BLOCK_C)``, row ``t`` = bin ``ty * k + tx``."""
        q: tl.constexpr = n // k
        rk = tl.arange(0, NBK)
        out = tl.full([NBK, tile.shape[1]], float("-inf"), tl.float32)
        for t in tl.static_range(k * k):
            member = ((r // n) // q == t // k) & ((r % n) // q == t % k)
            v = tl.max(tl.where(member[:, None], tile, float("-inf")), axis=0)
            out = tl.where(rk[:, None] == t, v[None, :], out)
        return out

    @triton.jit
    def _store_level(out_ptr, row, col, tile, c, C, k: tl.constexpr, NBK: tl.constexpr):  # pragma: no cover
        """Write a ``(NBK, BLOCK_C)`` tile of level ``k`` channel-major: column ``col + c * k * k + t``."""
        rk = tl.arange(0, NBK)
        dst = out_ptr + row + col + c[None, :] * (k * k) + rk[:, None]
        tl.store(dst, tile.to(out_ptr.dtype.element_ty), mask=(rk[:, None] < k * k) & (c[None, :] < C))

    @triton.jit
    def _assemble_kernel(bins_ptr, out_ptr, C, D, col, col1, col2, col3,
                         n: tl.constexpr, NB: tl.constexpr, k1: tl.constexpr, NB1: tl.constexpr,
                         k2: tl.constexpr, NB2: tl.constexpr, k3: tl.constexpr, NB3: tl.constexpr,
                         BLOCK_C: tl.constexpr):  # pragma: no cover - compiled
        """Level ``n``'s bins ``(N, n * n, C)`` -> its channel-major block of ``out`` ``(N, D)`` at ``col``,
        and up to three levels ``k1, k2, k3`` (0: none) reduced from them at ``col1, col2, col3``.
        Program (window i, channel block cb)."""
        i = tl.program_id(0).to(tl.int64)
        cb = tl.program_id(1)
        c = cb * BLOCK_C + tl.arange(0, BLOCK_C)
        r = tl.arange(0, NB)
        valid = (r[:, None] < n * n) & (c[None, :] < C)
        tile = tl.load(bins_ptr + (i * (n * n) + r[:, None]) * C + c[None, :], mask=valid,
                       other=float("-inf")).to(tl.float32)
        row = i * D
        _store_level(out_ptr, row, col, tile, c, C, n, NB)
        if k1 > 0:
            _store_level(out_ptr, row, col1, _reduce_level(tile, r, n, k1, NB1), c, C, k1, NB1)
        if k2 > 0:
            _store_level(out_ptr, row, col2, _reduce_level(tile, r, n, k2, NB2), c, C, k2, NB2)
        if k3 > 0:
            _store_level(out_ptr, row, col3, _reduce_level(tile, r, n, k3, NB3), c, C, k3, NB3)


def spp_pool_triton(fmap: torch.Tensor, cells: np.ndarray, levels: Sequence[int],
                    direct: Sequence[int], source: dict[int, int]) -> torch.Tensor:
    """Pool ``cells`` ``(N, 4)`` from ``fmap`` ``(C, H, W)`` (see the module docstring).

    ``direct``: the levels pooled from the map; ``source[n]``: the finer level each other level
    ``n`` is reduced from (:func:`spp_det.spp._derive_plan`).
    """
    if triton is None:
        raise RuntimeError("the Triton SPP kernel needs the triton package (it comes with torch's Linux wheels)")
    C, H, W = fmap.shape
    N = len(cells)
    levels = [int(n) for n in levels]
    col = dict(zip(levels, np.cumsum([0] + [C * n * n for n in levels])[:-1].tolist()))
    D = C * sum(n * n for n in levels)
    hwc = fmap.detach().permute(1, 2, 0).contiguous()
    cells_t = torch.as_tensor(np.ascontiguousarray(cells, np.int64)).to(fmap.device)
    out = torch.empty((N, D), dtype=fmap.dtype, device=fmap.device)
    for n in direct:
        block = min(256, triton.next_power_of_2(C))
        bins = torch.empty((N, n * n, C), dtype=fmap.dtype, device=fmap.device)
        _fine_bins_kernel[(N, n * n, triton.cdiv(C, block))](hwc, cells_t, bins, W, C, n=n, BLOCK_C=block,
                                                             num_warps=max(1, min(4, block // 64)))
        derived = sorted((k for k, m in source.items() if m == n), reverse=True)
        groups = [derived[j:j + 3] for j in range(0, len(derived), 3)] or [[]]
        nb = triton.next_power_of_2(n * n)
        block = max(1, min(64, triton.next_power_of_2(C), 4096 // nb))
        for g, ks in enumerate(groups):  # the first call writes level n too; at most 3 reduced levels a call
            ks = ks + [0] * (3 - len(ks))
            args = [x for k in ks for x in (k, triton.next_power_of_2(max(1, k * k)))]
            cols = [col[k] if k else 0 for k in ks]
            _assemble_kernel[(N, triton.cdiv(C, block))](bins, out, C, D, col[n], *cols,
                                                         n=n, NB=nb, k1=args[0], NB1=args[1], k2=args[2],
                                                         NB2=args[3], k3=args[4], NB3=args[5], BLOCK_C=block)
    return out
