"""An ImageNet-style classification folder cut from a detection dataset's objects.

``<out>/<class>/<image id>_<object>_<k>.jpg``: for every non-difficult object,
``per_object`` crops of its box enlarged about its centre by a factor drawn
from ``context`` (per side length) and shifted by up to ``jitter`` x its size,
clipped to the image.  ``per_object = 1`` with ``context = (c, c)`` and
``jitter = 0`` gives one fixed crop per object (a validation set).

Seeded (``rng([seed, record index])``), so a rerun writes the same files.  Each
JPEG is written atomically and ``<out>/done.json`` (with a hash of the inputs)
last: a folder with a matching ``done.json`` is reused, anything else is
(re)filled, skipping files already present.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..io_utils import load_json, save_image, save_json, stable_hash
from .voc import ImageRecord


def crop_box(box: np.ndarray, hw: tuple[int, int], factor: float, shift: tuple[float, float]) -> np.ndarray:
    """Internal box ``(4,)`` (0-based inclusive) enlarged by ``factor`` about its centre, moved by
    ``shift`` (fractions of its width/height), rounded and clipped to an image of size ``hw``."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1 + 1.0, y2 - y1 + 1.0
    cx, cy = x1 + w / 2 + shift[0] * w, y1 + h / 2 + shift[1] * h
    nw, nh = w * factor, h * factor
    out = np.array([cx - nw / 2, cy - nh / 2, cx + nw / 2 - 1, cy + nh / 2 - 1])
    out = np.round(out)
    return np.clip(out, 0, [hw[1] - 1, hw[0] - 1, hw[1] - 1, hw[0] - 1]).astype(np.int64)


def make_classification_crops(records: Sequence[ImageRecord], classes: Sequence[str], out_dir: str | Path,
                              per_object: int = 4, context: tuple[float, float] = (1.1, 1.8),
                              jitter: float = 0.15, seed: int = 0, progress=None) -> dict[str, int]:
    """Write the crops; returns crops per class.  ``progress``: optional tqdm-like wrapper."""
    out = Path(out_dir)
    from .fingerprint import annotations_fingerprint, images_fingerprint
    key = stable_hash({"ids": [r.key for r in records], "annotations": annotations_fingerprint(records, classes),
                       "images": images_fingerprint(records), "per_object": per_object, "context": list(context),
                       "jitter": jitter, "seed": seed})  # content, not paths: edited data makes new crops
    done = out / "done.json"
    if done.is_file() and load_json(done).get("hash") == key:
        return load_json(done)["counts"]
    counts = {c: 0 for c in classes}
    for c in classes:
        (out / c).mkdir(parents=True, exist_ok=True)
    it = progress(list(enumerate(records)), desc=f"crops {out.name}", unit="img") if progress else enumerate(records)
    for idx, r in it:
        rng = np.random.default_rng([seed, idx])
        keep = np.nonzero(~r.difficult)[0]
        img = None
        for o in keep:
            name = classes[int(r.labels[o])]
            for k in range(per_object):
                factor = rng.uniform(*context)
                shift = tuple(rng.uniform(-jitter, jitter, 2)) if jitter > 0 else (0.0, 0.0)
                path = out / name / f"{r.key}_{o}_{k}.jpg"
                counts[name] += 1
                if path.is_file():
                    continue
                if img is None:
                    img = r.load()
                x1, y1, x2, y2 = crop_box(r.boxes[o], (r.height, r.width), factor, shift)
                save_image(img[y1:y2 + 1, x1:x2 + 1], path)
    empty = [c for c, n in counts.items() if n == 0]
    if empty:
        raise ValueError(f"{out}: no crops for class(es) {empty}: the source split has no such objects")
    save_json({"hash": key, "counts": counts}, done)
    return counts
