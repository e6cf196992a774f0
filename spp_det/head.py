"""The fc layers on top of the pyramid: fc6 -> ReLU -> drop -> fc7 -> ReLU -> drop -> fc8."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn

from .models import FcInit


class SPPHead(nn.Module):
    """fc6/fc7 (+ N+1-way fc8) over pooled features of length ``in_dim``.

    ``fc7_features`` gives fc7 after ReLU (eval mode, no dropout): the SVM input.
    """

    def __init__(self, in_dim: int, num_classes: int, fc_dim: int = 4096, dropout: float = 0.5,
                 fc8_std: float = 0.01):
        super().__init__()
        self.in_dim, self.num_classes = in_dim, num_classes
        self.fc6 = nn.Linear(in_dim, fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes + 1)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.fc8.weight, 0.0, fc8_std)
        nn.init.zeros_(self.fc8.bias)

    def fc7_features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc6(x))
        x = self.drop(x) if self.training else x
        return torch.relu(self.fc7(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc7_features(x)
        return self.fc8(self.drop(x) if self.training else x)

    def init_from(self, fc: Optional[FcInit], levels: Sequence[int], channels: int) -> bool:
        """Copy pretrained fc6/fc7 where shapes allow; returns True if anything was copied.

        A source fc6 built on a ``g x g`` pool5 grid goes into the columns of the
        pyramid level ``g`` (the other levels' columns start at zero), the way
        Fast R-CNN reuses fc6 after RoI pooling; an fc6 of exactly ``in_dim``
        inputs (SPP pre-training) is copied whole.
        """
        if fc is None or fc.fc6_weight.shape[0] != self.fc6.out_features:
            return False
        with torch.no_grad():
            if fc.fc6_weight.shape[1] == self.in_dim:
                self.fc6.weight.copy_(fc.fc6_weight)
            elif fc.grid in levels and fc.fc6_weight.shape[1] == channels * fc.grid ** 2:
                start = channels * sum(n * n for n in levels[: list(levels).index(fc.grid)])
                self.fc6.weight.zero_()
                self.fc6.weight[:, start:start + channels * fc.grid ** 2].copy_(fc.fc6_weight)
            else:
                return False
            self.fc6.bias.copy_(fc.fc6_bias)
            self.fc7.weight.copy_(fc.fc7_weight)
            self.fc7.bias.copy_(fc.fc7_bias)
        return True


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in row batches (bounded memory)."""
    if len(x) <= batch:
        return fn(x)
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])
