#!/usr/bin/env python
"""Detect objects in a folder of images with a trained experiment and save them with boxes drawn.

Usage: python tools/demo.py --workdir runs/demo --images ../shared/data/voc2007-test-real13/JPEGImages
       --out runs/demo/demo_images [--min-score 0.0]
       python tools/demo.py --workdir runs/demo --images data/generated/VOCdevkit/VOC2007 --split test --limit 8
       --out runs/demo/demo_test_images
"""
import argparse
import sys
import time
from pathlib import Path

from spp_det.cli import run_main, setup_logging

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--images", required=True, help="an image file, a folder of images, or a VOC root with --split")
    p.add_argument("--split", help="treat --images as a VOC root and use this split's images")
    p.add_argument("--limit", type=int, help="at most this many images")
    p.add_argument("--out", required=True)
    p.add_argument("--min-score", type=float, default=0.0, help="draw detections scoring above this")
    p.add_argument("--device")
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        import cv2
        from spp_det.api import Detector, draw_detections
        from spp_det.data.images import load_image
        src = Path(args.images)
        if args.split:
            from spp_det.data.voc import read_split
            files = [src / "JPEGImages" / f"{i}.jpg" for i in read_split(src, args.split)]
        elif src.is_file():
            files = [src]
        elif src.is_dir():
            files = sorted(f for f in src.iterdir() if f.suffix.lower() in EXTS)
        else:
            raise FileNotFoundError(f"{src}: no such file or folder")
        files = files[: args.limit] if args.limit else files
        if not files:
            raise FileNotFoundError(f"{src}: no images found")
        det = Detector.from_workdir(args.workdir, args.device)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            t = time.perf_counter()
            img = load_image(f)
            d = det.detect(img)
            cv2.imwrite(str(out / f"{f.stem}_det.jpg"), draw_detections(img, d, det.classes, args.min_score))
            shown = [f"{det.classes[l]} {s:.2f}" for s, l in zip(d.scores, d.labels) if s >= args.min_score]
            print(f"{f.name}: {len(shown)} detections >= {args.min_score} in {time.perf_counter() - t:.2f} s"
                  f"{': ' + ', '.join(shown[:8]) if shown else ''}")
        print(f"images with boxes drawn: {out}/")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
