"""Loader for R-CNN's precomputed selective-search ``.mat`` files.

Format (``selective_search_data/voc_2007_<split>.mat``): ``images`` is a cell
array of image ids and ``boxes`` a cell array with one ``(N, 4)`` matrix per
image, each row ``[y1 x1 y2 x2]``, **1-based** inclusive.  Returned boxes are
internal: float32 ``x1, y1, x2, y2`` 0-based inclusive.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def rcnn_rows_to_internal(rows: np.ndarray) -> np.ndarray:
    """``[y1 x1 y2 x2]`` 1-based -> ``[x1 y1 x2 y2]`` 0-based (float32)."""
    r = np.asarray(rows, dtype=np.float64).reshape(-1, 4)
    return (r[:, [1, 0, 3, 2]] - 1.0).astype(np.float32)


def load_rcnn_mat(path: str | Path) -> dict[str, np.ndarray]:
    """Read an R-CNN proposal file -> ``{image_id: (N, 4) float32 internal boxes}``."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: R-CNN proposal file not found")
    try:
        mat = scipy.io.loadmat(str(path))
    except NotImplementedError as e:  # MATLAB v7.3 (HDF5)
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save with -v7") from e
    except Exception as e:  # noqa: BLE001 - scipy raises many types for bad files
        raise ValueError(f"{path}: cannot read .mat file: {e}") from e
    for key in ("images", "boxes"):
        if key not in mat:
            raise ValueError(f"{path}: missing variable {key!r} (expected R-CNN's 'images' and 'boxes')")
    images = np.asarray(mat["images"]).ravel()
    boxes = np.asarray(mat["boxes"]).ravel()
    if len(images) != len(boxes):
        raise ValueError(f"{path}: {len(images)} images but {len(boxes)} box sets")
    out: dict[str, np.ndarray] = {}
    for im, bx in zip(images, boxes):
        image_id = str(np.asarray(im).ravel()[0]) if np.asarray(im).size else ""
        if not image_id:
            raise ValueError(f"{path}: empty image id")
        out[image_id] = rcnn_rows_to_internal(np.asarray(bx))
    return out
