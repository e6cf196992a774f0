"""Which conv5 scale each window is pooled from (multi-scale detection, paper section 4.1).

conv5 is computed once per image at every scale of ``model.scales`` (shorter
side set to ``s``); each window is then pooled from one of those maps:

``"paper"`` (default)
    the scale at which the scaled window's area is closest to 224 x 224:
    ``argmin_i |w h (s_i / min(H, W))^2 - 224^2|``.
``"released"`` (the authors' MATLAB code)
    the scale closest to ``round(208 min(H, W) / sqrt(w h))`` (208 = 13
    conv5 cells x 16 px): ``argmin_i |s_i - round(208 min(H, W) / sqrt(w h))|``.

``w = x2 - x1 + 1`` and ``h = y2 - y1 + 1`` (boxes are internal: 0-based
inclusive original-image pixels); ``H, W`` is the original image size.  Ties
go to the first scale in config order (MATLAB's ``min`` and numpy's
``argmin`` agree).  In fine-tuning every window is pooled at a scale drawn
uniformly at random (:func:`random_scale_indices`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

SCALE_RULES = ("paper", "released")


def _areas(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)


def select_scale_indices(boxes: np.ndarray, orig_hw: tuple[int, int], scales: Sequence[int],
                         rule: str = "paper", target: float = 224.0, released_base: float = 208.0) -> np.ndarray:
    """Index into ``scales`` (int64 ``(N,)``) of the scale each window ``(N, 4)`` is pooled at."""
    s = np.asarray(scales, np.float64)
    n = len(np.asarray(boxes).reshape(-1, 4))
    if len(s) == 1 or n == 0:
        return np.zeros(n, np.int64)
    short = float(min(orig_hw))
    area = _areas(boxes)
    if rule == "paper":
        scaled = area[:, None] * (s[None, :] / short) ** 2
        return np.abs(scaled - target * target).argmin(1).astype(np.int64)
    if rule == "released":
        expected = np.round(released_base * short / np.sqrt(area))
        return np.abs(s[None, :] - expected[:, None]).argmin(1).astype(np.int64)
    raise ValueError(f"unknown scale rule {rule!r} (use one of {SCALE_RULES})")


def random_scale_indices(n: int, num_scales: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform random scale index per window (fine-tuning); all zeros for one scale (no draw)."""
    if num_scales == 1:
        return np.zeros(n, np.int64)
    return rng.integers(0, num_scales, size=n).astype(np.int64)
