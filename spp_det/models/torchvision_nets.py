"""AlexNet and VGG16 from torchvision, cut before their last max-pool (stride 16).

Weights come from a local file (a torchvision state dict) or, for online users,
from torchvision's weight enums (``weights: imagenet``).  Tests never download.
The pretrained classifier's fc6/fc7 are exposed as :class:`FcInit`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import torchvision

from .backbone import IMAGENET_PREPROCESS, Backbone, FcInit


def _load_tv(arch: str, weights: Optional[str]) -> torch.nn.Module:
    builder = getattr(torchvision.models, arch)
    if weights is None:
        return builder(weights=None)
    if weights == "imagenet":  # needs internet on first use (torch hub cache)
        enum = {"alexnet": torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
                "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1}[arch]
        return builder(weights=enum)
    path = Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"{arch} weights file not found: {path}")
    model = builder(weights=None)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model


def _build(arch: str, grid: int, weights: Optional[str], input_size: int) -> Backbone:
    model = _load_tv(arch, weights)
    trunk = torch.nn.Sequential(*list(model.features.children())[:-1])  # drop pool5
    fc6 = [m for m in model.classifier if isinstance(m, torch.nn.Linear)][0]
    fc7 = [m for m in model.classifier if isinstance(m, torch.nn.Linear)][1]
    channels = [m for m in trunk if isinstance(m, torch.nn.Conv2d)][-1].out_channels
    fc_init = None
    if weights is not None:
        fc_init = FcInit(grid, fc6.weight.detach().clone(), fc6.bias.detach().clone(),
                         fc7.weight.detach().clone(), fc7.bias.detach().clone())
    return Backbone(arch, trunk, channels, IMAGENET_PREPROCESS, fc_init, input_size)


def build_alexnet(weights: Optional[str] = None) -> Backbone:
    """AlexNet conv1..conv5+ReLU: 256 channels, stride 16, cell 0 on pixel 15."""
    return _build("alexnet", 6, weights, 227)  # R-CNN's crop size


def build_vgg16(weights: Optional[str] = None) -> Backbone:
    """VGG16 conv1_1..conv5_3+ReLU: 512 channels, stride 16, cell 0 on pixel 7.5."""
    return _build("vgg16", 7, weights, 224)
