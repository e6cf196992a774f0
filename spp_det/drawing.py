"""Boxes and labels drawn on images (OpenCV), the one style every picture of the project shares.

Conventions: images are BGR uint8 ``(H, W, 3)``, drawn on in place; boxes are internal (0-based inclusive
pixel indices of that image, :mod:`spp_det.boxes`); colours are BGR tuples.
"""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def labelled_box(image: np.ndarray, box, colour: tuple[int, int, int], text: Optional[str] = None,
                 thickness: int = 2, font_scale: float = 0.45, scale: float = 1.0) -> None:
    """Draw ``box`` (multiplied by ``scale``: for an image resized by that factor) in ``colour`` over a black
    outline, and ``text`` (if any) on a filled tag of the same colour above its top-left corner (inside
    the image)."""
    x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
    cv2.rectangle(image, (x1, y1), (x2, y2), (0, 0, 0), thickness + 2)
    cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness)
    if text:
        (tw, th), _ = cv2.getTextSize(text, FONT, font_scale, 1)
        y = max(th + 4, y1)
        cv2.rectangle(image, (x1, y - th - 4), (x1 + tw + 3, y), colour, -1)
        cv2.putText(image, text, (x1 + 1, y - 3), FONT, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
