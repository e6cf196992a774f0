"""A generated VOC-format detection dataset: the embedded default for the demo.

Deterministic from a seed (image ``i`` uses ``default_rng([seed, i])``).  Six
classes that differ in **shape and texture**, never in colour (every object's
two colours are random):

==========  ===============  ======================
class       shape            texture
==========  ===============  ======================
disc        ellipse          polka dots
block       rectangle        checkerboard
triangle    triangle         horizontal stripes
star        5-point star     concentric rings
ring        annulus          diagonal stripes
cross       plus sign        grid lines
==========  ===============  ======================

Objects are 24-300 px on their longer side with aspect ratios 1:3-3:1, 1-4
per image, painted in random order with untextured "distractor" blobs, on
random crops of scikit-image's bundled photos.  Annotation follows VOC: the
box is the **visible** extent; ``truncated`` if the object runs off the image;
``difficult`` if less than 40 % of it is visible or its visible box is under
20 px; objects under 15 % visible are not annotated.  Images are saved as JPEG
(quality 70-95) in the exact VOCdevkit layout with train/val/trainval/test
lists and per-class ``<cls>_<split>.txt`` lists.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..io_utils import load_json, save_json, stable_hash

CLASSES = ("disc", "block", "triangle", "star", "ring", "cross")
SHAPES = CLASSES  # shape i carries texture i in the default 6-class set


def class_style(index: int) -> tuple[str, str]:
    """(shape, texture) of class ``index`` in a generated set of any size: every pair distinct
    for up to 36 classes (20 VOC names map to 20 distinct combinations)."""
    if index >= 36:
        raise ValueError("the generator supports at most 36 classes")
    return SHAPES[index % 6], SHAPES[(index + index // 6) % 6]
_BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text",
                "clock", "horse", "cell", "retina", "colorwheel")
VERSION = 1


# ----------------------------------------------------------------------------- shapes
def _poly(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    p = np.round(pts * [w - 1, h - 1]).astype(np.int32)
    cv2.fillPoly(mask, [p], 1)
    return mask


def shape_mask(cls: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 ``(h, w)`` mask of a shape (one of :data:`SHAPES`) stretched to fill the box."""
    m = np.zeros((h, w), np.uint8)
    if cls == "disc":
        cv2.ellipse(m, (((w - 1) / 2, (h - 1) / 2), (float(w), float(h)), 0.0), 1, -1)
    elif cls == "block":
        m[:] = 1
    elif cls == "triangle":
        apex = rng.uniform(0.3, 0.7)
        pts = np.array([[0, 1], [apex, 0], [1, 1]]) if rng.random() < 0.7 else np.array([[0, 0], [apex, 1], [1, 0]])
        _poly(m, pts)
    elif cls == "star":
        ang = -np.pi / 2 + np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, 0.5, 0.2)
        _poly(m, np.stack([0.5 + rad * np.cos(ang), 0.5 + rad * np.sin(ang) * 1.05 + 0.03], 1).clip(0, 1))
    elif cls == "ring":
        cv2.ellipse(m, (((w - 1) / 2, (h - 1) / 2), (float(w), float(h)), 0.0), 1, -1)
        inner = rng.uniform(0.45, 0.6)
        cv2.ellipse(m, (((w - 1) / 2, (h - 1) / 2), (w * inner, h * inner), 0.0), 0, -1)
    elif cls == "cross":
        t = rng.uniform(0.28, 0.4)
        a, b = 0.5 - t / 2, 0.5 + t / 2
        _poly(m, np.array([[a, 0], [b, 0], [b, a], [1, a], [1, b], [b, b], [b, 1], [a, 1], [a, b], [0, b], [0, a], [a, a]]))
    else:
        raise ValueError(f"unknown synthetic class {cls!r}")
    return m


def texture(cls: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """float32 ``(h, w)`` in [0, 1]: how much of the second colour each pixel takes (texture of shape ``cls``)."""
    period = max(4.0, max(h, w) / rng.uniform(3.0, 6.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if cls == "disc":  # polka dots
        cy, cx = (yy % period) - period / 2, (xx % period) - period / 2
        return (np.hypot(cy, cx) < period * 0.3).astype(np.float32)
    if cls == "block":  # checkerboard
        return (((yy // period) + (xx // period)) % 2).astype(np.float32)
    if cls == "triangle":  # horizontal stripes
        return ((yy // (period / 2)) % 2).astype(np.float32)
    if cls == "star":  # concentric rings
        r = np.hypot(yy - h / 2, xx - w / 2)
        return ((r // (period / 2.5)) % 2).astype(np.float32)
    if cls == "ring":  # diagonal stripes
        return (((xx + yy) // (period / 2)) % 2).astype(np.float32)
    if cls == "cross":  # grid lines
        return (((yy % period) < period * 0.25) | ((xx % period) < period * 0.25)).astype(np.float32)
    raise ValueError(cls)


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c1 = rng.uniform(0, 255, 3)
    c2 = rng.uniform(0, 255, 3)
    while np.abs(c1 - c2).sum() < 180:
        c2 = rng.uniform(0, 255, 3)
    return c1.astype(np.float32), c2.astype(np.float32)


# ----------------------------------------------------------------------------- backgrounds
_bg_cache: dict[str, np.ndarray] = {}


def _background_source(name: str) -> np.ndarray:
    if name not in _bg_cache:
        import skimage.data
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(1e-9, img.max()))).astype(np.uint8)
        _bg_cache[name] = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    return _bg_cache[name]


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    src = _background_source(_BACKGROUNDS[rng.integers(len(_BACKGROUNDS))])
    sh, sw = src.shape[:2]
    ch, cw = int(sh * rng.uniform(0.4, 1.0)), int(sw * rng.uniform(0.4, 1.0))
    y0, x0 = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    bg = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    bg = bg * rng.uniform(0.6, 1.2, 3) + rng.uniform(-30, 30)  # colour jitter
    return bg


# ----------------------------------------------------------------------------- images
@dataclass
class Painted:
    cls: int | None  # class index; None for a distractor
    full_box: tuple[int, int, int, int]  # x1, y1, x2, y2 0-based inclusive, may leave the image
    area: int


def render_image(index: int, seed: int, min_side: int, max_side: int, classes=CLASSES):
    """Render image ``index``: returns (BGR uint8 image, list of object dicts, JPEG quality)."""
    rng = np.random.default_rng([seed, index])
    short = int(rng.integers(min_side, max_side + 1))
    W, H = (max_side, short) if rng.random() < 0.7 else (short, max_side)
    img = background(H, W, rng)
    owner = np.full((H, W), -1, np.int32)
    n_obj = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.2, 0.15]))
    n_dis = int(rng.integers(0, 4))
    kinds = [int(rng.integers(len(classes))) for _ in range(n_obj)] + [None] * n_dis
    rng.shuffle(kinds)
    painted: list[Painted] = []
    for kind in kinds:
        longest = float(np.exp(rng.uniform(np.log(24), np.log(min(300, 0.95 * max(W, H))))))
        aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))  # w / h
        shape, tex_name = class_style(kind) if kind is not None else (None, None)
        if shape in ("disc", "ring", "star") and rng.random() < 0.5:
            aspect = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        w = int(round(longest if aspect >= 1 else longest * aspect))
        h = int(round(longest if aspect < 1 else longest / aspect))
        w, h = max(w, 8), max(h, 8)
        x0 = int(rng.integers(-w // 4, W - 3 * w // 4 + 1)) if W > w // 2 else 0
        y0 = int(rng.integers(-h // 4, H - 3 * h // 4 + 1)) if H > h // 2 else 0
        if kind is None:
            k = int(rng.integers(5, 9))
            ang = np.sort(rng.uniform(0, 2 * np.pi, k))
            rad = rng.uniform(0.25, 0.5, k)
            mask = _poly(np.zeros((h, w), np.uint8), np.stack([0.5 + rad * np.cos(ang), 0.5 + rad * np.sin(ang)], 1))
            tex = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), max(1.0, min(h, w) / 8))
            tex = (tex - tex.min()) / max(1e-6, float(np.ptp(tex)))
        else:
            mask = shape_mask(shape, h, w, rng)
            tex = texture(tex_name, h, w, rng)
        c1, c2 = _two_colours(rng)
        patch = c1 + tex[..., None] * (c2 - c1)
        shade = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.15), w if rng.random() < 0.5 else h, dtype=np.float32)
        patch *= shade[None, :, None] if len(shade) == w else shade[:, None, None]
        # paste the in-image part
        ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
        if ix0 >= ix1 or iy0 >= iy1:
            painted.append(Painted(kind, (x0, y0, x0 + w - 1, y0 + h - 1), int(mask.sum())))
            continue
        sub = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        m = mask[sub].astype(bool)
        region = img[iy0:iy1, ix0:ix1]
        region[m] = patch[sub][m]
        owner[iy0:iy1, ix0:ix1][m] = len(painted)
        painted.append(Painted(kind, (x0, y0, x0 + w - 1, y0 + h - 1), int(mask.sum())))
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.0))
    img += rng.normal(0, rng.uniform(2, 6), img.shape).astype(np.float32)
    img = np.clip(img, 0, 255).astype(np.uint8)

    objects = []
    for idx, p in enumerate(painted):
        if p.cls is None:
            continue
        ys, xs = np.nonzero(owner == idx)
        visible = len(xs) / max(1, p.area)
        if len(xs) < 20 or visible < 0.15:
            continue
        box = (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()))
        fx1, fy1, fx2, fy2 = p.full_box
        truncated = fx1 < 0 or fy1 < 0 or fx2 > W - 1 or fy2 > H - 1
        vis_long = max(box[2] - box[0] + 1, box[3] - box[1] + 1)
        difficult = visible < 0.4 or vis_long < 20
        objects.append({"name": classes[p.cls], "box": box, "truncated": truncated, "difficult": difficult})
    quality = int(rng.integers(70, 96))
    return img, objects, quality


def annotation_xml(image_id: str, width: int, height: int, objects: list[dict]) -> str:
    """VOC XML text; boxes written 1-based inclusive."""
    lines = ["<annotation>", "\t<folder>VOC2007</folder>", f"\t<filename>{image_id}.jpg</filename>",
             "\t<source>\n\t\t<database>spp-det synthetic</database>\n\t</source>",
             f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n\t\t<depth>3</depth>\n\t</size>",
             "\t<segmented>0</segmented>"]
    for o in objects:
        x1, y1, x2, y2 = (v + 1 for v in o["box"])
        lines.append(
            f"\t<object>\n\t\t<name>{o['name']}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{int(o['truncated'])}</truncated>\n\t\t<difficult>{int(o['difficult'])}</difficult>\n"
            f"\t\t<bndbox>\n\t\t\t<xmin>{x1}</xmin>\n\t\t\t<ymin>{y1}</ymin>\n\t\t\t<xmax>{x2}</xmax>\n"
            f"\t\t\t<ymax>{y2}</ymax>\n\t\t</bndbox>\n\t</object>")
    lines.append("</annotation>\n")
    return "\n".join(lines)


def make_synthetic_voc(root: str | Path, seed: int = 0, num_trainval: int = 200, num_test: int = 120,
                       min_side: int = 300, max_side: int = 400,
                       progress: Callable | None = tqdm, classes: Sequence[str] = CLASSES) -> Path:
    """Write (or reuse) a synthetic VOC2007-layout dataset at ``root``.

    ``classes`` names the classes (default: the six shapes); class ``i`` is drawn with
    :func:`class_style` ``(i)``, so e.g. the 20 VOC names give a 20-class set.
    ``root`` becomes ``.../VOC2007`` with ``Annotations``, ``JPEGImages`` and
    ``ImageSets/Main``.  It is built in a temporary sibling directory and renamed
    into place, so a killed run leaves nothing half-written; an existing root
    made with the same parameters is reused, one made with others is an error.
    """
    root = Path(root)
    params = {"version": VERSION, "seed": seed, "num_trainval": num_trainval, "num_test": num_test,
              "min_side": min_side, "max_side": max_side, "classes": list(classes)}
    marker = root / "synthetic.json"
    if marker.is_file():
        if load_json(marker).get("hash") == stable_hash(params):
            return root
        raise FileExistsError(f"{root}: holds a synthetic dataset made with other parameters; "
                              "remove it or choose another root")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists and is not a generated dataset; refusing to overwrite")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (tmp / d).mkdir(parents=True)
        n = num_trainval + num_test
        ids = [f"{i + 1:06d}" for i in range(n)]
        present: dict[str, dict[str, int]] = {c: {} for c in classes}
        it = range(n)
        for i in (progress(it, desc="synthetic VOC", unit="img") if progress else it):
            img, objects, quality = render_image(i, seed, min_side, max_side, classes)
            cv2.imwrite(str(tmp / "JPEGImages" / f"{ids[i]}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
            (tmp / "Annotations" / f"{ids[i]}.xml").write_text(annotation_xml(ids[i], img.shape[1], img.shape[0], objects))
            for c in classes:
                flags = [0 if o["difficult"] else 1 for o in objects if o["name"] == c]
                present[c][ids[i]] = max(flags) if flags else -1
        trainval = ids[:num_trainval]
        splits = {"trainval": trainval, "train": trainval[0::2], "val": trainval[1::2], "test": ids[num_trainval:]}
        for split, members in splits.items():
            (tmp / "ImageSets/Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in members))
            for c in classes:
                (tmp / "ImageSets/Main" / f"{c}_{split}.txt").write_text(
                    "".join(f"{i} {present[c][i]:2d}\n" for i in members))
        save_json({"hash": stable_hash(params), "params": params}, tmp / "synthetic.json")
        if root.exists():
            root.rmdir()
        tmp.rename(root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return root
