#!/usr/bin/env python
"""Selective-search time per image, methods side by side (1 worker each), and 1 vs N workers.

Methods: OpenCV fast mode with our k = 50/100 (the default), OpenCV fast mode with
its own defaults (k = 150/150), and R-CNN's fast mode re-implemented (``proposals.mode: rcnn``);
each on the same images in one run, so the ratios hold even when the machine's speed moves.
Then the segmentations alone (ours vs OpenCV's implementation of the same algorithm), and the
configured default (``SearchParams()``) with 1 and with N worker processes.

Usage: python benchmarks/bench_proposals.py [--images ../shared/data/voc2007-test-real13/JPEGImages]
       [--workers 2] [--repeat 1]
"""
import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from proposals.cache import compute_proposals
from proposals.selective_search import SearchParams, selective_search
from spp_det.data.images import load_image

METHODS = {
    "opencv fast, k 50/100 (the default until issue 11)": SearchParams(mode="fast", base_k=50, inc_k=50),
    "opencv fast, k 150/300 (OpenCV's defaults)": SearchParams(mode="fast", base_k=150, inc_k=150),
    "rcnn fast mode (ours), k 50/100": SearchParams(mode="rcnn", base_k=50, inc_k=50),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"
                                           / "voc2007-test-real13" / "JPEGImages"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=1, help="passes over the images per method (the fastest counts)")
    a = p.parse_args()
    files = sorted(Path(a.images).glob("*.jpg"))
    if not files:
        raise SystemExit(f"no .jpg images in {a.images}")
    images = [load_image(f) for f in files]
    cv2.setNumThreads(1)  # one core per method, as one proposal worker runs
    selective_search(images[0], METHODS["rcnn fast mode (ours), k 50/100"])  # numba compilation, untimed
    print(f"{len(images)} images from {a.images}, 1 worker, seconds per image (best of {a.repeat}):")
    base = None
    for name, params in METHODS.items():
        best, n = float("inf"), 0
        for _ in range(a.repeat):
            t = time.perf_counter()
            n = sum(len(selective_search(img, params)) for img in images)
            best = min(best, (time.perf_counter() - t) / len(images))
        base = base or best
        print(f"  {name:45s} {best:6.3f} s  ({best / base:.2f}x the first)  {n / len(images):.0f} boxes/image")

    # the segmentations of R-CNN's fast mode (HSV and Lab x k 50, 100): ours share one sorted graph per
    # colour space among the k values; OpenCV's createGraphSegmentation builds and sorts it per k
    from proposals.hierarchical_grouping import graph_segmentations
    spaces = [cv2.COLOR_BGR2HSV_FULL, cv2.COLOR_BGR2Lab]
    timings = {}
    for name, fn in {
        "ours (graph_segmentations)": lambda im: graph_segmentations(im, (50, 100)),
        "OpenCV createGraphSegmentation": lambda im: [
            cv2.ximgproc.segmentation.createGraphSegmentation(0.8, float(k), k).processImage(im) for k in (50, 100)],
    }.items():
        converted = [cv2.cvtColor(img, code) for img in images for code in spaces]
        best = float("inf")
        for _ in range(a.repeat):
            t = time.perf_counter()
            for im in converted:
                fn(im)
            best = min(best, (time.perf_counter() - t) / len(images))
        timings[name] = best
    print("Felzenszwalb-Huttenlocher, 4 segmentations per image (HSV, Lab x k 50, 100):")
    for name, t in timings.items():
        print(f"  {name:45s} {t:6.3f} s  ({t / timings['ours (graph_segmentations)']:.2f}x ours)")

    items = [(f.stem, str(f), img.shape[:2]) for f, img in zip(files, images)]
    rates, results = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for w in (1, a.workers):
            t = time.perf_counter()
            results[w] = compute_proposals(items, Path(tmp) / f"w{w}.npz", SearchParams(), f"bench{w}",
                                           workers=w, progress=False)
            rates[w] = len(items) / (time.perf_counter() - t)
    same = all(np.array_equal(results[1][k], results[a.workers][k]) for k in results[1])
    print(f"default method ({SearchParams().mode}), worker processes:")
    print(f"  1 worker : {rates[1]:.2f} img/s")
    print(f"  {a.workers} workers: {rates[a.workers]:.2f} img/s  ({rates[a.workers] / rates[1]:.2f}x)"
          f"  identical boxes: {same}")


if __name__ == "__main__":
    main()
