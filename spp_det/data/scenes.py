"""Scene painters of the generated dataset families (:mod:`spp_det.data.synthetic` writes them as VOC).

A *family* is a way of painting one image: what the objects of each class
look like, what else is in the scene, and the background.  Three families,
so that a default can be chosen on some and checked on others (held-out data):

``shapes`` (the demo's)
    six classes that differ in **shape and texture** (texture ``i`` always
    goes with shape ``i``), 1-4 objects of 24-300 px, 0-3 untextured blobs,
    on one random crop of a scikit-image photo.
``silhouettes``
    six other shapes (hexagon, crescent, arrow, heart, diamond, bolt), rotated
    up to 30 degrees, whose **texture is random and says nothing about the
    class** (six textures the demo lacks, also worn by 2-7 distractor
    polygons); 2-8 objects of 16-220 px; backgrounds are collages of 2 x 2 or
    3 x 3 photo crops crossed by random strokes.
``photos``
    objects cut from real photographs (a cat's face, an astronaut, an
    espresso cup, a rocket, a motorcycle; and a horse silhouette filled with
    a random fur colour and texture), with crop, aspect, colour and blur
    jitter and irregular outlines; distractors are other photos' crops with
    the same outlines; 1-4 objects of 32-320 px, on photo crops.

Every painter takes ``(rng, H, W, classes)`` and returns the float32 BGR
image, an ``owner`` map ``(H, W)`` (index into the painted list of the object
that shows at each pixel, -1 for background) and the painted list; the caller
derives the VOC annotation (visible box, truncated, difficult) from them.
Boxes are 0-based inclusive pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import cv2
import numpy as np

SHAPES = ("disc", "block", "triangle", "star", "ring", "cross")
SILHOUETTES = ("hexagon", "crescent", "arrow", "heart", "diamond", "bolt")
PHOTO_OBJECTS = ("cat", "astronaut", "cup", "rocket", "motorcycle", "horse")


@dataclass
class Painted:
    cls: int | None  # class index; None for a distractor
    full_box: tuple[int, int, int, int]  # x1, y1, x2, y2 0-based inclusive, may leave the image
    area: int


def class_style(index: int) -> tuple[str, str]:
    """(shape, texture) of class ``index`` of the ``shapes`` family in a set of any size: every pair
    distinct for up to 36 classes (20 VOC names map to 20 distinct combinations)."""
    if index >= 36:
        raise ValueError("the shapes family supports at most 36 classes")
    return SHAPES[index % 6], SHAPES[(index + index // 6) % 6]


# ----------------------------------------------------------------------------- shared helpers
def _poly(mask: np.ndarray, pts: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    p = np.round(pts * [w - 1, h - 1]).astype(np.int32)
    cv2.fillPoly(mask, [p], 1)
    return mask


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    c1 = rng.uniform(0, 255, 3)
    c2 = rng.uniform(0, 255, 3)
    while np.abs(c1 - c2).sum() < 180:
        c2 = rng.uniform(0, 255, 3)
    return c1.astype(np.float32), c2.astype(np.float32)


_photo_cache: dict[str, np.ndarray] = {}


def photo(name: str) -> np.ndarray:
    """A scikit-image bundled image as BGR uint8 (grey images repeated to 3 channels)."""
    if name not in _photo_cache:
        import skimage.data
        img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        if img.dtype != np.uint8:
            img = (255 * (img.astype(np.float64) / max(1e-9, img.max()))).astype(np.uint8)
        _photo_cache[name] = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR)
    return _photo_cache[name]


_BACKGROUNDS = ("astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel",
                "hubble_deep_field", "immunohistochemistry", "moon", "page", "rocket", "text",
                "clock", "horse", "cell", "retina", "colorwheel")


def photo_crop(name: str, h: int, w: int, rng: np.random.Generator, min_frac: float = 0.4) -> np.ndarray:
    """A random crop (40-100 % of each side), resized to ``(h, w)``, maybe mirrored, colour-jittered."""
    src = photo(name)
    sh, sw = src.shape[:2]
    ch, cw = int(sh * rng.uniform(min_frac, 1.0)), int(sw * rng.uniform(min_frac, 1.0))
    y0, x0 = rng.integers(0, sh - ch + 1), rng.integers(0, sw - cw + 1)
    bg = cv2.resize(src[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if rng.random() < 0.5:
        bg = bg[:, ::-1]
    return bg * rng.uniform(0.6, 1.2, 3) + rng.uniform(-30, 30)  # colour jitter


def background(h: int, w: int, rng: np.random.Generator, names: Sequence[str] = _BACKGROUNDS) -> np.ndarray:
    return photo_crop(names[rng.integers(len(names))], h, w, rng)


def paste(img: np.ndarray, owner: np.ndarray, painted: list[Painted], kind: int | None, mask: np.ndarray,
          patch: np.ndarray, x0: int, y0: int) -> None:
    """Paint ``patch`` ``(h, w, 3)`` where ``mask`` ``(h, w)`` is set, its top-left at ``(x0, y0)`` (may
    leave the image); record it in ``painted`` and ``owner``."""
    H, W = owner.shape
    h, w = mask.shape
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if ix0 < ix1 and iy0 < iy1:
        sub = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
        m = mask[sub].astype(bool)
        img[iy0:iy1, ix0:ix1][m] = patch[sub][m]
        owner[iy0:iy1, ix0:ix1][m] = len(painted)
    painted.append(Painted(kind, (x0, y0, x0 + w - 1, y0 + h - 1), int(mask.sum())))


def _place(rng: np.random.Generator, W: int, H: int, w: int, h: int) -> tuple[int, int]:
    """Top-left corner: up to a quarter of the object may leave the image on each side."""
    x0 = int(rng.integers(-w // 4, W - 3 * w // 4 + 1)) if W > w // 2 else 0
    y0 = int(rng.integers(-h // 4, H - 3 * h // 4 + 1)) if H > h // 2 else 0
    return x0, y0


def _size(rng: np.random.Generator, lo: float, hi: float, aspect: float) -> tuple[int, int]:
    """(w, h) of a box whose longer side is log-uniform in [lo, hi], aspect w / h given."""
    longest = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, hi)))))
    w = int(round(longest if aspect >= 1 else longest * aspect))
    h = int(round(longest if aspect < 1 else longest / aspect))
    return max(w, 8), max(h, 8)


def _blob(h: int, w: int, rng: np.random.Generator, r_lo: float = 0.25, r_hi: float = 0.5) -> np.ndarray:
    """Mask of a random star-convex polygon (5-8 vertices) inscribed in the box."""
    k = int(rng.integers(5, 9))
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = rng.uniform(r_lo, r_hi, k)
    return _poly(np.zeros((h, w), np.uint8), np.stack([0.5 + rad * np.cos(ang), 0.5 + rad * np.sin(ang)], 1))


# ----------------------------------------------------------------------------- family "shapes" (the demo)
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


def _shade(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = patch.shape[:2]
    shade = np.linspace(rng.uniform(0.75, 1.0), rng.uniform(1.0, 1.15), w if rng.random() < 0.5 else h, dtype=np.float32)
    return patch * (shade[None, :, None] if len(shade) == w else shade[:, None, None])


def paint_shapes(rng: np.random.Generator, H: int, W: int, classes: Sequence[str]):
    """The demo's family (see the module docstring)."""
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
        x0, y0 = _place(rng, W, H, w, h)
        if kind is None:
            mask = _blob(h, w, rng)
            tex = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), max(1.0, min(h, w) / 8))
            tex = (tex - tex.min()) / max(1e-6, float(np.ptp(tex)))
        else:
            mask = shape_mask(shape, h, w, rng)
            tex = texture(tex_name, h, w, rng)
        c1, c2 = _two_colours(rng)
        patch = _shade(c1 + tex[..., None] * (c2 - c1), rng)
        paste(img, owner, painted, kind, mask, patch, x0, y0)
    return img, owner, painted


# ----------------------------------------------------------------------------- family "silhouettes"
def _silhouette_points(name: str, rng: np.random.Generator) -> np.ndarray:
    """Outline ``(K, 2)`` of a silhouette in unit coordinates (before rotation and stretching)."""
    if name == "hexagon":
        a = np.arange(6) * np.pi / 3 + rng.uniform(0, np.pi / 3)
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "crescent":  # the unit disc minus a disc of radius r centred at (off, 0)
        off, r = rng.uniform(0.35, 0.55), rng.uniform(0.75, 0.9)
        xi = (1 - r * r + off * off) / (2 * off)  # where the two circles cross: (xi, +-yi)
        yi = np.sqrt(max(0.0, 1 - xi * xi))
        t0, s0 = np.arctan2(yi, xi), np.arctan2(yi, xi - off)
        t = np.linspace(t0, 2 * np.pi - t0, 40)  # outer arc through the left
        s_ = np.linspace(2 * np.pi - s0, s0, 40)  # inner arc back through its leftmost point
        return np.concatenate([np.stack([np.cos(t), np.sin(t)], 1), np.stack([off + r * np.cos(s_), r * np.sin(s_)], 1)])
    if name == "arrow":
        s, hw = rng.uniform(0.15, 0.3), rng.uniform(0.5, 0.8)  # shaft half-width, head half-width
        hx = rng.uniform(0.1, 0.4)  # where the head starts
        return np.array([[-1, -s], [hx, -s], [hx, -hw], [1, 0], [hx, hw], [hx, s], [-1, s]], np.float64)
    if name == "heart":
        t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
        return np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], 1)
    if name == "diamond":
        return np.array([[0, -1], [rng.uniform(0.45, 0.8), 0], [0, 1], [-rng.uniform(0.45, 0.8), 0]], np.float64)
    if name == "bolt":
        return np.array([[0.2, -1], [-0.55, 0.15], [-0.05, 0.15], [-0.3, 1], [0.55, -0.2], [0.05, -0.2], [0.4, -1]],
                        np.float64)
    raise ValueError(f"unknown silhouette {name!r}")


def silhouette_mask(name: str, h: int, w: int, rng: np.random.Generator, max_angle: float = 30.0) -> np.ndarray:
    """uint8 ``(h, w)`` mask of a silhouette rotated by up to ``max_angle`` degrees, stretched to the box."""
    p = _silhouette_points(name, rng)
    a = np.deg2rad(rng.uniform(-max_angle, max_angle))
    if rng.random() < 0.5:
        p = p * [-1, 1]  # mirror
    p = p @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    p = (p - p.min(0)) / np.maximum(np.ptp(p, 0), 1e-9)
    return _poly(np.zeros((h, w), np.uint8), p)


SILHOUETTE_TEXTURES = ("speckle", "waves", "gradient", "outline", "hatch", "squares")


def free_texture(name: str, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """float32 ``(h, w)`` in [0, 1] (share of the second colour) of one of :data:`SILHOUETTE_TEXTURES`."""
    h, w = mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    period = max(4.0, max(h, w) / rng.uniform(2.5, 7.0))
    if name == "speckle":
        t = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), rng.uniform(0.7, 2.0))
        return (t > np.median(t)).astype(np.float32)
    if name == "waves":
        a = rng.uniform(0, np.pi)
        return 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(a) + yy * np.sin(a)) / period).astype(np.float32)
    if name == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        g = xx * np.cos(a) + yy * np.sin(a)
        return ((g - g.min()) / max(1e-6, float(np.ptp(g)))).astype(np.float32)
    if name == "outline":  # solid fill, a border of the second colour
        k = max(1, int(round(min(h, w) * rng.uniform(0.06, 0.15))))
        inner = cv2.erode(mask, np.ones((2 * k + 1, 2 * k + 1), np.uint8))
        return (mask > inner).astype(np.float32)
    if name == "hatch":
        a = rng.uniform(0, np.pi / 2)
        u = (xx * np.cos(a) + yy * np.sin(a)) % period
        v = (-xx * np.sin(a) + yy * np.cos(a)) % period
        return ((u < period * 0.2) | (v < period * 0.2)).astype(np.float32)
    if name == "squares":
        q = period / 2
        return (((yy % period) < q) & ((xx % period) < q)).astype(np.float32)
    raise ValueError(f"unknown texture {name!r}")


def _collage(H: int, W: int, rng: np.random.Generator) -> np.ndarray:
    """2 x 2 or 3 x 3 tiles of different photo crops, crossed by 3-9 random strokes."""
    n = int(rng.choice([2, 3]))
    ys = np.linspace(0, H, n + 1).astype(int)
    xs = np.linspace(0, W, n + 1).astype(int)
    img = np.empty((H, W, 3), np.float32)
    for i in range(n):
        for j in range(n):
            img[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] = background(ys[i + 1] - ys[i], xs[j + 1] - xs[j], rng)
    for _ in range(int(rng.integers(3, 10))):
        p1 = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        p2 = (int(rng.integers(0, W)), int(rng.integers(0, H)))
        cv2.line(img, p1, p2, tuple(float(c) for c in rng.uniform(0, 255, 3)), int(rng.integers(1, 6)), cv2.LINE_AA)
    return img


def paint_silhouettes(rng: np.random.Generator, H: int, W: int, classes: Sequence[str]):
    """Shape-only classes with random textures, many small objects, textured distractors, collages."""
    img = _collage(H, W, rng)
    owner = np.full((H, W), -1, np.int32)
    n_obj = int(rng.choice(np.arange(2, 9), p=[0.2, 0.2, 0.17, 0.14, 0.12, 0.1, 0.07]))
    kinds = [int(rng.integers(len(classes))) for _ in range(n_obj)] + [None] * int(rng.integers(2, 8))
    rng.shuffle(kinds)
    painted: list[Painted] = []
    for kind in kinds:
        aspect = float(np.exp(rng.uniform(np.log(1 / 2.5), np.log(2.5))))
        w, h = _size(rng, 16, min(220, 0.8 * max(W, H)), aspect)
        x0, y0 = _place(rng, W, H, w, h)
        mask = _blob(h, w, rng, 0.3, 0.5) if kind is None else silhouette_mask(SILHOUETTES[kind % 6], h, w, rng)
        tex = free_texture(SILHOUETTE_TEXTURES[rng.integers(len(SILHOUETTE_TEXTURES))], mask, rng)
        c1, c2 = _two_colours(rng)
        paste(img, owner, painted, kind, mask, _shade(c1 + tex[..., None] * (c2 - c1), rng), x0, y0)
    return img, owner, painted


# ----------------------------------------------------------------------------- family "photos"
# Source region (x1, y1, x2, y2, pixels of the scikit-image photo) of each photo class.
PHOTO_SOURCES = {"cat": ("chelsea", (30, 10, 420, 300)), "astronaut": ("astronaut", (60, 10, 360, 512)),
                 "cup": ("coffee", (70, 10, 490, 390)), "rocket": ("rocket", (290, 120, 355, 410)),
                 "motorcycle": ("motorcycle", (90, 60, 690, 455)), "horse": ("horse", (0, 0, 400, 328))}
_PHOTO_BACKGROUNDS = ("brick", "camera", "coins", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
                      "moon", "page", "text", "clock", "cell", "retina", "colorwheel")
_PHOTO_DISTRACTORS = ("camera", "clock", "coins", "logo", "immunohistochemistry", "retina", "colorwheel", "page")


def _jittered_source(name: str, rng: np.random.Generator) -> np.ndarray:
    """The class's source region with its borders moved by up to 10 % (uint8 BGR)."""
    src_name, (x1, y1, x2, y2) = PHOTO_SOURCES[name]
    src = photo(src_name)
    w, h = x2 - x1, y2 - y1
    dx1, dx2 = (rng.uniform(-0.1, 0.1, 2) * w).astype(int)
    dy1, dy2 = (rng.uniform(-0.1, 0.1, 2) * h).astype(int)
    H, W = src.shape[:2]
    return src[max(0, y1 + dy1):min(H, y2 + dy2), max(0, x1 + dx1):min(W, x2 + dx2)]


def photo_object(name: str, rng: np.random.Generator, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(mask ``(h, w)``, float32 patch ``(h, w, 3)``) of one photo-class object, longer side in [lo, hi]."""
    src = _jittered_source(name, rng)
    aspect = src.shape[1] / src.shape[0] * float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
    w, h = _size(rng, lo, hi, aspect)
    if name == "horse":  # the silhouette filled with a fur colour modulated by a photo's luminance
        mask = (cv2.resize(src[..., 0], (w, h), interpolation=cv2.INTER_AREA) < 128).astype(np.uint8)
        lum = photo_crop(("gravel", "grass", "brick")[rng.integers(3)], h, w, rng).mean(2, keepdims=True)
        fur = rng.uniform([10, 20, 40], [120, 140, 200]) if rng.random() < 0.8 else rng.uniform(20, 235, 3)
        patch = fur.astype(np.float32) * (0.6 + 0.8 * np.clip(lum / 255.0, 0, 1))
    else:
        mask = _blob(h, w, rng, 0.42, 0.52)
        patch = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        patch = patch * rng.uniform(0.7, 1.3, 3) + rng.uniform(-25, 25)
    if rng.random() < 0.5:
        mask, patch = mask[:, ::-1], patch[:, ::-1]
    if rng.random() < 0.3:
        patch = cv2.GaussianBlur(np.ascontiguousarray(patch), (0, 0), rng.uniform(0.8, 2.0))
    return np.ascontiguousarray(mask), np.ascontiguousarray(patch)


def paint_photos(rng: np.random.Generator, H: int, W: int, classes: Sequence[str]):
    """Objects cut from real photographs, photo-crop distractors with the same outlines, photo backgrounds."""
    img = background(H, W, rng, _PHOTO_BACKGROUNDS)
    owner = np.full((H, W), -1, np.int32)
    n_obj = int(rng.choice([1, 2, 3, 4], p=[0.35, 0.35, 0.2, 0.1]))
    kinds = [int(rng.integers(len(classes))) for _ in range(n_obj)] + [None] * int(rng.integers(0, 4))
    rng.shuffle(kinds)
    painted: list[Painted] = []
    hi = min(320, 0.95 * max(W, H))
    for kind in kinds:
        if kind is None:
            aspect = float(np.exp(rng.uniform(np.log(1 / 2), np.log(2))))
            w, h = _size(rng, 32, hi, aspect)
            mask = _blob(h, w, rng, 0.42, 0.52)
            patch = photo_crop(_PHOTO_DISTRACTORS[rng.integers(len(_PHOTO_DISTRACTORS))], h, w, rng, 0.2)
        else:
            mask, patch = photo_object(PHOTO_OBJECTS[kind % 6], rng, 32, hi)
        x0, y0 = _place(rng, W, H, mask.shape[1], mask.shape[0])
        paste(img, owner, painted, kind, mask, patch, x0, y0)
    return img, owner, painted


PainterFn = Callable[[np.random.Generator, int, int, Sequence[str]], tuple[np.ndarray, np.ndarray, list[Painted]]]
FAMILIES: dict[str, tuple[PainterFn, tuple[str, ...], int]] = {
    # name: (painter, default class names, most classes it can tell apart)
    "shapes": (paint_shapes, SHAPES, 36),
    "silhouettes": (paint_silhouettes, SILHOUETTES, len(SILHOUETTES)),
    "photos": (paint_photos, PHOTO_OBJECTS, len(PHOTO_OBJECTS)),
}
