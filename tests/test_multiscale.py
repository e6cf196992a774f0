"""Multi-scale detection: scale selection (hand-worked), random-scale fine-tuning, per-scale pooling."""
from pathlib import Path

import numpy as np
import pytest
import torch

from spp_det.config import config_from_dict
from spp_det.data.voc import ImageRecord
from spp_det.features import WindowPooler
from spp_det.finetune import ImageWindows, sample_chunk
from spp_det.models import build_zf5
from spp_det.multiscale import random_scale_indices, select_scale_indices
from spp_det.spp import boxes_to_cells, spp_pool_reference

PAPER5 = [480, 576, 688, 864, 1200]
RELEASED5 = [480, 576, 688, 874, 1200]


def test_paper_rule_hand_worked():
    # a 500 x 375 image: short side 375, so scale s multiplies lengths by s / 375.
    hw = (375, 500)
    # 100 x 100 window (area 10,000): scaled areas 16384, 23593, 33660, 53084, 102400 at the 5 scales;
    # |. - 224^2 = 50176| = 33792, 26583, 16516, 2908, 52224 -> 864 (index 3)
    # 300 x 200 (60,000): at 480 it is 98,304, already above 50,176; the others are further -> 480
    # 20 x 20 (400): even at 1200 it is 4,096, the closest -> 1200
    # 140 x 140 (19,600): 32,113 / 46,242 / 65,974 / ... -> 576 (|46242 - 50176| = 3,934 < 15,798)
    boxes = np.array([[0, 0, 99, 99], [10, 10, 309, 209], [5, 5, 24, 24], [0, 0, 139, 139]], np.float32)
    np.testing.assert_array_equal(select_scale_indices(boxes, hw, PAPER5, "paper"), [3, 0, 4, 1])


def test_released_rule_hand_worked_and_864_vs_874():
    hw = (375, 500)
    # 100 x 100: round(208 * 375 / 100) = 780. Paper list: |864 - 780| = 84 < |688 - 780| = 92 -> 864;
    # released list: |874 - 780| = 94 > 92 -> 688. The two lists disagree on this window.
    b = np.array([[0, 0, 99, 99]], np.float32)
    assert select_scale_indices(b, hw, PAPER5, "released").tolist() == [3]
    assert select_scale_indices(b, hw, RELEASED5, "released").tolist() == [2]
    # 300 x 200: round(208 * 375 / sqrt(60000)) = round(318.4) = 318 -> 480; 20 x 20: 3900 -> 1200
    b = np.array([[10, 10, 309, 209], [5, 5, 24, 24]], np.float32)
    assert select_scale_indices(b, hw, RELEASED5, "released").tolist() == [0, 4]
    # a tie goes to the first scale in config order: expected 632 is 56 from both 576 and 688
    side = 208 * 375 / 632  # sqrt(area) giving exactly 632
    b = np.array([[0, 0, side - 1, side - 1]], np.float64)
    assert select_scale_indices(b, hw, [576, 688], "released").tolist() == [0]
    assert select_scale_indices(b, hw, [688, 576], "released").tolist() == [0]


def test_single_scale_and_bad_rule():
    b = np.array([[0, 0, 9, 9]] * 3, np.float32)
    assert select_scale_indices(b, (100, 100), [688], "paper").tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="unknown scale rule"):
        select_scale_indices(b, (100, 100), [480, 688], "nearest")


def test_random_scales_are_uniform_and_seeded():
    idx = random_scale_indices(50000, 5, np.random.default_rng(0))
    counts = np.bincount(idx, minlength=5)
    assert counts.min() > 9500 and counts.max() < 10500  # ~10,000 each (4-sigma ~ 360)
    assert np.array_equal(idx, random_scale_indices(50000, 5, np.random.default_rng(0)))
    assert not random_scale_indices(10, 1, np.random.default_rng(0)).any()


def _db(n_images: int) -> list[ImageWindows]:
    rng = np.random.default_rng(1)
    db = []
    for i in range(n_images):
        rec = ImageRecord(f"im{i}", Path(f"im{i}.jpg"), 100, 100, np.zeros((0, 4), np.float32),
                          np.zeros(0, np.int64), np.zeros(0, bool), np.zeros(0, bool))
        labels = rng.integers(0, 3, 40)
        db.append(ImageWindows(rec, np.zeros((0, 4), np.float32), rng.uniform(0, 50, (40, 4)).astype(np.float32),
                               np.arange(40, dtype=np.int32), labels.astype(np.int16)))
    return db


def test_finetune_batches_draw_a_random_scale_per_window_reproducibly():
    cfg = config_from_dict({"model": {"scales": PAPER5}, "finetune": {"images_per_chunk": 4, "batches_per_chunk": 5,
                                                                      "batch_size": 32}})
    db = _db(10)
    draw = lambda c, chunk: sample_chunk(db, chunk, c.finetune, c.seed, len(c.model.scales))
    a, b = draw(cfg, 3), draw(cfg, 3)
    for (i1, j1, l1, s1), (i2, j2, l2, s2) in zip(a, b):
        assert np.array_equal(s1, s2) and np.array_equal(j1, j2)  # same chunk -> same draw (resume-safe)
        assert len(s1) == len(l1) == 32 and s1.min() >= 0 and s1.max() < 5
    scales = np.concatenate([x[3] for x in a])
    assert len(np.unique(scales)) == 5  # 160 draws hit every scale
    assert not np.array_equal(scales, np.concatenate([x[3] for x in draw(cfg, 4)]))
    one = config_from_dict({"finetune": {"images_per_chunk": 4, "batches_per_chunk": 5, "batch_size": 32}})
    assert not np.concatenate([x[3] for x in draw(one, 3)]).any()
    # adding the scale draw did not change which windows are sampled
    for (i1, j1, l1, _), (i2, j2, l2, _) in zip(a, draw(one, 3)):
        assert np.array_equal(i1, i2) and np.array_equal(j1, j2)


def test_image_centric_batches_for_conv_finetuning():
    from spp_det.finetune import sample_images
    cfg = config_from_dict({"model": {"scales": PAPER5}, "finetune": {"images_per_batch": 2, "batch_size": 32}})
    db = _db(7)
    draw = lambda it: sample_images(db, it, cfg.finetune, 0, 5)
    assert [(i, w.tolist(), s) for i, w, _, s in draw(5)] == [(i, w.tolist(), s) for i, w, _, s in draw(5)]
    seen = []
    for it in range(4):  # an epoch = ceil(7 / 2) = 4 iterations: every view once
        batch = draw(it)
        for i, win, labels, scale in batch:
            assert len(win) == 16 and 0 <= scale < 5
            assert np.array_equal(labels, db[i].labels[win])
            n_fg = int((labels > 0).sum())
            assert n_fg == min(4, len(db[i].fg))  # 25 % of 16 when the image has enough foreground
            assert len(set(win[labels > 0].tolist())) == n_fg  # foreground drawn without replacement
        seen += [i for i, *_ in batch]
    assert sorted(seen) == list(range(7))


def test_pooler_pools_each_window_from_its_scale_map():
    torch.manual_seed(0)
    bb = build_zf5(None)
    hw = (375, 500)
    scales = [480, 688, 1200]
    maps = [torch.randn(4, (s - 1) // 16 + 1, (s * 500 // 375 - 1) // 16 + 1) for s in scales]
    bb.out_channels = 4
    pooler = WindowPooler(bb, scales, (1, 2, 3, 6), "paper", None, "paper")
    boxes = np.array([[0, 0, 99, 99], [10, 10, 309, 209], [5, 5, 24, 24], [200, 100, 260, 180]], np.float32)
    chosen = select_scale_indices(boxes, hw, scales, "paper")
    assert len(set(chosen.tolist())) == 3  # the windows span all three maps
    got = pooler.pool(maps, boxes, hw)
    for k, (box, si) in enumerate(zip(boxes, chosen)):
        m = maps[si]
        cells = boxes_to_cells(box[None], hw, scales[si], bb.geometry, tuple(m.shape[1:]), "paper")
        torch.testing.assert_close(got[k], spp_pool_reference(m, cells)[0])
    forced = pooler.pool(maps, boxes, hw, scale_idx=np.array([2, 2, 2, 2]))
    cells = boxes_to_cells(boxes, hw, 1200, bb.geometry, tuple(maps[2].shape[1:]), "paper")
    torch.testing.assert_close(forced, spp_pool_reference(maps[2], cells))
    with pytest.raises(ValueError, match="3 scales"):
        pooler.pool(maps[:2], boxes, hw)


def test_config_accepts_five_scales_and_rejects_duplicates():
    cfg = config_from_dict({"model": {"scales": RELEASED5, "scale_select": "released"}})
    assert cfg.model.scales == RELEASED5
    with pytest.raises(ValueError, match="duplicates"):
        config_from_dict({"model": {"scales": [688, 688]}})
    with pytest.raises(ValueError, match="scale_select"):
        config_from_dict({"model": {"scales": PAPER5, "scale_select": "closest"}})
