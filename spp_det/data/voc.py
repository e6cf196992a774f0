"""PASCAL VOC reader with validation.

Layout: ``<root>/Annotations/<id>.xml``, ``<root>/JPEGImages/<id>.jpg``,
``<root>/ImageSets/Main/<split>.txt``.  XML boxes are 1-based inclusive; records
hold **internal** boxes (0-based inclusive, see :mod:`spp_det.boxes`).

Every record is validated when read: malformed XML, missing fields, a size
that is not positive, an inverted box, a box outside the image, an unknown
class, a duplicated id or an empty split each raise :class:`DatasetError`
naming the file and the problem.  Pixel data is decoded later, by
:func:`spp_det.data.images.load_image`, which names a corrupt file.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..boxes import flip_boxes
from .images import load_image


class DatasetError(ValueError):
    """Bad dataset input; the message names the file and the problem."""


@dataclass
class ImageRecord:
    """One annotated image.

    boxes: float32 ``(K, 4)`` internal 0-based inclusive; labels: int64 ``(K,)``
    class indices into the dataset's class list; difficult/truncated: bool ``(K,)``.
    ``flipped`` records are the horizontal mirror of the file on disk.
    """

    image_id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    truncated: np.ndarray
    flipped: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Unique key of this view of the image (``<id>`` or ``<id>_flip``)."""
        return self.image_id + ("_flip" if self.flipped else "")

    def load(self) -> np.ndarray:
        """BGR uint8 pixels of this record (mirrored if ``flipped``)."""
        img = load_image(self.path, (self.height, self.width))
        return np.ascontiguousarray(img[:, ::-1]) if self.flipped else img

    def flip(self) -> "ImageRecord":
        """The horizontally mirrored record (``x' = W - 1 - x``, x1/x2 swapped)."""
        return replace(self, boxes=flip_boxes(self.boxes, self.width), flipped=not self.flipped)

    def gt_for_training(self, use_difficult: bool) -> tuple[np.ndarray, np.ndarray]:
        keep = np.ones(len(self.labels), bool) if use_difficult else ~self.difficult
        return self.boxes[keep], self.labels[keep]


def _text(node: ET.Element, tag: str, xml: Path) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{xml}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, xml: Path) -> float:
    s = _text(node, tag, xml)
    try:
        return float(s)
    except ValueError:
        raise DatasetError(f"{xml}: <{tag}> is not a number: {s!r}") from None


def _flag(node: ET.Element, tag: str, xml: Path) -> bool:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        return False
    try:
        return bool(int(float(child.text.strip())))
    except ValueError:
        raise DatasetError(f"{xml}: <{tag}> must be 0 or 1, got {child.text.strip()!r}") from None


def parse_annotation(xml: Path, classes: Sequence[str], image_dir: Path, image_id: str,
                     require_image: bool = True) -> ImageRecord:
    """Parse and validate one VOC XML file (``require_image``: its image file must exist; evaluation
    needs only the annotations)."""
    if not xml.is_file():
        raise DatasetError(f"{xml}: annotation file not found (listed in the split)")
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{xml}: malformed XML: {e}") from None
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{xml}: missing <size>")
    width, height = int(_number(size, "width", xml)), int(_number(size, "height", xml))
    if width <= 0 or height <= 0:
        raise DatasetError(f"{xml}: image size must be positive, got {width}x{height}")
    filename = root.findtext("filename")
    path = image_dir / (filename.strip() if filename and filename.strip() else f"{image_id}.jpg")
    if require_image and not path.is_file():
        alt = image_dir / f"{image_id}.jpg"
        if not alt.is_file():
            raise DatasetError(f"{xml}: image file not found: {path}")
        path = alt
    cls_index = {c: i for i, c in enumerate(classes)}
    boxes, labels, difficult, truncated, poses = [], [], [], [], []
    for k, obj in enumerate(root.findall("object")):
        name = _text(obj, "name", xml)
        if name not in cls_index:
            raise DatasetError(f"{xml}: object {k} has unknown class {name!r} "
                               f"(config classes: {', '.join(classes)})")
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{xml}: object {k} ({name}) has no <bndbox>")
        x1, y1, x2, y2 = (_number(bb, t, xml) for t in ("xmin", "ymin", "xmax", "ymax"))
        if x1 > x2 or y1 > y2:
            raise DatasetError(f"{xml}: object {k} ({name}) has an inverted box "
                               f"[{x1:g} {y1:g} {x2:g} {y2:g}] (xmin > xmax or ymin > ymax)")
        if x1 < 1 or y1 < 1 or x2 > width or y2 > height:
            raise DatasetError(f"{xml}: object {k} ({name}) box [{x1:g} {y1:g} {x2:g} {y2:g}] is outside "
                               f"the {width}x{height} image (VOC boxes are 1-based, inside [1, W] x [1, H])")
        boxes.append([x1 - 1, y1 - 1, x2 - 1, y2 - 1])
        labels.append(cls_index[name])
        difficult.append(_flag(obj, "difficult", xml))
        truncated.append(_flag(obj, "truncated", xml))
        poses.append(obj.findtext("pose") or "Unspecified")
    return ImageRecord(
        image_id=image_id, path=path, width=width, height=height,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4), labels=np.asarray(labels, np.int64),
        difficult=np.asarray(difficult, bool), truncated=np.asarray(truncated, bool),
        extra={"poses": poses},
    )


def read_split(root: str | Path, split: str) -> list[str]:
    """Image ids of ``ImageSets/Main/<split>.txt``; error if missing, empty or duplicated."""
    f = Path(root) / "ImageSets" / "Main" / f"{split}.txt"
    if not f.is_file():
        raise DatasetError(f"{f}: split file not found")
    ids = [line.split()[0] for line in f.read_text(encoding="utf-8-sig").splitlines() if line.strip()]  # BOM dropped
    if not ids:
        raise DatasetError(f"{f}: split {split!r} is empty")
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            raise DatasetError(f"{f}: image id {i!r} is listed twice")
        seen.add(i)
    return ids


class DetectionDataset:
    """Records of one split plus the queries every stage uses; subclasses fill ``records``."""

    split: str
    classes: list[str]
    records: list[ImageRecord]

    def _index(self) -> None:
        self._by_id = {r.image_id: r for r in self.records}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> ImageRecord:
        return self.records[i]

    def by_id(self, image_id: str) -> ImageRecord:
        return self._by_id[image_id]

    def with_flipped(self) -> list[ImageRecord]:
        """Records followed by their horizontal flips (fine-tuning data)."""
        return list(self.records) + [r.flip() for r in self.records]

    def num_objects(self, include_difficult: bool = True) -> np.ndarray:
        """Objects per class ``(num_classes,)``."""
        counts = np.zeros(len(self.classes), np.int64)
        for r in self.records:
            keep = np.ones(len(r.labels), bool) if include_difficult else ~r.difficult
            np.add.at(counts, r.labels[keep], 1)
        return counts


class VOCDataset(DetectionDataset):
    """All records of one split of a VOC-format dataset, validated on load."""

    def __init__(self, root: str | Path, split: str, classes: Sequence[str], require_images: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: dataset root not found")
        self.split = split
        self.classes = list(classes)
        ids = read_split(self.root, split)
        self.records = [parse_annotation(self.root / "Annotations" / f"{i}.xml", self.classes,
                                         self.root / "JPEGImages", i, require_images) for i in ids]
        self._index()
