#!/usr/bin/env python
"""Selective-search throughput with 1 and with N worker processes (same images, same settings).

Usage: python benchmarks/bench_proposals.py [--images ../shared/data/voc2007-test-real13/JPEGImages]
       [--workers 2]
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from proposals.cache import compute_proposals
from proposals.selective_search import SearchParams
from spp_det.data.images import load_image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                           / "voc2007-test-real13" / "JPEGImages"))
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    files = sorted(Path(a.images).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg images in {a.images}")
    items = [(f.stem, str(f), load_image(f).shape[:2]) for f in files]
    rates, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (1, a.workers):
            t = time.perf_counter()
            results[w] = compute_proposals(items, Path(tmp) / f"w{w}.npz", SearchParams(), f"bench{w}",
                                           workers=w, progress=False)
            rates[w] = len(items) / (time.perf_counter() - t)
    same = all(np.array_equal(results[1][k], results[a.workers][k]) for k in results[1])
    boxes = np.mean([len(v) for v in results[1].values()])
    print(f"{len(items)} images from {a.images}, fast mode k=50/100, {boxes:.0f} boxes/image")
    print(f"  1 worker : {rates[1]:.2f} img/s")
    print(f"  {a.workers} workers: {rates[a.workers]:.2f} img/s  ({rates[a.workers] / rates[1]:.2f}x)"
          f"  identical boxes: {same}")


if __name__ == "__main__":
    main()
