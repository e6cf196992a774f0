#!/usr/bin/env python
"""Write the "glyphs" held-out dataset: characters on real VOC 2007 photos (a fourth family, issue 9).

Usage: python benchmarks/make_glyphs_voc.py [--photos ../shared/data/voc2007-test-real13]
       [--out data/generated/glyphs/VOC2007]

Built the way a new user's dataset would come, to check the defaults on data they were never tuned
on: six classes that are Hershey-font characters (``&``, ``@``, ``#``, ``$``, ``K``, ``Q``), drawn
thick in one of four fonts, rotated up to 25 degrees, stretched (aspect 0.6-1.4), 20-260 px, filled
with a random two-colour texture (flat, stripes at any angle, noise, gradient) that says nothing
about the class; distractors are other characters (``S % 8 W X R B``); 1-5 objects and 0-3
distractors per image, overlapping one another and leaving the image (so occluded, truncated and
difficult objects, as :func:`spp_det.data.synthetic.render_image` derives them). Backgrounds are
crops (50-100 % of each side, maybe mirrored) of the 13 genuine VOC 2007 photos, so the dataset
depends on those files: the same photos give the same dataset byte for byte.

Unlike the library's families (:mod:`spp_det.data.scenes`), these classes are *chiral*: a mirrored
``K`` is not a ``K``. 300 trainval (train = even positions, val = odd) + 200 test, 360-500 px,
seed 7. Config: ``configs/family_glyphs.yaml``; results in docs/BENCHMARKS.md ("A fourth family").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spp_det.data import scenes  # noqa: E402
from spp_det.data.synthetic import make_synthetic_voc  # noqa: E402

CHARS = {"amp": "&", "at": "@", "hash": "#", "dollar": "$", "kay": "K", "queue": "Q"}
DISTRACTORS = "S%8WXRB"
FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX, cv2.FONT_HERSHEY_TRIPLEX)
FAMILY = "glyphs"


def glyph_mask(ch: str, rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """uint8 ``(h, w)`` mask of character ``ch``: thick, rotated, cropped to its ink, stretched to the box."""
    font = FONTS[rng.integers(len(FONTS))]
    thick = int(rng.integers(6, 16))
    (tw, th), base = cv2.getTextSize(ch, font, 4.0, thick)
    m = np.zeros((th + base + 40, tw + 40), np.uint8)
    cv2.putText(m, ch, (20, th + 20), font, 4.0, 1, thick, cv2.LINE_AA)
    centre = (m.shape[1] / 2, m.shape[0] / 2)
    rot = cv2.getRotationMatrix2D(centre, rng.uniform(-25, 25), 1.0)
    big = max(m.shape) * 2
    rot[:, 2] += (big / 2 - centre[0], big / 2 - centre[1])
    m = cv2.warpAffine(m * 255, rot, (big, big)) > 127
    ys, xs = np.nonzero(m)
    m = m[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.uint8)
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)


def two_colour_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """float32 BGR ``(h, w, 3)``: flat, stripes at a random angle, smooth noise or a gradient."""
    c1, c2 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    period = max(3.0, max(h, w) / rng.uniform(3, 8))
    if kind == 0:
        t = np.zeros((h, w), np.float32)
    elif kind == 1:
        a = rng.uniform(0, np.pi)
        t = (((xx * np.cos(a) + yy * np.sin(a)) // (period / 2)) % 2).astype(np.float32)
    elif kind == 2:
        t = cv2.resize(rng.random((max(2, h // 6), max(2, w // 6))).astype(np.float32), (w, h))
    else:
        t = xx / max(1, w - 1)
    return (c1 * (1 - t[..., None]) + c2 * t[..., None]).astype(np.float32)


def painter(photos: list[np.ndarray]):
    """A :data:`spp_det.data.scenes.FAMILIES` painter drawing on crops of ``photos`` (BGR uint8)."""
    classes_chars = list(CHARS.values())

    def paint(rng: np.random.Generator, H: int, W: int, classes):
        src = photos[rng.integers(len(photos))]
        sh, sw = src.shape[:2]
        ch, cw = int(sh * rng.uniform(0.5, 1)), int(sw * rng.uniform(0.5, 1))
        y0, x0 = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
        img = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (W, H)).astype(np.float32)
        if rng.random() < 0.5:
            img = np.ascontiguousarray(img[:, ::-1])
        owner = np.full((H, W), -1, np.int32)
        n = int(rng.choice([1, 2, 3, 4, 5], p=[0.3, 0.3, 0.2, 0.1, 0.1]))
        kinds = [int(rng.integers(len(classes))) for _ in range(n)] + [None] * int(rng.integers(0, 4))
        rng.shuffle(kinds)
        painted: list[scenes.Painted] = []
        for kind in kinds:
            aspect = float(np.exp(rng.uniform(np.log(0.6), np.log(1.4))))
            w, h = scenes._size(rng, 20, min(260, 0.9 * max(W, H)), aspect)
            char = DISTRACTORS[rng.integers(len(DISTRACTORS))] if kind is None else classes_chars[kind]
            mask = glyph_mask(char, rng, w, h)
            patch = two_colour_texture(rng, h, w)
            px, py = scenes._place(rng, W, H, w, h)
            scenes.paste(img, owner, painted, kind, mask, patch, px, py)
        return img, owner, painted

    return paint


def make_glyphs_voc(photos_dir: Path, out: Path, num_trainval: int = 300, num_test: int = 200,
                    progress=tqdm) -> Path:
    """Write (or reuse, :func:`make_synthetic_voc`'s rules) the dataset at ``out``; returns ``out``."""
    files = sorted(photos_dir.glob("*.jpg"))
    photos = [cv2.imread(str(f)) for f in files]
    if not photos or any(p is None for p in photos):
        raise SystemExit(f"{photos_dir}: no readable .jpg photos (give --photos the JPEGImages folder)")
    # the generator looks families up by name: this one is registered for the call only
    scenes.FAMILIES[FAMILY] = (painter(photos), tuple(CHARS), len(CHARS))
    try:
        return make_synthetic_voc(out, seed=7, num_trainval=num_trainval, num_test=num_test, min_side=360,
                                  max_side=500, classes=list(CHARS), family=FAMILY, progress=progress)
    finally:
        del scenes.FAMILIES[FAMILY]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=Path, default=ROOT.parent / "shared/data/voc2007-test-real13/JPEGImages")
    p.add_argument("--out", type=Path, default=ROOT / "data/generated/glyphs/VOC2007")
    args = p.parse_args()
    print(make_glyphs_voc(args.photos, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
