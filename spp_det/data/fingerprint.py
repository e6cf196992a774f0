"""Content fingerprints of dataset splits: what stage keys cover so that edited data is never served stale.

Conventions
-----------
A split has two fingerprints, because stages read two different things:

* **images** (:func:`images_fingerprint`): every image id of the split, in order, with the sha256 of its
  file's bytes (:func:`image_digest`). Proposals and conv maps read only these, so an edited annotation
  does not recompute them; a replaced, added or removed image does.
* **annotations** (:func:`annotations_fingerprint`): what the pipeline parsed from the annotation files
  (ids, image sizes, boxes, class indices, difficult and truncated flags) and the class list the indices
  refer to. Fine-tuning, SVMs and box regression read the training split's; evaluation the test split's.
  Hashing the parsed records rather than the files' bytes makes a VOC XML and a COCO json alike, and an
  edit the pipeline never reads (a ``<pose>``) invalidates nothing.

Image digests are content hashes, not ``(size, mtime)``: a copied or re-downloaded dataset keeps its
caches, and shared caches (``features.conv5_root``) stay valid across machines. Each file is read once
per process: digests are memoised on ``(path, size, mtime_ns)``, so a rewritten file is read again.
Cost (``benchmarks/bench_fingerprint.py``, 2 cores, files in the page cache): see docs/BENCHMARKS.md.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io_utils import file_digest
from .voc import DatasetError, ImageRecord

def image_digest(path: str | os.PathLike) -> str:
    """sha256 (first 16 hex digits) of an image file's bytes (:func:`spp_det.io_utils.file_digest`,
    memoised on ``(path, size, mtime_ns)``); an unreadable file is a :class:`DatasetError` naming it."""
    try:
        return file_digest(path)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read image ({e.strerror or e})") from None


def images_fingerprint(records: Sequence[ImageRecord]) -> str:
    """Hash of ``[(image id, image digest), ...]`` in split order."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.image_id}\0{image_digest(r.path)}\n".encode())
    return h.hexdigest()[:16]


def annotations_fingerprint(records: Sequence[ImageRecord], classes: Sequence[str]) -> str:
    """Hash of the parsed annotations of ``records`` (see the module docstring) and ``classes``."""
    h = hashlib.sha256("\0".join(classes).encode() + b"\n")
    for r in records:
        h.update(f"{r.image_id}\0{r.width}\0{r.height}\0{len(r.labels)}\n".encode())
        for a, dtype in ((r.boxes, np.float32), (r.labels, np.int64), (r.difficult, np.bool_),
                         (r.truncated, np.bool_)):
            h.update(np.ascontiguousarray(a, dtype=dtype).tobytes())
    return h.hexdigest()[:16]


def folder_fingerprint(root: str | os.PathLike) -> str:
    """Hash of every file under ``root``: relative path, size and mtime (not content: a user's
    classification folder may be ImageNet-sized, 140 GB). For ``pretrain.data``."""
    root = Path(root)
    h = hashlib.sha256()
    try:
        for dirpath, dirnames, filenames in sorted(os.walk(root)):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    except OSError as e:
        raise DatasetError(f"{root}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()[:16]
