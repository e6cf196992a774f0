"""Where torch work runs: device names, moving conv maps, waiting for a GPU, the RNG states a resume restores.

Conventions
-----------
A device is named as in the config (``features.device``): ``"auto"`` (the GPU when torch sees one,
else the CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.  Conv maps are ``(C, H', W')`` tensors, one per
scale, ``None`` for a scale nothing is pooled at; R-CNN mode passes the BGR image instead, which
stays where it is.
"""
from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def on_device(maps, device: torch.device):
    """Conv maps (a tensor, or a list with ``None`` for unused scales) moved to ``device`` when it is a
    GPU; anything else (a CPU device, R-CNN mode's image) as given."""
    if device.type == "cpu":
        return maps
    if isinstance(maps, torch.Tensor):
        return maps.to(device, non_blocking=True)
    if isinstance(maps, (list, tuple)):
        return [m.to(device, non_blocking=True) if isinstance(m, torch.Tensor) else m for m in maps]
    return maps


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (GPU), so that wall-clock timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rng_state(device: torch.device) -> dict:
    """torch's generator states that dropout on ``device`` draws from (the CPU's, and the GPU's)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device: torch.device) -> None:
    """Restore :func:`rng_state` (or a bare CPU state, as checkpoints before it held)."""
    if isinstance(state, torch.Tensor):
        torch.set_rng_state(state)
        return
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
