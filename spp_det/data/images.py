"""The one image loader: OpenCV, BGR uint8 ``(H, W, 3)``, with clear errors."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ImageError(ValueError):
    """An image file is missing, unreadable or not what its annotation says."""


def load_image(path: str | Path, expect_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as BGR uint8 ``(H, W, 3)`` (grey images are expanded).

    Raises :class:`ImageError` naming the file if it is missing, cannot be
    decoded (corrupt or truncated), or its size differs from ``expect_hw``.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ImageError(f"{path}: cannot decode image (corrupt, truncated or not an image)")
    if expect_hw is not None and tuple(img.shape[:2]) != tuple(expect_hw):
        raise ImageError(f"{path}: image is {img.shape[1]}x{img.shape[0]} (WxH) but its annotation "
                         f"says {expect_hw[1]}x{expect_hw[0]}")
    return img


def resize_short_side(image: np.ndarray, scale: int) -> np.ndarray:
    """Resize so the shorter side is ``scale`` (long side rounded, uncapped): bilinear, no antialiasing."""
    h, w = image.shape[:2]
    r = scale / min(h, w)
    new_w, new_h = max(1, int(round(w * r))), max(1, int(round(h * r)))
    if (new_h, new_w) == (h, w):
        return image
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
