"""Conv map storage formats (spp_det/map_codec.py) against torch's per-channel quantization, and the
conv5 cache storing and reading them."""
import warnings

import numpy as np
import pytest
import torch

from spp_det import map_codec
from spp_det.features import Conv5Cache


def _maps():
    g = torch.Generator().manual_seed(0)
    signed = torch.randn(6, 9, 11, generator=g) * torch.tensor([0.1, 1, 3, 10, 0.5, 2])[:, None, None]
    relu = torch.relu(torch.randn(5, 13, 7, generator=g) - 0.3) * 4  # ~60% zeros, as post-ReLU conv5
    relu[2] = 0  # a dead channel
    positive = torch.rand(3, 4, 5, generator=g) + 1.0  # no zeros, all > 0: the range still starts at 0
    return {"signed": signed, "relu": relu, "positive": positive}


@pytest.mark.parametrize("kind", ["signed", "relu", "positive"])
def test_uint8_matches_torch_per_channel_quantization(kind):
    x = _maps()[kind]
    enc = map_codec.encode(x, "uint8")
    scale, zero = enc["scale"], enc["zero_point"]
    # torch's quantizer (deprecated, still the reference) given the same scales and zero points
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = torch.quantize_per_channel(x, torch.from_numpy(scale).double(), torch.from_numpy(zero).long(), 0,
                                         torch.quint8)
    out = map_codec.decode(enc)
    assert out.dtype == torch.float32 and out.shape == x.shape
    torch.testing.assert_close(out, ref.dequantize(), rtol=0, atol=1e-6)
    # the hand-worked bound: each channel's range (with 0) in 255 steps, off by half a step at most
    lo = torch.minimum(x.amin((1, 2)), torch.zeros(1))
    hi = torch.maximum(x.amax((1, 2)), torch.zeros(1))
    np.testing.assert_allclose(scale, ((hi - lo) / 255).clamp(min=1e-12).numpy(), rtol=1e-6)
    assert ((out - x).abs() <= torch.from_numpy(scale)[:, None, None] / 2 + 1e-6).all()
    assert (out[x == 0] == 0).all()  # zeros stay exact


def test_uint8_stores_post_relu_maps_sparse_and_signed_maps_dense():
    m = _maps()
    relu, signed = map_codec.encode(m["relu"], "uint8"), map_codec.encode(m["signed"], "uint8")
    assert "mask" in relu and "q" not in relu and "q" in signed and "mask" not in signed
    n = m["relu"].numel()
    nonzero = int((map_codec.decode(relu) != 0).sum())  # values under half a step round to 0
    assert 0.3 * n < relu["values"].size == nonzero <= int((m["relu"] != 0).sum())
    assert relu["mask"].size == (n + 7) // 8
    assert signed["q"].nbytes == m["signed"].numel()  # 1 byte a value


def test_float16_is_a_cast_and_unknown_formats_are_refused():
    x = _maps()["signed"]
    torch.testing.assert_close(map_codec.decode(map_codec.encode(x, "float16")), x.half().float(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown conv map format 'int4'"):
        map_codec.encode(x, "int4")


class _Fixed:
    """A stand-in backbone returning a fixed post-ReLU map whatever the image."""

    def __init__(self, fmap):
        self.fmap = fmap

    def to(self, device):
        return self

    def conv5(self, image, device):
        return self.fmap


def test_conv5_cache_stores_and_reads_each_format(tmp_path):
    import cv2
    from spp_det.data.voc import ImageRecord

    img = tmp_path / "a.jpg"
    cv2.imwrite(str(img), np.full((20, 30, 3), 128, np.uint8))
    rec = ImageRecord("a", img, 30, 20, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                      np.zeros(0, bool), np.zeros(0, bool))
    x = _maps()["relu"]
    got = {}
    for fmt in map_codec.FORMATS:
        cache = Conv5Cache({224: tmp_path / fmt}, _Fixed(x), fmt)
        cache.build([rec], progress=False)
        assert cache.path(rec, 224).suffix == (".npy" if fmt == "float16" else ".npz")
        assert not cache.missing([rec])
        got[fmt] = cache.load(rec)[0]
    torch.testing.assert_close(got["float16"], x.half().float())
    torch.testing.assert_close(got["uint8"], map_codec.decode(map_codec.encode(x, "uint8")), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown conv map format"):
        Conv5Cache({224: tmp_path / "x"}, _Fixed(x), "int4")
