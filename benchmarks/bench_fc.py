#!/usr/bin/env python
"""fc stage speed: 2,000 windows through fc6, fc7 (+ fc8) of the paper's sizes, against the machine's
own fp32 matrix-multiply rate, with the truncated-SVD and bfloat16 test-time options.

* machine rate: the best GFLOP/s of plain ``torch.mm`` in fp32 over a few large square and
  fc-shaped products (what this torch build, its BLAS and the core count can do);
* fc stage: :class:`spp_det.head.SPPHead` (12,800 -> 4,096 -> 4,096 -> 21, ReLUs included), timed
  the way the test stage runs it (2,048-window batches), GFLOP/s counted from the three products;
* the same with ``test.fc_svd`` (fc6 rank 1,024, fc7 rank 256, as in Fast R-CNN) and ``test.fc_dtype:
  bfloat16`` (speed depends on the CPU having bf16 instructions: AVX512-BF16 / AMX).

Usage: python benchmarks/bench_fc.py [--windows 2000] [--in-dim 12800] [--fc-dim 4096] [--classes 20]
"""
import argparse
import os
import platform

import torch

from timer import best_of

from spp_det.head import SPPHead, batched, test_time_fc


def cpu_flags() -> str:
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "?"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=2000)
    p.add_argument("--in-dim", type=int, default=12800)
    p.add_argument("--fc-dim", type=int, default=4096)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--svd", type=int, nargs=2, default=[1024, 256])
    p.add_argument("--repeat", type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    N, D, F, C = a.windows, a.in_dim, a.fc_dim, a.classes

    rates = {}
    for m, k, n in ((4096, 4096, 4096), (N, D, F), (N, F, F)):
        x, w = torch.randn(m, k), torch.randn(k, n)
        rates[f"{m}x{k} @ {k}x{n}"] = 2 * m * k * n / best_of(lambda: torch.mm(x, w), a.repeat) / 1e9
    peak = max(rates.values())

    head = SPPHead(D, C, F).eval()
    x = torch.rand(N, D)
    flops = 2 * N * (D * F + F * F + F * (C + 1))

    def fc_stage(h) -> torch.Tensor:
        with torch.no_grad():
            return batched(lambda b: head.fc8(h.fc7_features(b)), x, 2048)

    t_fc = best_of(lambda: fc_stage(head), a.repeat)
    svd = test_time_fc(head, a.svd)
    bf16 = test_time_fc(head, None, "bfloat16")
    both = test_time_fc(head, a.svd, "bfloat16")
    t_svd = best_of(lambda: fc_stage(svd), a.repeat)
    t_bf = best_of(lambda: fc_stage(bf16), max(1, a.repeat // 2))
    t_both = best_of(lambda: fc_stage(both), max(1, a.repeat // 2))
    r6, r7 = a.svd
    flops_svd = 2 * N * (r6 * (D + F) + r7 * (F + F) + F * (C + 1))

    print(f"machine: {platform.processor() or platform.machine()} ({os.cpu_count()} cores; {cpu_flags()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, best of {a.repeat}")
    print("plain fp32 torch.mm:")
    for k, v in rates.items():
        print(f"  {k:<28} {v:8.1f} GFLOP/s")
    print(f"fc stage, {N} windows, {D} -> {F} -> {F} -> {C + 1} ({flops / 1e9:.0f} GFLOP):")
    print(f"  fp32                      {t_fc:8.3f} s  {flops / t_fc / 1e9:7.1f} GFLOP/s = "
          f"{100 * flops / t_fc / 1e9 / peak:.0f} % of the machine's best fp32 mm")
    print(f"  SVD fc6 {r6} / fc7 {r7}      {t_svd:8.3f} s  ({t_fc / t_svd:.2f}x faster; {flops_svd / 1e9:.0f} GFLOP, "
          f"{flops_svd / t_svd / 1e9:.1f} GFLOP/s)")
    print(f"  bfloat16                  {t_bf:8.3f} s  ({t_fc / t_bf:.2f}x)")
    print(f"  SVD + bfloat16            {t_both:8.3f} s  ({t_fc / t_both:.2f}x)")


if __name__ == "__main__":
    main()
