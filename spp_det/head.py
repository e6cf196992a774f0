"""The fc layers on top of the pyramid: fc6 -> ReLU -> drop -> fc7 -> ReLU -> drop -> fc8."""
from __future__ import annotations

import copy
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
        how = fc_init_mode(fc, self.in_dim, self.fc6.out_features, levels, channels)
        if how is None:
            return False
        with torch.no_grad():
            if how == "whole":
                self.fc6.weight.copy_(fc.fc6_weight)
            else:
                start = channels * sum(n * n for n in levels[: list(levels).index(fc.grid)])
                self.fc6.weight.zero_()
                self.fc6.weight[:, start:start + channels * fc.grid ** 2].copy_(fc.fc6_weight)
            self.fc6.bias.copy_(fc.fc6_bias)
            self.fc7.weight.copy_(fc.fc7_weight)
            self.fc7.bias.copy_(fc.fc7_bias)
        return True


def fc_init_mode(fc: Optional[FcInit], in_dim: int, fc_dim: int, levels: Sequence[int], channels: int) -> Optional[str]:
    """How :meth:`SPPHead.init_from` would use pretrained ``fc``: ``"whole"`` (fc6 of exactly ``in_dim``
    inputs), ``"level"`` (a ``g x g`` grid fc6 into pyramid level ``g``) or ``None`` (fc6/fc7 start random)."""
    if fc is None or fc.fc6_weight.shape[0] != fc_dim:
        return None
    if fc.fc6_weight.shape[1] == in_dim:
        return "whole"
    if fc.grid in levels and fc.fc6_weight.shape[1] == channels * fc.grid ** 2:
        return "level"
    return None


def truncated_svd(layer: nn.Linear, rank: int) -> nn.Sequential:
    """``W ~ U_k S_k V_k^T`` as two layers: ``S_k V_k^T`` (``in -> rank``, no bias), then ``U_k`` with the
    original bias (``rank -> out``): ``rank (in + out)`` multiply-adds per window instead of
    ``in * out`` (Fast R-CNN, section 3.1).  A rank >= min(in, out) is exact."""
    W = layer.weight.detach().double()
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    k = min(rank, S.numel())
    first = nn.Linear(W.shape[1], k, bias=False)
    second = nn.Linear(k, W.shape[0])
    with torch.no_grad():
        first.weight.copy_((S[:k, None] * Vh[:k]).to(layer.weight.dtype))
        second.weight.copy_(U[:, :k].to(layer.weight.dtype))
        second.bias.copy_(layer.bias.detach())
    return nn.Sequential(first, second)


class FastFc(nn.Module):
    """Test-time fc6/fc7 of a trained head, optionally SVD-compressed and/or in bfloat16:
    ``fc7_features(x)`` takes and returns float32 ``(N, in_dim)`` -> ``(N, fc_dim)``."""

    def __init__(self, head: SPPHead, svd: Optional[Sequence[int]] = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.dtype = dtype
        self.fc6 = truncated_svd(head.fc6, svd[0]) if svd else copy.deepcopy(head.fc6)
        self.fc7 = truncated_svd(head.fc7, svd[1]) if svd else copy.deepcopy(head.fc7)
        self.to(dtype)
        self.eval()

    @torch.no_grad()
    def fc7_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc7(torch.relu(self.fc6(x.to(self.dtype))))).float()


def test_time_fc(head: SPPHead, svd: Optional[Sequence[int]] = None, dtype: str = "float32") -> "SPPHead | FastFc":
    """The fc6/fc7 the test stage runs (``test.fc_svd``, ``test.fc_dtype``): ``head`` itself when neither
    is set (bit-identical to training-time features), else a :class:`FastFc`."""
    if not svd and dtype == "float32":
        return head
    return FastFc(head, svd, getattr(torch, dtype))


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 2048) -> torch.Tensor:
    """Apply ``fn`` to ``x`` in row batches (bounded memory)."""
    if len(x) <= batch:
        return fn(x)
    return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])
