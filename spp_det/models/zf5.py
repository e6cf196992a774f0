"""ZF-5 (Zeiler & Fergus "fast" net as used by SPP-net), exactly as in the spec.

conv1 96x7x7 s2 p1 -> ReLU -> LRN -> maxpool 3x3 s2 (ceil);
conv2 256x5x5 s2 p0 -> ReLU -> LRN -> maxpool 3x3 s2 (ceil);
conv3 384x3x3 p1; conv4 384x3x3 p1; conv5 256x3x3 p1 (each + ReLU).
A 224 input gives a 13x13 conv5; stride 16; cell k centred on pixel 16 k + 20.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class WithinChannelLRN(nn.Module):
    """Spatial LRN: ``y = x / (1 + alpha * mean_3x3(x^2)) ** beta``.

    The 3x3 window is zero-padded and the mean always divides by 9 (Caffe's
    WITHIN_CHANNEL mode), unlike torch's cross-channel ``LocalResponseNorm``.
    """

    def __init__(self, size: int = 3, alpha: float = 5e-5, beta: float = 0.75):
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean_sq = F.avg_pool2d(x * x, self.size, stride=1, padding=self.size // 2, count_include_pad=True)
        return x / (1.0 + self.alpha * mean_sq).pow(self.beta)


def zf5_trunk() -> nn.Sequential:
    """conv1..conv5 (+ReLU) of ZF-5; output 256 channels at stride 16."""
    return nn.Sequential(
        nn.Conv2d(3, 96, 7, stride=2, padding=1), nn.ReLU(inplace=True), WithinChannelLRN(),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(96, 256, 5, stride=2, padding=0), nn.ReLU(inplace=True), WithinChannelLRN(),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
    )
