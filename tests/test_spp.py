"""SPP pooling and window projection against brute-force implementations of the spec's formulas."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spp_det.models.geometry import Geometry
from spp_det.spp import boxes_to_cells, spp_dim, spp_image, spp_pool, spp_pool_reference


def brute_pool(fmap: np.ndarray, cell: tuple, levels) -> np.ndarray:
    """Literal spec: bin i of n over h cells = [floor(i h / n), ceil((i+1) h / n)); channel-major per level."""
    x1, y1, x2, y2 = cell
    h, w = y2 - y1 + 1, x2 - x1 + 1
    out = []
    for n in levels:
        block = np.empty((fmap.shape[0], n, n), fmap.dtype)
        for i in range(n):
            ys, ye = y1 + math.floor(i * h / n), y1 + math.ceil((i + 1) * h / n)
            for j in range(n):
                xs, xe = x1 + math.floor(j * w / n), x1 + math.ceil((j + 1) * w / n)
                assert ye > ys and xe > xs, "bins are never empty"
                block[:, i, j] = fmap[:, ys:ye, xs:xe].max(axis=(1, 2))
        out.append(block.reshape(-1))
    return np.concatenate(out)


def paper_rule_brute(x1, x2, r, S, c0, size):
    """Cells whose centres c0 + S k lie strictly inside the scaled window (the paper's rule)."""
    lo_px, hi_px = x1 * r, (x2 + 1) * r - 1
    inside = [k for k in range(-50, size + 50) if lo_px < c0 + S * k < hi_px]
    if inside:
        a, b = inside[0], inside[-1]
    else:  # empty: both at the rounded midpoint of left=floor(..)+1 and right=ceil(..)-1
        a = math.floor((lo_px - c0) / S) + 1
        b = math.ceil((hi_px - c0) / S) - 1
        a = b = math.floor((a + b) / 2 + 0.5)
    return min(max(a, 0), size - 1), min(max(b, 0), size - 1)


def offset_rule_brute_1based(x0, x1, s, short, size):
    """The released code's formulas verbatim, 1-based in and out (ZF-5: offset0 21, offset 6.5)."""
    x0s = (x0 - 1) * (s - 1) / (short - 1) + 1
    x1s = (x1 - 1) * (s - 1) / (short - 1) + 1
    a = math.floor((x0s - 21 + 6.5) / 16 + 0.5) + 1
    b = math.ceil((x1s - 21 - 6.5) / 16 - 0.5) + 1
    if a > b:  # C: x0_norm = (x0_norm + x1_norm) / 2 on ints, truncating toward zero
        a = b = int((a + b) / 2)
    return min(max(a, 1), size), min(max(b, 1), size)


@pytest.mark.parametrize("levels", [(1, 2, 3, 6), (6, 3, 2, 1), (1, 2, 4), (5,), (1, 2, 3, 4, 6)])
def test_spp_pool_matches_brute_force(levels):
    rng = np.random.default_rng(0)
    fmap = rng.standard_normal((7, 13, 17)).astype(np.float32)
    cells = [(0, 0, 16, 12), (3, 4, 3, 4), (0, 0, 0, 0), (16, 12, 16, 12), (2, 1, 4, 11), (5, 5, 15, 6)]
    for _ in range(60):
        x1, x2 = sorted(rng.integers(0, 17, 2))
        y1, y2 = sorted(rng.integers(0, 13, 2))
        cells.append((x1, y1, x2, y2))
    for method in ("kernel", "tables", "windows", "auto", "roipool"):
        got = spp_pool(torch.from_numpy(fmap), np.array(cells), levels, method).numpy()
        assert got.shape == (len(cells), spp_dim(7, levels))
        for g, c in zip(got, cells):
            np.testing.assert_array_equal(g, brute_pool(fmap, c, levels))


def test_spp_pool_kernel_on_a_realistic_map_equals_reference_and_keeps_dtype():
    """2,000 selective-search-like windows on a ZF-5-sized map, and an fp16 map (the cache's dtype)."""
    rng = np.random.default_rng(1)
    fmap = torch.from_numpy(rng.standard_normal((32, 42, 57)).astype(np.float32))
    wh = rng.integers(1, 40, (300, 2))
    xy = rng.integers(0, 17, (300, 2))
    cells = np.concatenate([xy, np.minimum(xy + wh - 1, [56, 41])], 1)
    np.testing.assert_array_equal(spp_pool(fmap, cells, method="kernel").numpy(),
                                  spp_pool_reference(fmap, cells).numpy())
    half = fmap.half()
    got = spp_pool(half, cells[:20])
    assert got.dtype == torch.float16
    assert torch.equal(got, spp_pool_reference(half.float(), cells[:20]).half())


def test_roipool_method_equals_the_kernel_on_a_realistic_map_and_back_propagates():
    rng = np.random.default_rng(3)
    fmap = torch.from_numpy(rng.standard_normal((16, 60, 80)).astype(np.float32)).requires_grad_(True)
    xy1 = rng.integers(0, 60, (800, 2))
    cells = np.concatenate([xy1, np.minimum(xy1 + rng.integers(0, 40, (800, 2)), [79, 59])], 1)
    got = spp_pool(fmap, cells, method="roipool")
    np.testing.assert_array_equal(got.detach().numpy(), spp_pool(fmap.detach(), cells, method="kernel").numpy())
    # max pooling's gradient: each output routes its gradient to the cell holding the max
    got[0, 0].backward()
    x1, y1, x2, y2 = cells[0]
    win = fmap.detach()[0, y1:y2 + 1, x1:x2 + 1]
    expected = torch.zeros_like(fmap)
    iy, ix = divmod(int(win.argmax()), win.shape[1])
    expected[0, y1 + iy, x1 + ix] = 1.0
    assert torch.equal(fmap.grad, expected)


def test_spp_dim_is_12800_for_zf5():
    assert spp_dim(256) == 12800


def test_paper_projection_matches_brute_force_with_degenerate_windows():
    rng = np.random.default_rng(1)
    H, W = 375, 500
    for geom in (Geometry(16, 20.0), Geometry(16, 0.0), Geometry(16, 7.5)):
        scale = 688
        r = scale / min(H, W)
        map_h, map_w = 43, 57
        boxes = [[0, 0, W - 1, H - 1], [10, 10, 10, 10], [250, 100, 250, 100], [0, 0, 0, 0],
                 [W - 1, H - 1, W - 1, H - 1], [100, 100, 108, 400 - 26]]
        for _ in range(200):
            x1, x2 = sorted(rng.uniform(0, W - 1, 2))
            y1, y2 = sorted(rng.uniform(0, H - 1, 2))
            boxes.append([x1, y1, x2, y2])
        boxes = np.array(boxes)
        cells = boxes_to_cells(boxes, (H, W), scale, geom, (map_h, map_w), "paper")
        for b, c in zip(boxes, cells):
            assert (c[0], c[2]) == paper_rule_brute(b[0], b[2], r, geom.stride, geom.cell0, map_w)
            assert (c[1], c[3]) == paper_rule_brute(b[1], b[3], r, geom.stride, geom.cell0, map_h)


def test_offset_projection_matches_released_formula():
    rng = np.random.default_rng(2)
    H, W, s = 375, 500, 688
    map_h, map_w = 42, 56
    boxes1 = [[1, 1, W, H], [1, 1, 1, 1], [W, H, W, H], [200, 100, 212, 110]]
    for _ in range(300):
        x1, x2 = sorted(rng.integers(1, W + 1, 2))
        y1, y2 = sorted(rng.integers(1, H + 1, 2))
        boxes1.append([x1, y1, x2, y2])
    boxes1 = np.array(boxes1, float)
    cells = boxes_to_cells(boxes1 - 1, (H, W), s, Geometry(16, 20.0), (map_h, map_w), "offset")
    for b, c in zip(boxes1, cells):
        assert (c[0] + 1, c[2] + 1) == offset_rule_brute_1based(b[0], b[2], s, min(H, W), map_w)
        assert (c[1] + 1, c[3] + 1) == offset_rule_brute_1based(b[1], b[3], s, min(H, W), map_h)


def test_offset_rule_empty_window_takes_the_released_codes_truncated_midpoint():
    # Hand-worked, ZF-5 geometry (cell k centred on 0-based pixel 16 k + 20), scale = shorter side so
    # boxes are not rescaled.  A 1-pixel window on 0-based pixel 109 (1-based 110) lies between cell
    # centres 100 (cell 5) and 116 (cell 6).  Released code, 1-based:
    #   x0' = floor((110 - 21 + 6.5) / 16 + 0.5) + 1 = floor(6.47) + 1 = 7
    #   x1' = ceil((110 - 21 - 6.5) / 16 - 0.5) + 1 = ceil(4.66) + 1 = 6
    # empty, so both become (7 + 6) / 2 = 6 in C (1-based) = cell 5 (0-based); rounding half up gave 6.
    geom = Geometry(16, 20.0)
    box = np.array([[109.0, 109.0, 109.0, 109.0]])
    assert boxes_to_cells(box, (400, 400), 400, geom, (25, 25), "offset").tolist() == [[5, 5, 5, 5]]
    # the paper rule keeps its documented choice: strictly-inside cells left = floor(89 / 16) + 1 = 6,
    # right = ceil(89 / 16) - 1 = 5: midpoint 5.5 rounded half up = 6
    assert boxes_to_cells(box, (400, 400), 400, geom, (25, 25), "paper").tolist() == [[6, 6, 6, 6]]
    # near the border the C sum is negative: (0 + -1) / 2 truncates to 0, clamped to cell 1 (1-based)
    assert boxes_to_cells(np.zeros((1, 4)), (400, 400), 400, geom, (25, 25), "offset").tolist() == [[0, 0, 0, 0]]


def test_released_float32_bin_bounds_equal_ours_for_the_paper_levels():
    # spm_pool_caffe_mex.cpp computes bin i of n over h cells as floor(float(i) / n * h) ..
    # ceil(float(i + 1) / n * h) in float32; ours (and brute_pool's) are the exact floor(i h / n) ..
    # ceil((i + 1) h / n).  For the levels 1, 2, 3, 6 they agree for every window up to 400 cells
    # (level 5 would not: h = 25, bin 2 ends at 16 in float32, 15 exactly).
    f32 = np.float32
    h = np.arange(1, 401)
    for n in (1, 2, 3, 6):
        for i in range(n):
            c_start = np.floor(f32(f32(i) / f32(n)) * h.astype(f32)).astype(np.int64)
            c_end = np.ceil(f32(f32(i + 1) / f32(n)) * h.astype(f32)).astype(np.int64)
            np.testing.assert_array_equal(c_start, (i * h) // n)
            np.testing.assert_array_equal(c_end, -((-(i + 1) * h) // n))
    assert np.ceil(f32(f32(3) / f32(5)) * f32(25)) == 16 and -((-3 * 25) // 5) == 15


def test_offset_rule_keeps_centres_within_margin():
    # Spec: cells whose centres (16 k + 20, 0-based) lie within [x0 - 1.5, x1 + 1.5] at scale = short side.
    H = W = 400
    geom = Geometry(16, 20.0)
    for x0, x1 in [(0, 399), (50, 90), (18, 58), (19, 59), (100, 140)]:
        cells = boxes_to_cells(np.array([[x0, 0, x1, 399]], float), (H, W), 400, geom, (25, 25), "offset")[0]
        inside = [k for k in range(25) if x0 - 1.5 < 16 * k + 20 <= x1 + 1.5]
        assert (cells[0], cells[2]) == (inside[0], inside[-1])


def test_windows_outside_and_larger_than_map_are_clamped():
    fmap = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    boxes = np.array([[-50, -50, 2000, 2000], [-100, -100, -90, -90], [1000, 1000, 1200, 1200]], float)
    cells = boxes_to_cells(boxes, (100, 100), 100, Geometry(16, 0.0), (4, 5), "paper")
    assert cells.min() >= 0 and (cells[:, [0, 2]] <= 4).all() and (cells[:, [1, 3]] <= 3).all()
    assert (cells[:, 0] <= cells[:, 2]).all() and (cells[:, 1] <= cells[:, 3]).all()
    out = spp_pool(fmap, cells, (1, 2))
    assert torch.isfinite(out).all()
    assert out[0, 0] == fmap[0].max()  # whole-map window: level-1 max of channel 0


def test_image_level_spp_equals_fixed_pools_on_13x13():
    # Spec section 6: on a 13x13 conv5, 6x6 = pool k3 s2, 3x3 = k5 s4, 1x1 = k13 s13.  The spec lists
    # k7 s7 for 2x2, which would cover [7, 13) instead of the floor/ceil bin [6, 13); k7 s6 matches.
    x = torch.randn(2, 5, 13, 13)
    out = spp_image(x, (1, 2, 3, 6))
    ref = torch.cat([F.max_pool2d(x, 13, 13).flatten(1), F.max_pool2d(x, 7, 6).flatten(1),
                     F.max_pool2d(x, 5, 4).flatten(1), F.max_pool2d(x, 3, 2).flatten(1)], 1)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_image_level_spp_equals_window_spp_over_whole_map():
    x = torch.randn(3, 9, 11)
    whole = spp_pool(x, np.array([[0, 0, 10, 8]]), (1, 2, 3, 6))
    torch.testing.assert_close(spp_image(x[None], (1, 2, 3, 6)), whole, rtol=0, atol=0)


_TRITON_CHECK = r"""
import sys
import numpy as np, torch
from spp_det.spp import spp_pool
from test_spp import brute_pool
rng = np.random.default_rng(0)
fmap = rng.standard_normal((7, 13, 17)).astype(np.float32)
cells = [(0, 0, 16, 12), (3, 4, 3, 4), (0, 0, 0, 0), (16, 12, 16, 12), (2, 1, 4, 11), (5, 5, 15, 6)]
for levels in ((1, 2, 3, 6), (2, 5), (4,)):
    for dtype in (torch.float32, torch.bfloat16):
        f = torch.from_numpy(fmap).to(dtype)
        got = spp_pool(f, np.array(cells), levels, method="triton")
        assert got.dtype == dtype, got.dtype
        for g, c in zip(got.float().numpy(), cells):
            np.testing.assert_array_equal(g, brute_pool(f.float().numpy(), c, levels))
print("ok")
"""


def test_triton_kernel_logic_matches_brute_force_in_tritons_cpu_interpreter():
    """The GPU kernel (spp_det/spp_triton.py) run by Triton's interpreter on the CPU: the same bins as the
    brute force, levels pooled from the map and reduced, in float32 and bfloat16 (tests/test_gpu.py runs
    it compiled on a GPU against the CPU kernel).  Triton 3.6's interpreter cannot take loop bounds
    loaded from memory under numpy 2 (seen on the GPU machine); 3.8's can."""
    pytest.importorskip("triton", minversion="3.7")
    import os
    import subprocess
    import sys
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent),
                                                                                   os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run([sys.executable, "-c", _TRITON_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-3000:]


_THREADS_CHECK = r"""
import hashlib, numpy as np, torch
torch.set_num_threads(1)  # what --threads 1 or a torchrun rank (OMP_NUM_THREADS=1) asks for
from spp_det.spp import spp_pool
import numba
rng = np.random.default_rng(0)
fmap = torch.from_numpy(rng.standard_normal((16, 21, 23)).astype(np.float32))
x1, y1 = rng.integers(0, 20, 500), rng.integers(0, 18, 500)
cells = np.stack([x1, y1, np.minimum(22, x1 + rng.integers(0, 9, 500)), np.minimum(20, y1 + rng.integers(0, 9, 500))], 1)
one = spp_pool(fmap, cells, method="kernel")
print(torch.get_num_threads(), numba.get_num_threads(), hashlib.sha1(one.numpy().tobytes()).hexdigest())
torch.set_num_threads(2)
two = spp_pool(fmap, cells, method="kernel")
print(torch.get_num_threads(), numba.get_num_threads(), hashlib.sha1(two.numpy().tobytes()).hexdigest())
"""


def test_kernel_keeps_torchs_thread_count_and_uses_it():
    """Numba's OpenMP start-up (the first parallel kernel call) used to reset the runtime it shares with
    torch to numba's own count (all cores), overriding `--threads` and torchrun's one thread per rank.
    In a fresh process: torch's count is unchanged by the kernel, numba's follows it, and the pooled
    values do not depend on it."""
    import os
    import subprocess
    import sys
    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores to tell 1 thread from all of them")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    p = subprocess.run([sys.executable, "-c", _THREADS_CHECK], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (t1, n1, h1), (t2, n2, h2) = (line.split() for line in p.stdout.split("\n")[:2])
    assert (t1, n1) == ("1", "1") and (t2, n2) == ("2", "2") and h1 == h2
