"""conv5 once per image per scale, cached on disk; windows pooled from the cache.

Cache layout: ``<workdir>/conv5/<backbone>_s<scale>_<hash>/<key>.npy``, one fp16
``(C, H', W')`` array per image view (``key`` is the image id, ``<id>_flip`` for
the mirrored view).  ``hash`` covers everything the maps depend on (backbone
and weights, scale, dataset root), so a cache made under another config is
never read.  Each file is written atomically; rerunning skips files present.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .data.images import resize_short_side
from .data.voc import ImageRecord
from .io_utils import save_npy
from .models import Backbone
from .spp import boxes_to_cells, spp_pool

log = logging.getLogger(__name__)


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def compute_conv5(backbone: Backbone, image_bgr: np.ndarray, scale: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """conv map ``(C, H', W')`` (float32, on ``device``) of an original-size BGR image at ``scale``."""
    return backbone.conv5(resize_short_side(image_bgr, scale), device)


class Conv5Cache:
    """On-disk fp16 conv maps of one backbone at one scale."""

    def __init__(self, directory: str | Path, backbone: Backbone, scale: int):
        self.dir = Path(directory)
        self.backbone = backbone
        self.scale = int(scale)

    def path(self, record: ImageRecord) -> Path:
        return self.dir / f"{record.key}.npy"

    def missing(self, records: Sequence[ImageRecord]) -> list[ImageRecord]:
        return [r for r in records if not self.path(r).is_file()]

    def build(self, records: Sequence[ImageRecord], device: torch.device | str = "cpu",
              progress: bool = True) -> None:
        """Compute and store the maps of ``records`` not yet cached."""
        todo = self.missing(records)
        if not todo:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.backbone.to(device)
        t0 = time.perf_counter()
        for r in tqdm(todo, desc=f"conv5 s{self.scale}", unit="img", disable=not progress):
            fmap = compute_conv5(self.backbone, r.load(), self.scale, device)
            save_npy(self.path(r), fmap.to(torch.float16).cpu().numpy())
        dt = time.perf_counter() - t0
        log.info("conv5 s%d: %d images in %.1f s (%.3f s/img)", self.scale, len(todo), dt, dt / len(todo))

    def load(self, record: ImageRecord) -> torch.Tensor:
        """float32 ``(C, H', W')`` map of ``record``; error naming the file if absent."""
        p = self.path(record)
        if not p.is_file():
            raise FileNotFoundError(f"{p}: conv5 map not cached (run the conv5 stage first)")
        return torch.from_numpy(np.load(p)).float()


class WindowPooler:
    """Pools original-image windows from conv maps with the config's projection and levels."""

    def __init__(self, backbone: Backbone, scale: int, levels: Sequence[int] = (1, 2, 3, 6),
                 rule: str = "paper", offset: Optional[float] = None):
        self.geometry = backbone.geometry
        self.channels = backbone.out_channels
        self.scale, self.levels, self.rule, self.offset = int(scale), tuple(levels), rule, offset

    @property
    def dim(self) -> int:
        return self.channels * sum(n * n for n in self.levels)

    def cells(self, boxes: np.ndarray, orig_hw: tuple[int, int], map_hw: tuple[int, int]) -> np.ndarray:
        return boxes_to_cells(boxes, orig_hw, self.scale, self.geometry, map_hw, self.rule, self.offset)

    def pool(self, fmap: torch.Tensor, boxes: np.ndarray, orig_hw: tuple[int, int]) -> torch.Tensor:
        """``(N, dim)`` pooled features of internal boxes ``(N, 4)`` (original-image pixels)."""
        cells = self.cells(boxes, orig_hw, tuple(fmap.shape[1:]))
        return spp_pool(fmap, cells, self.levels)
