"""How conv maps are stored in the conv5 cache: float16, or 8-bit per-channel quantization (compact).

Conventions: a map is a float32 ``(C, H, W)`` tensor (one image view at one scale, as
:meth:`spp_det.models.Backbone.conv5` returns it). :func:`encode` turns it into a dict of numpy arrays
(saved as one ``.npz``) and :func:`decode` turns that dict back into a float32 ``(C, H, W)`` tensor.

Formats (``features.cache_format``):

* ``float16``: the map cast to float16 (2 bytes a value; what the cache held before issue 12).
* ``uint8``: per-channel affine quantization, the scheme of ``torch.quantize_per_channel`` (which
  torch deprecates, hence these few lines): channel ``c`` covers ``[min(lo_c, 0), max(hi_c, 0)]`` in
  255 steps, ``scale_c = range / 255``, ``zero_point_c = round(-min / scale_c)``,
  ``q = clip(round(x / scale_c) + zero_point_c, 0, 255)``, decoded as ``(q - zero_point_c) * scale_c``:
  0 is exact and every other value is off by at most ``scale_c / 2``. Where more than one value in 8
  sits at the zero point (post-ReLU maps: ZF-5, AlexNet, VGG16) only the others are stored, with a
  bit mask of where they are (``np.packbits``); dense otherwise (EfficientNet-Lite's linear
  bottleneck outputs have no zeros). 1 byte a value at most, about ``(1 - zeros) + 1/8`` sparse.
"""
from __future__ import annotations

import numpy as np
import torch

FORMATS = ("float16", "uint8")
_SPARSE_FROM = 1 / 8  # the mask costs 1/8 byte a value: worth it once more than 1/8 of the values are zero


def encode(fmap: torch.Tensor, fmt: str) -> dict[str, np.ndarray]:
    """float32 ``(C, H, W)`` map -> the arrays that store it in format ``fmt`` (:data:`FORMATS`)."""
    x = fmap.detach().float().cpu().numpy()
    if fmt == "float16":
        return {"f16": x.astype(np.float16)}
    if fmt != "uint8":
        raise ValueError(f"unknown conv map format {fmt!r}: one of {list(FORMATS)}")
    c = x.shape[0]
    flat = x.reshape(c, -1)
    lo, hi = flat.min(1, initial=0.0), flat.max(1, initial=0.0)  # each channel's range, 0 included
    scale = np.maximum((hi - lo) / 255.0, np.float32(1e-12)).astype(np.float32)
    zero = np.clip(np.round(-lo / scale), 0, 255).astype(np.uint8)
    q = np.clip(np.round(flat / scale[:, None]) + zero[:, None], 0, 255).astype(np.uint8).reshape(x.shape)
    out = {"scale": scale, "zero_point": zero, "shape": np.asarray(x.shape, np.int64)}
    nonzero = q != zero[:, None, None]
    if 1.0 - nonzero.mean() > _SPARSE_FROM:
        out["mask"] = np.packbits(nonzero)
        out["values"] = q[nonzero]
    else:
        out["q"] = q
    return out


def decode(arrays) -> torch.Tensor:
    """The arrays of :func:`encode` (a dict, or the ``NpzFile`` of a saved map) -> float32 ``(C, H, W)``."""
    if "f16" in arrays:
        return torch.from_numpy(arrays["f16"]).float()
    shape = tuple(int(s) for s in arrays["shape"])
    zero = arrays["zero_point"]
    if "q" in arrays:
        q = arrays["q"]
    else:
        q = np.repeat(zero, int(np.prod(shape[1:]))).reshape(shape)
        q[np.unpackbits(arrays["mask"], count=q.size).reshape(shape).view(bool)] = arrays["values"]
    x = torch.from_numpy(q).float()
    x -= torch.from_numpy(zero.astype(np.float32))[:, None, None]
    x *= torch.from_numpy(arrays["scale"])[:, None, None]
    return x
