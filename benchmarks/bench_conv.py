#!/usr/bin/env python
"""conv5 time per image on CPU: NCHW vs channels-last memory format, per backbone.

Usage: python benchmarks/bench_conv.py [--height 688 --width 917] [--repeat 3]
"""
import argparse
import time

import numpy as np
import torch

from spp_det.models import build_backbone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--height", type=int, default=688)
    p.add_argument("--width", type=int, default=917)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--backbones", default="lite0,zf5")
    a = p.parse_args()
    img = np.random.default_rng(0).integers(0, 255, (a.height, a.width, 3), dtype=np.uint8)
    print(f"input {a.height}x{a.width}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in a.backbones.split(","):
        bb = build_backbone(name, "package" if name == "lite0" else None)
        x = bb.preprocess(img)[None]
        res = {}
        with torch.no_grad():
            for fmt in (torch.contiguous_format, torch.channels_last):
                trunk = bb.trunk.to(memory_format=fmt)
                xi = x.contiguous(memory_format=fmt)
                trunk(xi)
                t = time.perf_counter()
                for _ in range(a.repeat):
                    trunk(xi)
                res[fmt] = (time.perf_counter() - t) / a.repeat
        nchw, cl = res[torch.contiguous_format], res[torch.channels_last]
        print(f"  {name:6s} NCHW {nchw:.3f} s   channels-last {cl:.3f} s   ({nchw / cl:.2f}x)")


if __name__ == "__main__":
    main()
