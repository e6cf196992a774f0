#!/usr/bin/env python
"""conv5 cache formats side by side: bytes per image per scale on disk, write and read time, error.

For each backbone and scale, the conv5 maps of the real photos (default: the 13 VOC 2007 test photos in
``../shared/data/voc2007-test-real13``) are stored in every format of ``spp_det.map_codec`` through
:class:`spp_det.features.Conv5Cache` itself (atomic ``.npy`` / ``.npz`` files in a temporary
directory); sizes are the files' bytes, write time is ``Conv5Cache.build`` given the maps (the image
decode, the encoding and the atomic write), read time is ``Conv5Cache.load`` (read + decode to float32;
the fastest of ``--repeat`` passes), error is the largest absolute difference to the float32 map
relative to the map's largest value.

ZF-5 runs with the weights given by ``--zf5-weights`` (a ``.pt`` state dict, e.g. from ``make demo-zf5``)
or, without one, randomly initialised: post-ReLU sparsity, hence the uint8 format's size, depends on
the weights, so say which in the numbers you quote.

Usage: python benchmarks/bench_conv5_cache.py [--images DIR] [--zf5-weights PT]
       [--scales 480,576,688,864,1200] [--lite0-scales 688] [--repeat 3]
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from spp_det import map_codec
from timer import best_of
from spp_det.data.voc import ImageRecord
from spp_det.features import Conv5Cache, compute_conv5_pyramid
from spp_det.models import build_backbone

REAL13 = Path(__file__).resolve().parents[1].parent / "shared/data/voc2007-test-real13/JPEGImages"


def records(folder: Path) -> list[ImageRecord]:
    import cv2
    out = []
    for p in sorted(folder.glob("*.jpg")):
        h, w = cv2.imread(str(p)).shape[:2]
        out.append(ImageRecord(p.stem, p, w, h, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                               np.zeros(0, bool), np.zeros(0, bool)))
    return out


class _Precomputed:
    """Serves maps computed once, in the order ``Conv5Cache.build`` asks for them (one scale: record
    order), so that every format stores the same float32 maps."""

    def __init__(self, maps):
        self.maps, self.next = maps, list(range(len(maps)))

    def to(self, device):
        return self

    def conv5(self, image, device):
        return self.maps[self.next.pop(0)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=Path, default=REAL13)
    p.add_argument("--zf5-weights", default=None)
    p.add_argument("--scales", default="480,576,688,864,1200", help="ZF-5 scales (the paper's five)")
    p.add_argument("--lite0-scales", default="688")
    p.add_argument("--repeat", type=int, default=3, help="read passes over the images (the fastest is kept)")
    a = p.parse_args()
    recs = records(a.images)
    if not recs:
        raise SystemExit(f"error: {a.images}: no .jpg images")
    torch.manual_seed(0)
    print(f"{len(recs)} images from {a.images}; torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| backbone (weights) | scale | zeros | float16 MB / image | uint8 MB / image | ratio | "
          "float16 / uint8 write ms | float16 / uint8 read ms | uint8 max error / max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, weights, scales in (("zf5", a.zf5_weights, a.scales), ("lite0", "package", a.lite0_scales)):
        bb = build_backbone(name, weights)
        label = f"{name} ({'random init' if weights is None else Path(weights).name})"
        for s in [int(v) for v in scales.split(",")]:
            with torch.no_grad():
                maps = [compute_conv5_pyramid(bb, r.load(), [s])[0] for r in recs]
            zeros = float(np.mean([(m == 0).float().mean().item() for m in maps]))
            row = {}
            with tempfile.TemporaryDirectory() as tmp:
                for fmt in map_codec.FORMATS:
                    cache = Conv5Cache({s: Path(tmp) / fmt}, _Precomputed(maps), fmt)
                    t = time.perf_counter()
                    cache.build(recs, progress=False)
                    write = (time.perf_counter() - t) / len(recs)
                    size = np.mean([cache.path(r, s).stat().st_size for r in recs]) / 1e6
                    back = [cache.load(r)[0] for r in recs]
                    read = best_of(lambda: [cache.load(r) for r in recs], a.repeat) / len(recs)
                    err = max(float((b - m).abs().max() / m.abs().max().clamp(min=1e-12)) for b, m in zip(back, maps))
                    row[fmt] = (size, write, read, err)
            f16, u8 = row["float16"], row["uint8"]
            print(f"| {label} | {s} | {zeros:.2f} | {f16[0]:.3f} | {u8[0]:.3f} | {u8[0] / f16[0]:.2f} | "
                  f"{f16[1] * 1e3:.1f} / {u8[1] * 1e3:.1f} | {f16[2] * 1e3:.1f} / {u8[2] * 1e3:.1f} | {u8[3]:.4f} |")


if __name__ == "__main__":
    main()
