#!/usr/bin/env python
"""1-scale vs 5-scale detection cost per image on CPU: conv5 at every scale, and SPP pooling of
~2,000 windows (each at its chosen scale), on real photos.

Usage: python benchmarks/bench_scales.py [--images ../shared/data/voc2007-test-real13/JPEGImages]
       [--backbones lite0,zf5] [--limit 13]
"""
import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from spp_det.data.images import load_image
from spp_det.features import WindowPooler, compute_conv5_pyramid
from spp_det.models import build_backbone

ONE, FIVE = [688], [480, 576, 688, 864, 1200]


def windows(h: int, w: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Selective-search-like windows: log-uniform sizes anywhere in the image (internal boxes)."""
    bw = np.exp(rng.uniform(np.log(8), np.log(w), n)).clip(8, w)
    bh = np.exp(rng.uniform(np.log(8), np.log(h), n)).clip(8, h)
    x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
    return np.stack([x1, y1, x1 + bw - 1, y1 + bh - 1], 1).astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default="../shared/data/voc2007-test-real13/JPEGImages")
    p.add_argument("--backbones", default="lite0,zf5")
    p.add_argument("--limit", type=int, default=13)
    p.add_argument("--windows", type=int, default=2000)
    a = p.parse_args()
    files = sorted(Path(a.images).glob("*.jpg"))[: a.limit]
    if not files:
        raise SystemExit(f"no .jpg images in {a.images}")
    imgs = [load_image(f) for f in files]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{len(imgs)} images from {a.images}")
    for name in a.backbones.split(","):
        bb = build_backbone(name, "package" if name == "lite0" else None)
        compute_conv5_pyramid(bb, imgs[0], ONE)  # warm-up
        for scales in (ONE, FIVE):
            pooler = WindowPooler(bb, scales)
            rng = np.random.default_rng(0)
            t_conv = t_pool = 0.0
            for img in imgs:
                t = time.perf_counter()
                maps = compute_conv5_pyramid(bb, img, scales)
                t_conv += time.perf_counter() - t
                boxes = windows(*img.shape[:2], a.windows, rng)
                t = time.perf_counter()
                pooler.pool(maps, boxes, img.shape[:2])
                t_pool += time.perf_counter() - t
            n = len(imgs)
            print(f"  {name:6s} {len(scales)} scale(s) {str(scales):28s} conv5 {t_conv / n:.3f} s/img   "
                  f"pooling {a.windows} windows {t_pool / n:.3f} s/img")


if __name__ == "__main__":
    with torch.no_grad():
        main()
