"""Derive a conv trunk's total stride and the image position of conv cell 0.

For a chain of layers with kernel ``k``, stride ``s``, padding ``p`` and
dilation ``d``, output cell ``j`` of one layer is centred on input position
``j * s - p + d (k - 1) / 2``.  Composing layers gives, for the trunk's last
map, ``centre(k) = cell0 + stride * k`` where ``k`` is the 0-based cell index
and positions are **0-based pixel indices** of the network input.  Ceil-mode
pooling changes the map size, never the centres.

Example (ZF-5): conv1 7/2/1 -> 2, pool1 3/2/0 -> 4, conv2 5/2/0 -> 12,
pool2 3/2/0 -> 20; stride 16; so cell k sits on pixel 16 k + 20 (0-based),
the ``offset0 = 21`` (1-based) of the released SPP-net code.

The derivation walks ``nn.Conv2d``/``nn.MaxPool2d``/``nn.AvgPool2d`` modules in
registration order, which every backbone in :mod:`spp_det.models` keeps equal
to execution order along the main path (residual shortcuts hold no layers).
``tests/test_models.py`` checks the result against a receptive-field probe.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn


@dataclass(frozen=True)
class Geometry:
    """``stride``: pixels between adjacent cells; ``cell0``: 0-based pixel centre of cell 0."""

    stride: int
    cell0: float


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def derive_geometry(trunk: nn.Module) -> Geometry:
    """Stride and cell-0 centre of ``trunk`` along x (backbones here are square)."""
    stride = 1
    centre = 0.0
    for m in trunk.modules():
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(m.kernel_size)[1]
            s = _pair(m.stride if m.stride is not None else m.kernel_size)[1]
            p = m.padding
            if isinstance(p, str):
                raise ValueError(f"string padding {p!r} has input-dependent geometry; use explicit padding")
            p = _pair(p)[1]
            d = _pair(getattr(m, "dilation", 1))[1]
            centre += stride * (d * (k - 1) / 2.0 - p)
            stride *= s
    return Geometry(stride=stride, cell0=centre)
