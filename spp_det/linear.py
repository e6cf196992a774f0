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

Features may be a numpy array or a torch tensor.  A tensor on a GPU is scored there (float32, the
model's weights copied to that device once) and only the ``(N, C)`` / ``(N, K)`` result comes back:
the test stage keeps pooled and fc7 features on the GPU.  Other inputs are scored by numpy.  ``W`` and
``b`` are replaced, never changed in place, when a model is altered (the device copy is matched to
them by identity).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .io_utils import save_torch

KINDS = ("svm_fc7", "svm_pool5", "bbox")


def _on_gpu(x) -> bool:
    return isinstance(x, torch.Tensor) and x.device.type != "cpu"


def _numpy(x) -> np.ndarray:
    return (x.detach().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float32, copy=False)


@dataclass
class LinearModels:
    W: np.ndarray
    b: np.ndarray
    scale: float
    classes: list[str]
    kind: str
    info: dict = field(default_factory=dict)
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # C-contiguous whatever built them: numpy's BLAS rounds ``x @ W.T`` differently for a transposed
        # layout (last digits of the scores), so a model trained in one process (W assembled from columns)
        # and the same model merged from torchrun's ranks (rows) would otherwise score apart.
        self.W = np.ascontiguousarray(self.W, np.float32)
        self.b = np.ascontiguousarray(self.b, np.float32)
        C = len(self.classes)
        if self.kind not in KINDS:
            raise ValueError(f"linear model kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.W.ndim != 3 or self.W.shape[0] != C or self.b.shape != (C, self.W.shape[2]):
            raise ValueError(f"{self.kind}: W must be (C, D, K) and b (C, K) for C = {C} classes; got W "
                             f"{self.W.shape}, b {self.b.shape}")

    @classmethod
    def merge(cls, parts: "Sequence[tuple[Sequence[int], LinearModels]]") -> "LinearModels":
        """One model from models that each trained some of the classes (torchrun's ranks): ``parts`` =
        ``[(class indices, model)]``, every class in exactly one part; a class's rows of ``W`` and ``b`` and
        its ``info`` entry (keyed by class name) come from the model that trained it."""
        first = parts[0][1]
        owner = {c: m for cs, m in parts for c in cs}
        if sorted(owner) != list(range(len(first.classes))) or sum(len(cs) for cs, _ in parts) != len(owner):
            raise ValueError(f"{first.kind}: the parts must train every class exactly once")
        C = len(first.classes)
        W = np.stack([owner[c].W[c] for c in range(C)])
        b = np.stack([owner[c].b[c] for c in range(C)])
        info = {first.classes[c]: owner[c].info[first.classes[c]] for c in range(C)
                if first.classes[c] in owner[c].info}
        return cls(W, b, first.scale, list(first.classes), first.kind, info)

    @property
    def dim(self) -> int:
        return self.W.shape[1]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """``(N, C)`` scores of unscaled features ``(N, D)`` (SVMs: ``K = 1``)."""
        if self.W.shape[2] != 1:
            raise ValueError(f"{self.kind}: scores() is for one output per class, this model has {self.W.shape[2]}")
        if _on_gpu(x):
            W, b = self._weights(x.device)
            return ((x.float() * self.scale) @ W[:, :, 0].T + b[:, 0]).cpu().numpy()
        return (_numpy(x) * self.scale) @ self.W[:, :, 0].T + self.b[:, 0]

    def deltas(self, x: np.ndarray, cls: int) -> np.ndarray:
        """``(N, K)`` outputs of class ``cls`` for unscaled features ``(N, D)`` (box regressors: ``K = 4``)."""
        if _on_gpu(x):
            W, b = self._weights(x.device)
            return ((x.float() * self.scale) @ W[cls] + b[cls]).cpu().numpy()
        return (_numpy(x) * self.scale) @ self.W[cls] + self.b[cls]

    def class_deltas(self, x, picks: "list[tuple[int, np.ndarray]]") -> "list[np.ndarray]":
        """``[(N_k, K)]``: :meth:`deltas` of rows ``rows_k`` of ``x`` for class ``c_k``, for each ``(c_k, rows_k)``
        of ``picks``.  On a GPU one product for all classes of the rows any class picked, and one copy
        back (20 per-class round trips cost 7.9 ms per image on the H100; docs/BENCHMARKS.md, "On a GPU")."""
        if not _on_gpu(x) or not picks:
            return [self.deltas(x[rows], c) for c, rows in picks]
        rows = np.unique(np.concatenate([r for _, r in picks]))
        W, b = self._weights(x.device)
        C, D, K = W.shape
        out = ((x[torch.from_numpy(rows).to(x.device)].float() * self.scale) @ W.permute(1, 0, 2).reshape(D, C * K)
               + b.reshape(C * K)).cpu().numpy().reshape(len(rows), C, K)
        return [out[np.searchsorted(rows, r), c] for c, r in picks]

    def _weights(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        hit = self._on_device.get(key)
        if hit is None or hit[0] is not self.W or hit[1] is not self.b:
            hit = (self.W, self.b, torch.from_numpy(self.W).to(device), torch.from_numpy(self.b).to(device))
            self._on_device[key] = hit
        return hit[2], hit[3]

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
