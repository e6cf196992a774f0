"""conv5 once per image per scale, cached on disk; windows pooled from the cache.

Cache layout: ``<conv5 root>/<backbone>_s<scale>_<hash>/<key>.<digest>.npy`` for
every scale of ``model.scales``, one fp16 ``(C, H', W')`` array per image view, or ``.npz`` in a
compact format (``features.cache_format``, :mod:`spp_det.map_codec`) (``key`` is the image id, ``<id>_flip`` for the mirrored view; ``digest`` the
content hash of the image file, :func:`spp_det.data.fingerprint.image_digest`,
so a replaced image is never served its old map).  The root is
``<workdir>/conv5`` unless ``features.conv5_root`` names a shared one.
``hash`` covers what the maps depend on besides the image (backbone and
weights, scale, storage format), so a cache made under another config is never read, and
caches are shared by any dataset holding the same image files.  Each file is
written atomically; rerunning skips files present.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from tqdm import tqdm

from .data.fingerprint import image_digest
from .data.images import resize_short_side
from .data.voc import ImageRecord
from . import map_codec
from .io_utils import save_npy, save_npz
from .models import Backbone
from .multiscale import select_scale_indices
from .spp import boxes_to_cells, spp_pool

log = logging.getLogger(__name__)


@runtime_checkable
class InputSource(Protocol):
    """Per-image inputs of a :class:`WindowSource`: :class:`Conv5Cache` (the cached conv maps, SPP mode)
    or :class:`spp_det.rcnn.ImageInputs` (the image itself, R-CNN mode)."""

    def load(self, record: ImageRecord) -> Any: ...


@runtime_checkable
class WindowSource(Protocol):
    """What turns one image's inputs (:meth:`InputSource.load`) and its windows into features:
    :class:`WindowPooler` (SPP: pools every window from the conv maps) and
    :class:`spp_det.rcnn.RCNNPooler` (R-CNN: warps every window and runs the trunk on it).

    ``pool(inputs, boxes, orig_hw, scale_idx=None)``: internal boxes ``(N, 4)`` in the pixels of an
    image of size ``orig_hw`` -> float32 CPU ``(N, dim)``; ``scale_idx`` ``(N,)`` forces each
    window's scale (multi-scale fine-tuning; ignored by R-CNN's single input size).
    """

    @property
    def dim(self) -> int: ...

    def pool(self, inputs: Any, boxes: np.ndarray, orig_hw: tuple[int, int],
             scale_idx: Optional[np.ndarray] = None) -> torch.Tensor: ...


def compute_conv5(backbone: Backbone, image_bgr: np.ndarray, scale: int,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """conv map ``(C, H', W')`` (float32, on ``device``) of an original-size BGR image at ``scale``."""
    return backbone.conv5(resize_short_side(image_bgr, scale), device)


def cached_map_name(record: ImageRecord, cache_format: str = "float16") -> str:
    """File name of one image view's map in a cache directory: ``<key>.<image digest>.npy`` (float16; a
    plain array) or ``.npz`` (another :data:`spp_det.map_codec.FORMATS`)."""
    return f"{record.key}.{image_digest(record.path)[:12]}.{'npy' if cache_format == 'float16' else 'npz'}"


class Conv5Cache:
    """On-disk conv maps of one backbone at one or more scales (one directory per scale).

    ``backbone`` computes the maps in :meth:`build`: anything with ``to(device)`` and
    ``conv5(resized BGR image, device) -> (C, H', W')`` (a :class:`Backbone`, or the frozen start of
    a trunk in conv fine-tuning). ``cache_format``: how they are stored (:mod:`spp_det.map_codec`).
    """

    def __init__(self, dirs: Mapping[int, str | Path], backbone: Backbone, cache_format: str = "float16"):
        if not dirs:
            raise ValueError("Conv5Cache needs at least one scale")
        if cache_format not in map_codec.FORMATS:
            raise ValueError(f"unknown conv map format {cache_format!r}: one of {list(map_codec.FORMATS)}")
        self.cache_format = cache_format
        self.dirs = {int(s): Path(d) for s, d in dirs.items()}  # config order
        self.scales = list(self.dirs)
        self.backbone = backbone
        self._names: dict[str, str] = {}  # record key -> file name: path() runs on every map load

    def path(self, record: ImageRecord, scale: int) -> Path:
        """The map file of ``record`` at ``scale`` (the image's digest is read once per cache object:
        35 us a call otherwise, a stat and a path resolution, on every map load)."""
        name = self._names.get(record.key)
        if name is None:
            name = self._names[record.key] = cached_map_name(record, self.cache_format)
        return self.dirs[int(scale)] / name

    def missing(self, records: Sequence[ImageRecord]) -> list[ImageRecord]:
        """Records with at least one scale not cached yet."""
        return [r for r in records if any(not self.path(r, s).is_file() for s in self.scales)]

    def build(self, records: Sequence[ImageRecord], device: torch.device | str = "cpu",
              progress: bool = True) -> None:
        """Compute and store the maps of ``records`` not yet cached (each image decoded once)."""
        todo = self.missing(records)
        if not todo:
            return
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        self.backbone.to(device)
        t0 = time.perf_counter()
        desc = "conv5 s" + ",".join(map(str, self.scales))
        for r in tqdm(todo, desc=desc, unit="img", disable=not progress):
            img = r.load()
            for s in self.scales:
                if not self.path(r, s).is_file():
                    fmap = compute_conv5(self.backbone, img, s, device)
                    self._save(self.path(r, s), fmap)
        dt = time.perf_counter() - t0
        log.info("conv5 %s: %d images in %.1f s (%.3f s/img)", self.scales, len(todo), dt, dt / len(todo))

    def _save(self, path: Path, fmap: torch.Tensor) -> None:
        if self.cache_format == "float16":  # a plain .npy: the format caches had before the others
            save_npy(path, map_codec.encode(fmap, "float16")["f16"])
        else:
            save_npz(path, **map_codec.encode(fmap, self.cache_format))

    def _read(self, path: Path) -> torch.Tensor:
        if self.cache_format == "float16":
            return map_codec.decode({"f16": np.load(path)})
        with np.load(path) as z:
            return map_codec.decode(z)

    def load(self, record: ImageRecord, only: Optional[Sequence[int]] = None) -> list[Optional[torch.Tensor]]:
        """float32 ``(C, H'_s, W'_s)`` maps of ``record``, one per scale in config order (``only``: the
        scale indices to read, ``None`` in the other places); error naming the file if one is absent."""
        maps: list[Optional[torch.Tensor]] = []
        for k, s in enumerate(self.scales):
            if only is not None and k not in only:
                maps.append(None)
                continue
            p = self.path(record, s)
            if not p.is_file():
                raise FileNotFoundError(f"{p}: conv5 map not cached (run the conv5 stage first)")
            maps.append(self._read(p))
        return maps


def compute_conv5_pyramid(backbone: Backbone, image_bgr: np.ndarray, scales: Sequence[int],
                          device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """float32 CPU maps of an original-size BGR image at every scale (what :meth:`Conv5Cache.load` gives)."""
    return [compute_conv5(backbone, image_bgr, s, device).float().cpu() for s in scales]


class ComputedMaps:
    """Stands for :class:`Conv5Cache` where a view's maps are not cached: ``load`` computes them (float32,
    every scale, :func:`compute_conv5_pyramid`)."""

    def __init__(self, backbone: Backbone, scales: Sequence[int], device: torch.device | str = "cpu"):
        self.backbone, self.scales, self.device = backbone.to(device), list(scales), device

    def load(self, record: ImageRecord) -> list[torch.Tensor]:
        return compute_conv5_pyramid(self.backbone, record.load(), self.scales, self.device)


class WindowPooler:
    """Pools original-image windows from an image's conv maps (one per scale).

    Each window is pooled from the map of the scale chosen by ``scale_rule``
    (:mod:`spp_det.multiscale`), or from the scale given per window
    (``scale_idx``, fine-tuning's random scales), with the config's projection
    rule and pyramid levels.
    """

    def __init__(self, backbone: Backbone, scales: int | Sequence[int], levels: Sequence[int] = (1, 2, 3, 6),
                 rule: str = "paper", offset: Optional[float] = None, scale_rule: str = "paper"):
        self.geometry = backbone.geometry
        self.channels = backbone.out_channels
        self.scales = [int(scales)] if isinstance(scales, (int, np.integer)) else [int(s) for s in scales]
        self.levels, self.rule, self.offset, self.scale_rule = tuple(levels), rule, offset, scale_rule

    @property
    def dim(self) -> int:
        return self.channels * sum(n * n for n in self.levels)

    def scale_indices(self, boxes: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
        """Index into ``scales`` of the map each window ``(N, 4)`` is pooled from (test-time rule)."""
        return select_scale_indices(boxes, orig_hw, self.scales, self.scale_rule)

    def cells(self, boxes: np.ndarray, orig_hw: tuple[int, int], map_hw: tuple[int, int],
              scale: Optional[int] = None) -> np.ndarray:
        s = self.scales[0] if scale is None else int(scale)
        return boxes_to_cells(boxes, orig_hw, s, self.geometry, map_hw, self.rule, self.offset)

    def pool(self, maps: torch.Tensor | Sequence[torch.Tensor], boxes: np.ndarray, orig_hw: tuple[int, int],
             scale_idx: Optional[np.ndarray] = None) -> torch.Tensor:
        """``(N, dim)`` pooled features of internal boxes ``(N, 4)`` (original-image pixels).

        ``maps``: one ``(C, H', W')`` map per scale (a bare tensor for one scale; ``None`` for a
        scale no window is pooled at); ``scale_idx``: optional ``(N,)`` scale index per window, else
        the scale rule.
        """
        maps = [maps] if isinstance(maps, torch.Tensor) else list(maps)
        if len(maps) != len(self.scales):
            raise ValueError(f"got {len(maps)} conv maps for {len(self.scales)} scales {self.scales}")
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if len(maps) == 1:
            return spp_pool(maps[0], self.cells(boxes, orig_hw, tuple(maps[0].shape[1:])), self.levels)
        idx = self.scale_indices(boxes, orig_hw) if scale_idx is None else np.asarray(scale_idx, np.int64)
        present = next(m for m in maps if m is not None)
        out = present.new_empty((len(boxes), self.dim))
        for k in np.unique(idx):
            rows = np.nonzero(idx == k)[0]
            fmap = maps[k]
            if fmap is None:
                raise ValueError(f"windows are pooled at scale {self.scales[k]} but its map was not given")
            cells = self.cells(boxes[rows], orig_hw, tuple(fmap.shape[1:]), self.scales[k])
            out[torch.from_numpy(rows)] = spp_pool(fmap, cells, self.levels)
        return out
