"""SPP classification pre-training: view geometry, crops, multi-size epochs, and loading as a backbone."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spp_det.config import PretrainConfig
from spp_det.data.crops import crop_box
from spp_det.models import build_zf5
from spp_det.models.zf5 import zf5_trunk
from spp_det.models.geometry import derive_geometry
from spp_det.pretrain import (ImageFolder, SPPClassifier, multiview_windows, predict, pretrain, size_of_epoch,
                              train_view)
from spp_det.spp import project_to_cells, spp_image, spp_pool


def test_multiview_windows_hand_worked():
    # 256 x 320 (h x w): x in {0, 48, 96}, y in {0, 16, 32} -> 9 windows of 224 x 224
    w = multiview_windows(256, 320)
    assert w.shape == (9, 4)
    assert {tuple(b) for b in w[:, :2].tolist()} == {(x, y) for x in (0, 48, 96) for y in (0, 16, 32)}
    assert ((w[:, 2] - w[:, 0] + 1) == 224).all() and ((w[:, 3] - w[:, 1] + 1) == 224).all()
    # centre view of 256 x 320 is at (48, 16); corners (0,0) and (96,32) are present
    assert [48, 16, 271, 239] in w.tolist() and [0, 0, 223, 223] in w.tolist() and [96, 32, 319, 255] in w.tolist()
    # 224 x 300: the three rows coincide -> 3 distinct windows at x = 0, 38, 76
    w = multiview_windows(224, 300)
    assert w[:, 0].tolist() == [0, 38, 76] and (w[:, 1] == 0).all()
    assert len(multiview_windows(224, 224)) == 1
    with pytest.raises(ValueError, match="smaller"):
        multiview_windows(200, 300)


def test_multiview_count_is_96_plus_2_and_views_map_to_13x13_cells():
    cfg = PretrainConfig(fc_dim=16)
    torch.manual_seed(0)
    model = SPPClassifier(zf5_trunk(), 256, 3, fc_dim=16).eval()
    img = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)  # 4:3, like most photos
    _, n = predict(model, img, "multiview", cfg)
    assert n == 96 + 2  # scale 224: 3 windows x 2 flips; 5 other scales x 18; 2 full-image views
    # every 224 view projects onto the 13 or 14 conv5 cells per side whose centres (16 k + 20) lie inside
    # its 223-px span: 13 when aligned with the stride, like the 13 x 13 conv5 of a 224 input
    g = derive_geometry(zf5_trunk())
    for s in cfg.multiview_scales:
        h, w = s, int(round(s * 160 / 120))
        map_hw = ((h - 1) // 16 + 1, (w - 1) // 16 + 1)
        cells = project_to_cells(multiview_windows(h, w), g, (map_hw[0] + 5, map_hw[1] + 5))
        wins = multiview_windows(h, w)
        for axis in (0, 1):
            n = cells[:, 2 + axis] - cells[:, axis] + 1
            assert set(n.tolist()) <= {13, 14}
            expect = [sum(lo < 16 * k + 20 < lo + 223 for k in range(80)) for lo in wins[:, axis]]
            np.testing.assert_array_equal(n, expect)


def test_view_pooling_on_a_224_image_equals_image_level_spp():
    torch.manual_seed(0)
    model = SPPClassifier(zf5_trunk(), 256, 3, fc_dim=16).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        fmap = model.conv(x)[0].contiguous()
    assert tuple(fmap.shape[1:]) == (13, 13)
    cells = project_to_cells(multiview_windows(224, 224), model.geometry, (13, 13))
    torch.testing.assert_close(spp_pool(fmap, cells), spp_image(fmap[None]))


def test_multi_size_alternates_whole_epochs_and_180_is_the_224_region_resized():
    cfg = PretrainConfig(sizes=[224, 180])
    assert [size_of_epoch(e, cfg) for e in range(4)] == [224, 180, 224, 180]
    assert {size_of_epoch(e, PretrainConfig(sizes=[224])) for e in range(3)} == {224}
    img = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    a = train_view(img, cfg, 224, np.random.default_rng(5))
    b = train_view(img, cfg, 180, np.random.default_rng(5))
    assert a.shape == (224, 224, 3) and b.shape == (180, 180, 3)
    np.testing.assert_array_equal(b, cv2.resize(a, (180, 180), interpolation=cv2.INTER_LINEAR))


def test_crop_box_enlarges_about_the_centre_and_clips():
    # 20 x 10 box at (10, 10): x1..x2 = 10..29, centre x 20, y 15; x1.5 -> 30 x 15
    np.testing.assert_array_equal(crop_box(np.array([10, 10, 29, 19]), (100, 100), 1.5, (0, 0)), [5, 8, 34, 22])
    np.testing.assert_array_equal(crop_box(np.array([0, 0, 9, 9]), (50, 60), 3.0, (0, 0)), [0, 0, 19, 19])
    np.testing.assert_array_equal(crop_box(np.array([10, 10, 29, 19]), (100, 100), 1.0, (0.5, 0)), [20, 10, 39, 19])


def _folder(root: Path, n: int = 6) -> Path:
    """Two easy classes: bright discs vs dark squares on noise, in root/{train,val}/<class>/."""
    rng = np.random.default_rng(0)
    for split, count in (("train", n), ("val", 2)):
        for cls in ("disc", "square"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(count):
                img = rng.integers(60, 120, (90, 110, 3), np.uint8)
                if cls == "disc":
                    cv2.circle(img, (55, 45), 30, (250, 250, 250), -1)
                else:
                    cv2.rectangle(img, (25, 15), (85, 75), (0, 0, 0), -1)
                cv2.imwrite(str(d / f"{i}.jpg"), img)
    return root


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ImageFolder(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError, match="has no images"):
        ImageFolder(tmp_path)
    (tmp_path / "a" / ".x.jpg.tmp.jpg").write_bytes(b"")  # temp files of an interrupted write are ignored
    with pytest.raises(ValueError, match="has no images"):
        ImageFolder(tmp_path)


def test_pretrain_resumes_and_loads_as_detection_backbone(tmp_path):
    data = _folder(tmp_path / "cls")
    cfg = PretrainConfig(sizes=[224, 180], epochs=2, batch_size=4, fc_dim=32, base_lr=0.001,
                         eval_modes=["center", "full"])
    res = pretrain(data / "train", data / "val", tmp_path / "out", cfg, progress=False)
    assert set(res) == {"center", "full"} and all(0 <= r["top1_err"] <= 1 for r in res.values())
    assert res["center"]["top5_err"] == 0.0  # two classes: the label is always in the top 5
    log = (tmp_path / "out" / "log.json").read_text()
    assert '"size": 224' in log and '"size": 180' in log
    # a finished run is not retrained: a rerun only re-evaluates and gives the same weights
    before = torch.load(tmp_path / "out" / "model.pt")
    pretrain(data / "train", data / "val", tmp_path / "out", cfg, progress=False)
    after = torch.load(tmp_path / "out" / "model.pt")
    for k in before:
        torch.testing.assert_close(before[k], after[k], rtol=0, atol=0)
    bb = build_zf5(str(tmp_path / "out" / "model.pt"))
    torch.testing.assert_close(bb.trunk[0].weight, before["trunk.0.weight"])
    assert bb.fc_init is not None and bb.fc_init.fc6_weight.shape == (32, 12800)
    from spp_det.head import SPPHead
    head = SPPHead(12800, 3, fc_dim=32)
    assert head.init_from(bb.fc_init, (1, 2, 3, 6), 256)
    torch.testing.assert_close(head.fc7.weight, before["fc7.weight"])
