#!/usr/bin/env python
"""What data-parallel fine-tuning costs per iteration: the gradient all-reduce, and a head step with and
without DistributedDataParallel.

Usage: OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 benchmarks/bench_ddp.py [--dim 5600]
       [--fc 1024] [--classes 6] [--windows 64] [--repeat 30]
       (or plain python: one process, for the comparison)

Every process trains its own fc6-fc8 head (``dim`` pooled features -- Lite0's 5,600 = 112 channels x
50 bins by default -- into fc6 of ``fc``, fc7, fc8 for ``classes`` + 1; dropout 0.5; SGD with momentum
and weight decay) on ``windows`` random windows: alone (no exchange), and wrapped in
DistributedDataParallel (gloo on CPU, as torchrun's ranks use). Also times an all-reduce of a tensor
the size of the head's parameters. Prints medians over ``repeat`` iterations after 10 untimed ones.
"""
import argparse
import time

import torch
import torch.distributed as td
import torch.nn as nn
import torch.nn.functional as F


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dim", type=int, default=5600)
    p.add_argument("--fc", type=int, default=1024)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--windows", type=int, default=64)
    p.add_argument("--repeat", type=int, default=30)
    args = p.parse_args()
    from spp_det.distributed import Dist
    d = Dist.from_env()
    torch.manual_seed(0)

    def head() -> nn.Module:
        return nn.Sequential(nn.Linear(args.dim, args.fc), nn.ReLU(), nn.Dropout(0.5), nn.Linear(args.fc, args.fc),
                             nn.ReLU(), nn.Dropout(0.5), nn.Linear(args.fc, args.classes + 1))

    def median_ms(step) -> float:
        times = []
        for i in range(10 + args.repeat):
            t0 = time.perf_counter()
            step()
            if i >= 10:
                times.append(time.perf_counter() - t0)
        return 1000 * sorted(times)[len(times) // 2]

    x, y = torch.randn(args.windows, args.dim), torch.randint(0, args.classes + 1, (args.windows,))
    rows = []
    for name, wrap in (("head step, no exchange", False), ("head step, DistributedDataParallel", True)):
        if wrap and d.world == 1:
            continue
        m = head()
        net = nn.parallel.DistributedDataParallel(m) if wrap else m
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        d.barrier()
        rows.append((name, median_ms(step)))
    if d.world > 1:
        flat = torch.randn(sum(q.numel() for q in head().parameters()))
        d.barrier()
        rows.append((f"all-reduce of {flat.numel() * 4 / 2 ** 20:.1f} MB", median_ms(lambda: td.all_reduce(flat))))
    if d.main:
        print(f"{d.world} process(es), {torch.get_num_threads()} thread(s) each, {args.windows} windows:")
        for name, ms in rows:
            print(f"  {name:<40} {ms:7.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
