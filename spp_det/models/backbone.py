"""A conv trunk that knows its geometry, channel count and pre-processing.

:class:`Backbone` is what every stage uses: ``preprocess`` turns a BGR uint8
image into the network's input tensor, ``forward`` gives the last conv map
("conv5"), and ``geometry`` maps conv cells to image pixels.
``fc_init`` carries pretrained fc6/fc7 weights when the source net has any.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch
import torch.nn as nn

from .geometry import Geometry, derive_geometry


@dataclass(frozen=True)
class Preprocess:
    """Per-channel ``(x - mean) / std`` in the given channel order, pixels 0..255.

    ``mean``/``std`` are in the *output* channel order (``"bgr"`` or ``"rgb"``).
    """

    order: str = "bgr"
    mean: tuple[float, float, float] = (128.0, 128.0, 128.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def __call__(self, image_bgr: np.ndarray) -> torch.Tensor:
        """BGR uint8 ``(H, W, 3)`` -> float32 tensor ``(3, H, W)``."""
        img = image_bgr if self.order == "bgr" else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        x = (img.astype(np.float32) - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def batch(self, image_bgr: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """BGR uint8 ``(H, W, 3)`` -> float32 ``(1, 3, H, W)`` in channels-last memory on ``device``: the
        same values as :meth:`__call__` (the same float32 subtraction and division).  For a GPU the
        uint8 image is moved first and the GPU does the arithmetic (a quarter of the bytes to copy, no
        CPU pass over the pixels: docs/BENCHMARKS.md, "On a GPU").  On the CPU the numpy path is kept, so
        that CPU conv maps stay bit for bit those already cached under the same conv5 key (two ad-hoc
        timings of the two paths at 688 x 917 on 2 cores disagreed on which is faster)."""
        if torch.device(device).type == "cpu":
            return self(image_bgr).unsqueeze(0).contiguous(memory_format=torch.channels_last)
        t = torch.from_numpy(np.ascontiguousarray(image_bgr)).to(device, non_blocking=True)
        if self.order == "rgb":
            t = t.flip(-1)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=t.device)
        std = torch.tensor(self.std, dtype=torch.float32, device=t.device)
        return ((t.float() - mean) / std).permute(2, 0, 1)[None]  # HWC memory = channels_last


ZF_PREPROCESS = Preprocess("bgr", (128.0, 128.0, 128.0), (1.0, 1.0, 1.0))
LITE_PREPROCESS = Preprocess("rgb", (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
IMAGENET_PREPROCESS = Preprocess("rgb", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))


@dataclass
class FcInit:
    """Pretrained fc weights usable by the SPP head.

    ``fc6_weight`` is ``(out, C * g * g)`` for the source net's ``g x g`` pool5
    grid (channel-major, like torch's flatten); the head copies it into its own
    ``g x g`` pyramid level if it has one.  ``fc7_*`` are ``(out, in)`` / ``(out,)``.
    """

    grid: int
    fc6_weight: torch.Tensor
    fc6_bias: torch.Tensor
    fc7_weight: torch.Tensor
    fc7_bias: torch.Tensor


@dataclass
class Backbone:
    name: str
    trunk: nn.Module
    out_channels: int
    preprocess: Preprocess
    fc_init: Optional[FcInit] = None
    input_size: int = 224  # the classifier's input side: what R-CNN mode warps each window to
    conv_dtype: str = "float32"  # what conv5() computes in (``features.conv_dtype``): float32, bfloat16, float16
    geometry: Geometry = field(init=False)

    def __post_init__(self) -> None:
        self.geometry = derive_geometry(self.trunk)
        # channels-last convs: 1.4x faster on 2 CPU cores at 688x917 (Lite0 0.390 -> 0.276 s, ZF-5
        # 0.679 -> 0.505 s; benchmarks/bench_conv.py); conv5() returns contiguous NCHW again.
        self.trunk.to(memory_format=torch.channels_last)
        self.trunk.eval()
        for p in self.trunk.parameters():
            p.requires_grad_(False)

    @property
    def stride(self) -> int:
        return self.geometry.stride

    @torch.no_grad()
    def conv5(self, image_bgr: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
        """Conv map ``(C, H', W')`` (float32) of one already-resized BGR uint8 image, computed in
        :attr:`conv_dtype` (torch autocast on the trunk's device)."""
        x = self.preprocess.batch(image_bgr, device)
        if self.conv_dtype == "float32":
            return self.trunk(x)[0].contiguous()
        with torch.autocast(x.device.type, dtype=getattr(torch, self.conv_dtype)):
            y = self.trunk(x)
        return y[0].float().contiguous()

    def to(self, device: str | torch.device) -> "Backbone":
        self.trunk.to(device)
        return self
