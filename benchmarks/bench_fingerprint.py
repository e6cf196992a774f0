#!/usr/bin/env python
"""Cost of the data fingerprints in stage keys at VOC 2007 size (9,963 images, ~87 KB each, 2.5 objects).

Writes a VOC-layout dataset of that size (random bytes stand in for the JPEGs: hashing does not decode
them; the XMLs are real) under --root, then times, in one process:

* loading the splits (XML parsing and validation: what every run already pays),
* the annotations fingerprint of the parsed records,
* the images fingerprint the first time (sha256 of every file: files in the page cache, just written),
* the images fingerprint again in the same process (memoised on path, size and mtime).

A cold page cache (first run after a reboot) reads the ~870 MB from disk on top; not measurable here
without root. Usage: python benchmarks/bench_fingerprint.py [--images 9963] [--root /tmp/fp_voc]
"""
import argparse
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from spp_det.data.fingerprint import annotations_fingerprint, images_fingerprint
from spp_det.data.voc import VOCDataset

CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow"]


def write_dataset(root: Path, n: int, kb: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(1, n + 1)]
    for i in ids:
        (root / "JPEGImages" / f"{i}.jpg").write_bytes(os.urandom(int(kb * 1024 * rng.uniform(0.5, 1.5))))
        objs = "".join(
            f"<object><name>{CLASSES[rng.integers(len(CLASSES))]}</name><difficult>0</difficult>"
            f"<truncated>0</truncated><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x + 80}</xmax>"
            f"<ymax>{y + 60}</ymax></bndbox></object>"
            for x, y in rng.integers(1, 300, size=(int(rng.integers(1, 5)), 2)))
        (root / "Annotations" / f"{i}.xml").write_text(
            f"<annotation><filename>{i}.jpg</filename><size><width>500</width><height>375</height>"
            f"<depth>3</depth></size>{objs}</annotation>")
    half = n // 2
    (root / "ImageSets/Main/trainval.txt").write_text("\n".join(ids[:half]) + "\n")
    (root / "ImageSets/Main/test.txt").write_text("\n".join(ids[half:]) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=9963)
    p.add_argument("--kb", type=int, default=87, help="mean image file size (VOC 2007: ~870 MB / 9,963)")
    p.add_argument("--root", default="/tmp/fp_voc")
    p.add_argument("--keep", action="store_true", help="keep the generated dataset")
    args = p.parse_args()
    root = Path(args.root)
    if not (root / "ImageSets/Main/test.txt").is_file():
        write_dataset(root, args.images, args.kb)
    total = sum(f.stat().st_size for f in (root / "JPEGImages").iterdir())
    rows = []
    t = time.perf_counter()
    splits = [VOCDataset(root, s, CLASSES) for s in ("trainval", "test")]
    rows.append(("load both splits (parse + validate XML)", time.perf_counter() - t))
    t = time.perf_counter()
    for ds in splits:
        annotations_fingerprint(ds.records, CLASSES)
    rows.append(("annotations fingerprint", time.perf_counter() - t))
    t = time.perf_counter()
    for ds in splits:
        images_fingerprint(ds.records)
    rows.append((f"images fingerprint, first ({total / 2**20:.0f} MB hashed)", time.perf_counter() - t))
    t = time.perf_counter()
    for ds in splits:
        images_fingerprint(ds.records)
    rows.append(("images fingerprint, again (memoised)", time.perf_counter() - t))
    print(f"{args.images} images, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print("| step | seconds |\n|---|---|")
    for name, sec in rows:
        print(f"| {name} | {sec:.2f} |")
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
