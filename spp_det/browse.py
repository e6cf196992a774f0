"""A look at a dataset before training on it (``spp-det browse``): its images with their ground truth and,
optionally, their best proposals, drawn into a folder, and a count of objects per class.

Conventions: boxes are the dataset's internal ones (:mod:`spp_det.boxes`); ground truth is drawn in a
colour per class and labelled with the class name, ``D`` marking a difficult object (drawn grey, as the
VOC devkit ignores it) and ``T`` a truncated one; proposals (the first ``N`` in the proposal file's
order: selective search's ranking) are thin cyan boxes under the ground truth, read from the proposals
stage's file when it exists, else computed for just these images with the config's settings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .data.source import DataSource
from .data.voc import ImageRecord
from .drawing import labelled_box
from .io_utils import save_image, save_text

PROPOSAL_COLOUR, DIFFICULT_COLOUR = (255, 255, 0), (150, 150, 150)  # BGR: cyan, grey


def class_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` distinct BGR colours (matplotlib's tab10 / tab20)."""
    from .plots import colours
    cmap = colours(n)
    return [tuple(int(255 * c) for c in reversed(cmap(i % cmap.N)[:3])) for i in range(n)]


def draw_ground_truth(image_bgr: np.ndarray, record: ImageRecord, classes: Sequence[str],
                      proposals: Optional[np.ndarray] = None) -> np.ndarray:
    """A copy of the image with ``proposals`` ``(N, 4)`` (if given) and the record's objects drawn (module
    docstring)."""
    import cv2
    out = image_bgr.copy()
    if proposals is not None:
        for x1, y1, x2, y2 in np.round(proposals).astype(int):
            cv2.rectangle(out, (x1, y1), (x2, y2), PROPOSAL_COLOUR, 1)
    palette = class_palette(len(classes))
    for b, c, diff, trunc in zip(record.boxes, record.labels, record.difficult, record.truncated):
        labelled_box(out, b, DIFFICULT_COLOUR if diff else palette[int(c)],
                     classes[int(c)] + (" D" if diff else "") + (" T" if trunc else ""))
    return out


def split_summary(records: Sequence[ImageRecord], classes: Sequence[str], split: str) -> str:
    """Objects per class (all, difficult, truncated) and image sizes of a split, as a table."""
    n = len(classes)
    counts = np.zeros((3, n), np.int64)
    for r in records:
        np.add.at(counts[0], r.labels, 1)
        np.add.at(counts[1], r.labels[r.difficult], 1)
        np.add.at(counts[2], r.labels[r.truncated], 1)
    sides = np.array([[r.width, r.height] for r in records]) if records else np.zeros((0, 2))
    lines = [f"Split {split}: {len(records)} images, {int(counts[0].sum())} objects "
             f"({int(counts[1].sum())} difficult, {int(counts[2].sum())} truncated); "
             + (f"width {sides[:, 0].min()}-{sides[:, 0].max()}, height {sides[:, 1].min()}-{sides[:, 1].max()} px"
                if len(sides) else "no images"),
             f"  {'class':<16} {'objects':>8} {'difficult':>10} {'truncated':>10} {'images':>7}"]
    for c, name in enumerate(classes):
        images = sum(bool((r.labels == c).any()) for r in records)
        lines.append(f"  {name:<16} {counts[0, c]:>8} {counts[1, c]:>10} {counts[2, c]:>10} {images:>7}")
    return "\n".join(lines)


def browse(data: DataSource, split: str, out: Path, images: int = 16, proposals: int = 0,
           progress: bool = True) -> list[Path]:
    """Draw ``images`` evenly spaced images of ``split`` (all if 0) with their ground truth and their first
    ``proposals`` proposals into ``out/<image id>.jpg``; write ``out/summary.txt``
    (:func:`split_summary`). Returns the image paths."""
    from tqdm import tqdm
    records = data.dataset(split).records
    pick = (np.unique(np.linspace(0, len(records) - 1, min(images, len(records))).round().astype(int))
            if images else np.arange(len(records)))
    cached = None
    if proposals:
        try:
            cached = data.proposals(split)
        except (FileNotFoundError, ValueError):  # not computed yet (or for another config): compute these
            cached = None
    search = data.search_params() if proposals and cached is None else None
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i in tqdm(pick, desc=f"browse {split}", unit="img", disable=not progress):
        r = records[i]
        img = r.load()
        boxes = None
        if proposals:
            if cached is not None:
                boxes = cached[r.image_id]
            else:
                from proposals.selective_search import selective_search
                boxes = selective_search(img, search)
            boxes = boxes[:proposals]
        path = out / f"{r.image_id}.jpg"
        save_image(draw_ground_truth(img, r, data.classes, boxes), path)
        written.append(path)
    save_text(split_summary(records, data.classes, split) + "\n", out / "summary.txt")
    return written
