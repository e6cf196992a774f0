#!/usr/bin/env python
"""SPP pooling speed: 2,000 windows x 50 bins from one conv5 map (default 256 x 42 x 57).

Compares spp_det.spp.spp_pool (the compiled CPU kernel; the torch range-max tables)
with the per-window reference (one adaptive max pool per window) and with four
torchvision.ops.roi_pool calls (levels 1, 2, 3, 6; a cell window x1..x2 is the
RoI [x1, x2] at spatial scale 1, whose bins are exactly ours).  Checks that all
outputs are equal before timing.

With ``--device cuda`` the same map and windows on the GPU: the Triton kernel (the default there,
float32 and bfloat16 maps), the range-max tables and 4 x roi_pool, each checked equal to the CPU
kernel first, each timed to the end of the GPU's work (best of ``--repeat`` after a warm-up).

Usage: python benchmarks/bench_spp_pool.py [--channels 256] [--windows 2000] [--repeat 5] [--device cpu]
"""
import argparse
import os
import platform

import numba
import numpy as np
import torch
import torchvision.ops as tvops

from timer import best_of

from spp_det.spp import spp_pool, spp_pool_reference


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=256)
    p.add_argument("--height", type=int, default=42)
    p.add_argument("--width", type=int, default=57)
    p.add_argument("--windows", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu, or cuda: time the GPU methods")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    fmap = torch.from_numpy(rng.standard_normal((a.channels, a.height, a.width)).astype(np.float32))
    # selective-search-like windows: log-uniform sizes, anywhere on the map
    w = np.exp(rng.uniform(0, np.log(a.width), a.windows)).astype(int).clip(1, a.width)
    h = np.exp(rng.uniform(0, np.log(a.height), a.windows)).astype(int).clip(1, a.height)
    x1 = rng.integers(0, a.width - w + 1)
    y1 = rng.integers(0, a.height - h + 1)
    cells = np.stack([x1, y1, x1 + w - 1, y1 + h - 1], 1)
    rois = torch.from_numpy(np.concatenate([np.zeros((a.windows, 1)), cells], 1).astype(np.float32))

    def roi_pool4() -> torch.Tensor:
        return torch.cat([tvops.roi_pool(fmap[None], rois, n, 1.0).reshape(a.windows, -1) for n in (1, 2, 3, 6)], 1)

    if a.device != "cpu":
        return on_gpu(fmap, cells, rois, torch.device(a.device), max(a.repeat, 20))
    ref = spp_pool_reference(fmap, cells)
    for m in ("kernel", "tables"):
        assert torch.equal(spp_pool(fmap, cells, method=m), ref), f"spp_pool({m}) differs from the reference"
    assert torch.equal(roi_pool4(), ref), "roi_pool differs from the reference"
    t = {m: best_of(lambda: spp_pool(fmap, cells, method=m), a.repeat) for m in ("kernel", "tables")}
    t_ref = best_of(lambda: spp_pool_reference(fmap, cells), max(1, a.repeat // 2))
    t_roi = best_of(roi_pool4, a.repeat)
    print(f"machine: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), torch {torch.__version__}, "
          f"{torch.get_num_threads()} torch threads, numba {numba.__version__} ({numba.get_num_threads()} threads)")
    print(f"map {a.channels}x{a.height}x{a.width}, {a.windows} windows, levels 1,2,3,6 (50 bins); "
          f"best of {a.repeat}; all outputs equal")
    print(f"  spp_pool kernel (default on CPU) {t['kernel']:8.4f} s")
    print(f"  spp_pool range-max tables        {t['tables']:8.4f} s   ({t['tables'] / t['kernel']:.1f}x slower)")
    print(f"  per-window adaptive max pool     {t_ref:8.4f} s   ({t_ref / t['kernel']:.1f}x slower)")
    print(f"  4 x torchvision.ops.roi_pool     {t_roi:8.4f} s   ({t_roi / t['kernel']:.1f}x slower)")
    few_large_windows(rng, a.repeat)
    output_allocation(a.windows, a.repeat)


def on_gpu(fmap: torch.Tensor, cells: np.ndarray, rois: torch.Tensor, dev: torch.device, repeat: int) -> None:
    ref = spp_pool(fmap, cells, method="kernel")  # the CPU kernel
    g, r = fmap.to(dev), rois.to(dev)
    n = len(cells)

    def roi_pool4() -> torch.Tensor:
        return torch.cat([tvops.roi_pool(g[None], r, k, 1.0).reshape(n, -1) for k in (1, 2, 3, 6)], 1)

    gb = g.to(torch.bfloat16)
    runs = {"spp_pool triton kernel (default)": lambda: spp_pool(g, cells, method="triton"),
            "spp_pool triton kernel, bf16 map": lambda: spp_pool(gb, cells, method="triton"),
            "spp_pool range-max tables": lambda: spp_pool(g, cells, method="tables"),
            "4 x torchvision.ops.roi_pool": roi_pool4}
    for name, fn in runs.items():
        want = ref.to(torch.bfloat16) if "bf16" in name else ref
        assert torch.equal(fn().cpu(), want), f"{name} differs from the CPU kernel"

    def synced(fn):
        return lambda: (fn(), torch.cuda.synchronize(dev))

    t = {name: best_of(synced(fn), repeat) for name, fn in runs.items()}
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}")
    print(f"map {tuple(fmap.shape)}, {n} windows, levels 1,2,3,6 (50 bins); best of {repeat} after a warm-up, "
          "each to the end of the GPU's work; all outputs equal to the CPU kernel's")
    base = t["spp_pool triton kernel (default)"]
    for name, s in t.items():
        print(f"  {name:<34} {1e3 * s:8.3f} ms   ({s / base:.2f}x the Triton kernel)")


def output_allocation(windows: int, repeat: int) -> None:
    """Why the kernel's output comes from numpy: allocating and first-touching the pooled output."""
    shape = (windows, 12800)

    def touch(arr) -> None:
        arr[:, ::1024] = 1  # one write per 4 kB page

    t_np = best_of(lambda: touch(np.empty(shape, np.float32)), repeat)
    t_torch = best_of(lambda: touch(torch.empty(shape).numpy()), repeat)
    print(f"output allocation, {windows} x 12800 float32 ({windows * 12800 * 4 / 1e6:.0f} MB), first touch:")
    print(f"  np.empty (transparent huge pages) {t_np:8.4f} s")
    print(f"  torch.empty                       {t_torch:8.4f} s")


def few_large_windows(rng: np.random.Generator, repeat: int) -> None:
    """Multi-scale fine-tuning's case: a few windows (random scale) on a large map (Lite0, scale
    1200 of a 300-px image: 112 x 75 x 100), where building range-max tables does not pay off."""
    fmap = torch.from_numpy(rng.standard_normal((112, 75, 100)).astype(np.float32))
    w, h = rng.integers(30, 101, 6), rng.integers(20, 76, 6)
    x1, y1 = rng.integers(0, 101 - w), rng.integers(0, 76 - h)
    cells = np.stack([x1, y1, x1 + w - 1, y1 + h - 1], 1)
    outs = {m: spp_pool(fmap, cells, method=m) for m in ("kernel", "tables", "windows")}
    assert all(torch.equal(outs["tables"], o) for o in outs.values()), "methods differ"
    print("map 112x75x100, 6 large windows (multi-scale fine-tuning):")
    for m in ("kernel", "tables", "windows"):
        print(f"  spp_pool(method={m!r:9})        {best_of(lambda: spp_pool(fmap, cells, method=m), repeat):8.4f} s")


if __name__ == "__main__":
    main()
