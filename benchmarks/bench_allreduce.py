#!/usr/bin/env python
"""What data-parallel fine-tuning exchanges each iteration: an all-reduce of the head's gradients.

Usage: torchrun --standalone --nproc-per-node 2 benchmarks/bench_allreduce.py [--dim 16000] [--fc 1024]
       [--classes 6] [--repeat 10]

Sums a float32 tensor the size of fc6-fc8's parameters (``dim`` pooled features into fc6 of ``fc``,
fc7 ``fc`` x ``fc``, fc8 for ``classes`` + 1; Lite0's 16,000-d pooled features and the demo's fc 1,024
and 6 classes by default) across the processes with the process group torchrun's ranks use (gloo on
CPU), and prints the mean time of ``repeat`` calls after two untimed ones.
"""
import argparse
import time

import torch
import torch.distributed as td


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=16000)
    p.add_argument("--fc", type=int, default=1024)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--repeat", type=int, default=10)
    args = p.parse_args()
    from spp_det.distributed import Dist
    d = Dist.from_env()
    n = (args.dim + 1) * args.fc + (args.fc + 1) * args.fc + (args.fc + 1) * (args.classes + 1)
    t = torch.randn(n)
    for _ in range(2):
        td.all_reduce(t)
    d.barrier()
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        td.all_reduce(t)
    dt = (time.perf_counter() - t0) / args.repeat
    if d.main:
        print(f"all-reduce of {n * 4 / 2 ** 20:.1f} MB across {d.world} processes: {1000 * dt:.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
