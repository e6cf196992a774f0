"""R-CNN baseline mode (``mode: rcnn``): every window warped and run through the whole network.

The SPP-net paper's comparison (reference section 8): each window is enlarged
about its centre so that, once warped to the network's ``size x size`` input
(227 for ZF-5 and AlexNet), ``context`` pixels (16) of the image surround it;
the enlarged box is clipped to the image; the clipped region is resized
(bilinear, no antialiasing) into its proportional place on the canvas; canvas
pixels outside the image hold the mean (0 after mean subtraction).  Each
canvas goes through conv1..conv5; the conv map of the whole canvas is pooled
by the same pyramid as SPP-net (:func:`spp_det.spp.spp_image`), so fc6/fc7,
the SVMs and the box regressors take exactly the inputs they take in SPP
mode, and accuracy and time compare like for like on the same backbone.

The geometry is R-CNN's ``rcnn_im_crop`` (``warp``, ``padding = 16``),
written here in 1-based pixel coordinates as there; boxes given to and
returned by the public functions are internal (0-based inclusive).
Fine-tuning in this mode trains fc6/fc7/fc8 only, as SPP-net does (R-CNN
proper also fine-tunes the conv layers).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional, Sequence

import cv2
import numpy as np
import torch

from .devices import sync
from .models import Backbone
from .spp import spp_dim, spp_image


def _round(x: float) -> int:
    """MATLAB's round: halves away from zero."""
    return int(np.sign(x) * np.floor(abs(x) + 0.5))


@dataclass(frozen=True)
class WarpPlan:
    """Where one window goes: image rows ``y1:y2`` / columns ``x1:x2`` (0-based, half-open) are
    resized to ``h x w`` and pasted at canvas row ``top``, column ``left``."""

    x1: int
    y1: int
    x2: int
    y2: int
    left: int
    top: int
    w: int
    h: int


def warp_plan(box: Sequence[float], image_hw: tuple[int, int], size: int = 227, context: int = 16) -> WarpPlan:
    """R-CNN's warp geometry for one internal box ``(x1, y1, x2, y2)`` (0-based inclusive; it may
    extend past the image) on an image of ``image_hw``."""
    H, W = image_hw
    x1, y1, x2, y2 = (float(v) + 1.0 for v in box)  # 1-based inclusive, as in rcnn_im_crop
    scale = size / (size - 2.0 * context)
    half_w, half_h = (x2 - x1 + 1) / 2.0, (y2 - y1 + 1) / 2.0
    cx, cy = x1 + half_w, y1 + half_h
    bx1, by1 = _round(cx - half_w * scale), _round(cy - half_h * scale)
    bx2, by2 = _round(cx + half_w * scale), _round(cy + half_h * scale)
    unclipped_w, unclipped_h = bx2 - bx1 + 1, by2 - by1 + 1
    pad_x, pad_y = max(0, 1 - bx1), max(0, 1 - by1)
    bx1, by1, bx2, by2 = max(1, bx1), max(1, by1), min(W, bx2), min(H, by2)
    if bx2 < bx1 or by2 < by1:
        raise ValueError(f"window {list(box)} lies entirely outside the {W}x{H} image")
    sx, sy = size / unclipped_w, size / unclipped_h
    left, top = _round(pad_x * sx), _round(pad_y * sy)
    w = min(max(1, _round((bx2 - bx1 + 1) * sx)), size - left)
    h = min(max(1, _round((by2 - by1 + 1) * sy)), size - top)
    return WarpPlan(bx1 - 1, by1 - 1, bx2, by2, left, top, w, h)


def warp_window(image: np.ndarray, box: Sequence[float], size: int = 227, context: int = 16,
                fill: Sequence[float] = (0.0, 0.0, 0.0), out: Optional[np.ndarray] = None) -> np.ndarray:
    """float32 ``(size, size, 3)`` canvas of one window (same channel order as ``image``);
    pixels outside the image are ``fill`` (the network's mean pixel).  ``out``: write into this
    float32 ``(size, size, 3)`` array instead of a new one."""
    p = warp_plan(box, image.shape[:2], size, context)
    canvas = np.empty((size, size, 3), np.float32) if out is None else out
    canvas[:] = np.asarray(fill, np.float32)
    region = image[p.y1:p.y2, p.x1:p.x2]
    canvas[p.top:p.top + p.h, p.left:p.left + p.w] = cv2.resize(region, (p.w, p.h), interpolation=cv2.INTER_LINEAR)
    return canvas


class RCNNPooler:
    """Drop-in for :class:`spp_det.features.WindowPooler` in R-CNN mode.

    ``pool(image, boxes, orig_hw)`` takes the **image** (BGR uint8 ``(H, W, 3)``)
    where the SPP pooler takes conv maps, warps every window, runs the trunk in
    batches of ``batch`` and returns ``(N, dim)`` pyramid-pooled conv5 of each
    canvas (float32, on ``device``).  Timings of the last call, split into warping and
    network time, are kept in ``last_times`` (seconds).
    """

    def __init__(self, backbone: Backbone, levels: Sequence[int] = (1, 2, 3, 6), size: Optional[int] = None,
                 context: int = 16, batch: int = 64, device: torch.device | str = "cpu"):
        self.backbone, self.levels = backbone, tuple(levels)
        self.size = int(size or backbone.input_size)
        self.context, self.batch, self.device = context, batch, torch.device(device)
        self.channels = backbone.out_channels
        pre = backbone.preprocess
        mean = np.asarray(pre.mean, np.float32)
        self.fill_bgr = mean if pre.order == "bgr" else mean[::-1].copy()
        self.last_times = {"warp": 0.0, "conv": 0.0}

    @property
    def dim(self) -> int:
        return spp_dim(self.channels, self.levels)

    def canvases(self, image_bgr: np.ndarray, boxes: np.ndarray) -> torch.Tensor:
        """Network input ``(N, 3, size, size)`` (channels-last memory) of internal boxes ``(N, 4)``:
        warped (:func:`warp_window`) and normalised."""
        pre = self.backbone.preprocess
        x = np.empty((len(boxes), self.size, self.size, 3), np.float32)
        for k, b in enumerate(boxes):
            warp_window(image_bgr, b, self.size, self.context, self.fill_bgr, out=x[k])
        t = torch.from_numpy(x)
        if pre.order == "rgb":
            t = t.flip(-1)
        t = (t - torch.tensor(pre.mean)) / torch.tensor(pre.std)
        return t.permute(0, 3, 1, 2)  # NHWC memory = channels_last

    @torch.no_grad()
    def pool(self, image_bgr: np.ndarray, boxes: np.ndarray, orig_hw: tuple[int, int],
             scale_idx: Optional[np.ndarray] = None) -> torch.Tensor:
        """``(N, dim)`` features of internal boxes ``(N, 4)`` of ``image_bgr`` (``orig_hw`` its size;
        ``scale_idx`` is accepted for interface parity and ignored: R-CNN has one input size)."""
        if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim != 3:
            raise TypeError("R-CNN mode pools from the image itself (BGR uint8 (H, W, 3)), not from conv maps")
        if tuple(image_bgr.shape[:2]) != tuple(orig_hw):
            raise ValueError(f"image is {image_bgr.shape[1]}x{image_bgr.shape[0]} but orig_hw says {orig_hw}")
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = torch.empty((len(boxes), self.dim), dtype=torch.float32, device=self.device)
        t_warp = t_conv = 0.0
        trunk = self.backbone.trunk
        for i in range(0, len(boxes), self.batch):
            t0 = time.perf_counter()
            x = self.canvases(image_bgr, boxes[i:i + self.batch]).to(self.device)
            t1 = time.perf_counter()
            out[i:i + len(x)] = spp_image(trunk(x), self.levels).float()
            sync(self.device)  # the timings cover the GPU's work
            t_conv += time.perf_counter() - t1
            t_warp += t1 - t0
        self.last_times = {"warp": t_warp, "conv": t_conv}
        return out


class ImageInputs:
    """Stands for :class:`spp_det.features.Conv5Cache` in R-CNN mode (``ModelFactory.window_inputs``):
    ``load`` gives the image, which :class:`RCNNPooler` takes where the SPP pooler takes conv maps."""

    def load(self, record) -> np.ndarray:
        return record.load()
