"""Per-class linear functions of window features: the trained SVMs and box regressors, one typed class.

Conventions
-----------
Features ``x``: float32 ``(N, D)``, *unscaled* (pooled conv5, or fc7 of the fine-tuned head).
A model multiplies them by its ``scale`` (``norm.target`` / mean feature norm on the training split,
:func:`spp_det.window_features.feature_scale`) and applies, per class ``c``::

    out[:, c, :] = (scale * x) @ W[c] + b[c]        W: (C, D, K), b: (C, K)

SVMs have ``K = 1`` (:meth:`LinearModels.scores`: ``(N, C)``), box regressors ``K = 4``
(:meth:`LinearModels.deltas`: ``(N, 4)`` of one class, ``(dx, dy, dw, dh)`` of
:func:`spp_det.bbox_reg.encode`). ``classes`` names the C rows; ``kind`` says what the model is
(``svm_fc7``, ``svm_pool5``, ``bbox``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .io_utils import save_torch

KINDS = ("svm_fc7", "svm_pool5", "bbox")


@dataclass
class LinearModels:
    W: np.ndarray
    b: np.ndarray
    scale: float
    classes: list[str]
    kind: str
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.W = np.asarray(self.W, np.float32)
        self.b = np.asarray(self.b, np.float32)
        C = len(self.classes)
        if self.kind not in KINDS:
            raise ValueError(f"linear model kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.W.ndim != 3 or self.W.shape[0] != C or self.b.shape != (C, self.W.shape[2]):
            raise ValueError(f"{self.kind}: W must be (C, D, K) and b (C, K) for C = {C} classes; got W "
                             f"{self.W.shape}, b {self.b.shape}")

    @property
    def dim(self) -> int:
        return self.W.shape[1]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``(N, C)`` scores of unscaled features ``(N, D)`` (SVMs: ``K = 1``)."""
        if self.W.shape[2] != 1:
            raise ValueError(f"{self.kind}: scores() is for one output per class, this model has {self.W.shape[2]}")
        return (np.asarray(x, np.float32) * self.scale) @ self.W[:, :, 0].T + self.b[:, 0]

    def deltas(self, x: np.ndarray, cls: int) -> np.ndarray:
        """``(N, K)`` outputs of class ``cls`` for unscaled features ``(N, D)`` (box regressors: ``K = 4``)."""
        return (np.asarray(x, np.float32) * self.scale) @ self.W[cls] + self.b[cls]

    def save(self, path: str | Path) -> None:
        save_torch({"format": 2, "kind": self.kind, "W": torch.from_numpy(self.W), "b": torch.from_numpy(self.b),
                    "scale": float(self.scale), "classes": list(self.classes), "info": self.info}, path)

    @classmethod
    def load(cls, path: str | Path) -> "LinearModels":
        d = torch.load(path, map_location="cpu", weights_only=False)
        W, b = d["W"].numpy(), d["b"].numpy()
        kind = d.get("kind")
        if d.get("format") != 2:  # written before this class: SVMs as W (D, C), b (C,), kind "fc7"/"pool5"
            if kind in ("fc7", "pool5"):
                W, b, kind = W.T[:, :, None], b[:, None], f"svm_{kind}"
            else:
                kind = "bbox"
        try:
            return cls(W, b, float(d["scale"]), list(d["classes"]), kind, d.get("info", {}))
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
