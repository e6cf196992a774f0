"""Generated VOC-format detection datasets: the demo's embedded default and held-out families.

Deterministic from a seed (image ``i`` uses ``default_rng([seed, i])``).  What
the images show is the *family*'s (:mod:`spp_det.data.scenes`): ``shapes``
(the demo: six classes that differ in shape and texture, never in colour),
``silhouettes`` (six other shapes whose random texture says nothing about the
class) and ``photos`` (objects cut from real photographs).  The demo's
``shapes`` classes:

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

Every family: the image's longer side is ``max_side``, the shorter one
uniform in ``[min_side, max_side]`` (landscape 70 %), then 30 % of images are
blurred, and all get Gaussian noise.  Annotation follows VOC: the box is the
**visible** extent; ``truncated`` if the object runs off the image;
``difficult`` if less than 40 % of it is visible or its visible box is under
20 px; objects under 15 % visible are not annotated.  Images are saved as JPEG
(quality 70-95) in the exact VOCdevkit layout with train/val/trainval/test
lists and per-class ``<cls>_<split>.txt`` lists.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from ..io_utils import load_json, remove_stale_temps, save_json, stable_hash, temp_prefix
from .scenes import FAMILIES, SHAPES

CLASSES = SHAPES  # the demo's six classes (family "shapes")
VERSION = 1


def family_classes(family: str) -> tuple[str, ...]:
    """Default class names of a generated family (:data:`spp_det.data.scenes.FAMILIES`)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown dataset family {family!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[family][1]


def render_image(index: int, seed: int, min_side: int, max_side: int, classes=CLASSES, family: str = "shapes"):
    """Render image ``index``: returns (BGR uint8 image, list of object dicts, JPEG quality)."""
    painter, _, most = FAMILIES[family]
    if len(classes) > most:
        raise ValueError(f"family {family!r} tells at most {most} classes apart, not {len(classes)}")
    rng = np.random.default_rng([seed, index])
    short = int(rng.integers(min_side, max_side + 1))
    W, H = (max_side, short) if rng.random() < 0.7 else (short, max_side)
    img, owner, painted = painter(rng, H, W, classes)
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
                       progress: Callable | None = tqdm, classes: Optional[Sequence[str]] = None,
                       family: str = "shapes") -> Path:
    """Write (or reuse) a synthetic VOC2007-layout dataset of ``family`` (:mod:`spp_det.data.scenes`) at ``root``.

    ``classes`` names the classes (default: the family's own names); class ``i`` is
    drawn as the family's class ``i`` (``shapes``: :func:`class_style` ``(i)``, so e.g.
    the 20 VOC names give a 20-class set).
    ``root`` becomes ``.../VOC2007`` with ``Annotations``, ``JPEGImages`` and
    ``ImageSets/Main``; trainval is split into train (even positions) and val (odd).
    It is built in a temporary sibling directory and renamed
    into place, so a killed run leaves nothing half-written; an existing root
    made with the same parameters is reused, one made with others is an error.
    """
    classes = list(family_classes(family) if classes is None else classes)
    root = Path(root)
    params = {"version": VERSION, "seed": seed, "num_trainval": num_trainval, "num_test": num_test,
              "min_side": min_side, "max_side": max_side, "classes": classes}
    if family != "shapes":  # (the demo's datasets made before families existed keep their hash)
        params["family"] = family
    marker = root / "synthetic.json"
    if marker.is_file():
        if load_json(marker).get("hash") == stable_hash(params):
            return root
        raise FileExistsError(f"{root}: holds a synthetic dataset made with other parameters; "
                              "remove it or choose another root")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: exists and is not a generated dataset; refusing to overwrite")
    root.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root.parent)  # a generation killed before its rename
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(root.name), dir=root.parent))
    try:
        for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (tmp / d).mkdir(parents=True)
        n = num_trainval + num_test
        ids = [f"{i + 1:06d}" for i in range(n)]
        present: dict[str, dict[str, int]] = {c: {} for c in classes}
        it = range(n)
        for i in (progress(it, desc="synthetic VOC", unit="img") if progress else it):
            img, objects, quality = render_image(i, seed, min_side, max_side, classes, family)
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
