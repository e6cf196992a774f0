"""R-CNN baseline mode: the warp geometry against hand-worked cases, the canvas against an
independent bilinear formula, and the pooler against the trunk run on those canvases by hand."""
import numpy as np
import pytest
import torch

from spp_det.models import build_lite0
from spp_det.rcnn import RCNNPooler, warp_plan, warp_window
from spp_det.spp import spp_image

# A 100 x 80 (W x H) image, canvas 227, 16 px context: the box grows by 227 / 195 about its centre.
# Worked by hand in R-CNN's 1-based coordinates (x1 y1 x2 y2 -> centre, half sizes, enlarged box):
HAND = [
    # inside: 31..70 x 21..60 -> centre (51, 41), half 20 -> +-23.28 -> 28..74 x 18..64 (47 px, unclipped);
    # the whole canvas is image columns 27:74, rows 17:64 (0-based half-open)
    ((30, 20, 69, 59), dict(x1=27, y1=17, x2=74, y2=64, left=0, top=0, w=227, h=227)),
    # at the top-left edge: 1..40 -> centre 21, half 20 -> -2..44: 3 px outside on each of left/top;
    # 227/47 per px: pad round(3 * 4.83) = 14, clipped 44 px -> round(212.5) = 213 on the canvas
    ((0, 0, 39, 39), dict(x1=0, y1=0, x2=44, y2=44, left=14, top=14, w=213, h=213)),
    # partly outside (bottom-right): 81..120 x 61..100 -> 78..124 x 58..104, clipped to 78..100 x 58..80:
    # 23 px -> round(23 * 4.83) = 111 at the canvas origin, the rest is mean
    ((80, 60, 119, 99), dict(x1=77, y1=57, x2=100, y2=80, left=0, top=0, w=111, h=111)),
    # touching the bottom-right corner: 71..100 x 51..80, half 15 -> 69..103 x 49..83 (35 px) clipped to
    # 69..100 x 49..80: 32 px -> round(32 * 227 / 35) = round(207.5) = 208
    ((70, 50, 99, 79), dict(x1=68, y1=48, x2=100, y2=80, left=0, top=0, w=208, h=208)),
]


@pytest.mark.parametrize("box,expect", HAND)
def test_warp_plan_matches_hand_worked_geometry(box, expect):
    p = warp_plan(box, (80, 100), 227, 16)
    assert {k: getattr(p, k) for k in expect} == expect


def _bilinear_ramp(ramp_coef, plan, size):
    """Expected canvas from the half-pixel-centre bilinear formula on a linear ramp image
    v = a x + b y + c (exact for a ramp): canvas pixel u samples region coordinate
    (u + 0.5) * region / crop - 0.5, clamped to the region."""
    a, b, c = ramp_coef
    u = np.arange(plan.w)
    v = np.arange(plan.h)
    sx = np.clip((u + 0.5) * (plan.x2 - plan.x1) / plan.w - 0.5, 0, plan.x2 - plan.x1 - 1) + plan.x1
    sy = np.clip((v + 0.5) * (plan.y2 - plan.y1) / plan.h - 0.5, 0, plan.y2 - plan.y1 - 1) + plan.y1
    return a * sx[None, :] + b * sy[:, None] + c


@pytest.mark.parametrize("box", [b for b, _ in HAND])
def test_warp_window_content_is_the_bilinear_resize_of_the_clipped_region(box):
    H, W = 80, 100
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    coefs = [(1.0, 0.5, 3.0), (-0.25, 2.0, 200.0), (0.75, -1.0, 90.0)]
    img = np.stack([a * xx + b * yy + c for a, b, c in coefs], -1).astype(np.float32)
    fill = (11.0, 22.0, 33.0)
    canvas = warp_window(img, box, 227, 16, fill)
    p = warp_plan(box, (H, W), 227, 16)
    inside = np.zeros((227, 227), bool)
    inside[p.top:p.top + p.h, p.left:p.left + p.w] = True
    for ch, coef in enumerate(coefs):
        np.testing.assert_allclose(canvas[p.top:p.top + p.h, p.left:p.left + p.w, ch],
                                   _bilinear_ramp(coef, p, 227), atol=2e-3)
        assert np.all(canvas[~inside, ch] == fill[ch])  # outside the image: the mean pixel


def test_window_entirely_outside_the_image_is_an_error():
    with pytest.raises(ValueError, match="entirely outside"):
        warp_plan((300, 300, 340, 340), (80, 100))


def test_pooler_runs_the_trunk_on_each_warped_canvas():
    """Features of each window = pyramid pooling of the trunk's map of its normalised canvas,
    outside pixels = the network's mean (0 after normalisation)."""
    bb = build_lite0(None)
    pooler = RCNNPooler(bb, (1, 2), size=64, context=8, batch=2)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    boxes = np.array([[10, 5, 50, 40], [0, 0, 89, 59], [70, 40, 89, 59]], np.float32)
    got = pooler.pool(img, boxes, (60, 90))
    assert got.shape == (3, 112 * 5) == (3, pooler.dim)
    pre = bb.preprocess
    mean_bgr = np.asarray(pre.mean[::-1], np.float32)  # Lite0 normalises RGB
    for k, b in enumerate(boxes):
        canvas = warp_window(img, b, 64, 8, mean_bgr)[..., ::-1]  # -> RGB
        x = (canvas - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
        if k == 2:  # this window's context runs past the image: those canvas pixels are exactly 0
            assert np.all(x[-1] == 0) and np.all(x[:, -1] == 0)
        with torch.no_grad():
            fmap = bb.trunk(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        torch.testing.assert_close(got[k], spp_image(fmap, (1, 2))[0], rtol=1e-4, atol=1e-4)
    with pytest.raises(TypeError, match="image itself"):
        pooler.pool([torch.zeros(112, 4, 4)], boxes, (60, 90))


def test_spp_and_rcnn_sources_share_the_window_source_protocol():
    """Stages take a WindowSource and an InputSource; both modes provide them (same feature dimension)."""
    from spp_det.features import Conv5Cache, InputSource, WindowPooler, WindowSource
    from spp_det.rcnn import ImageInputs
    bb = build_lite0(None)
    spp, rcnn = WindowPooler(bb, [224]), RCNNPooler(bb, size=64, context=4)
    assert isinstance(spp, WindowSource) and isinstance(rcnn, WindowSource) and spp.dim == rcnn.dim
    assert isinstance(ImageInputs(), InputSource) and isinstance(Conv5Cache({224: "/nowhere"}, bb), InputSource)
