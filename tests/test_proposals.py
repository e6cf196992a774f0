"""Selective search, the per-split cache (resume, hash), R-CNN .mat files, recall."""
import numpy as np
import pytest
import scipy.io

from proposals.cache import compute_proposals, load_proposals, save_proposals
from proposals.rcnn_mat import load_rcnn_mat, rcnn_rows_to_internal
from proposals.recall import proposal_recall
from proposals.selective_search import SearchParams, selective_search
from spp_det.data.images import load_image
from spp_det.data.synthetic import CLASSES, make_synthetic_voc
from spp_det.data.voc import VOCDataset


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_voc(tmp_path_factory.mktemp("syn") / "VOC2007", seed=5, num_trainval=4, num_test=2,
                              min_side=200, max_side=260, progress=None)


def test_selective_search_boxes_are_valid_unique_and_capped(synth):
    ds = VOCDataset(synth, "trainval", CLASSES)
    r = ds[0]
    img = r.load()
    boxes = selective_search(img, SearchParams(max_boxes=300, min_size=10))
    assert 0 < len(boxes) <= 300 and boxes.dtype == np.float32
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= r.width - 1).all() and (boxes[:, 3] <= r.height - 1).all()
    assert ((boxes[:, 2] - boxes[:, 0] + 1) >= 10).all() and ((boxes[:, 3] - boxes[:, 1] + 1) >= 10).all()
    assert len(np.unique(boxes, axis=0)) == len(boxes)
    again = selective_search(img, SearchParams(max_boxes=300, min_size=10))
    np.testing.assert_array_equal(boxes, again)  # reproducible
    # the whole image is a region of the hierarchy: some box covers most of it
    assert (((boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)) > 0.8 * r.width * r.height).any()


def test_downscaled_search_maps_boxes_back(synth):
    r = VOCDataset(synth, "trainval", CLASSES)[1]
    boxes = selective_search(r.load(), SearchParams(max_image_side=120))
    assert boxes[:, 2].max() > 150  # in original pixels, not the 120-px search image
    assert (boxes[:, 2] <= r.width - 1).all()


def test_cache_two_workers_equal_one_and_resume(synth, tmp_path):
    ds = VOCDataset(synth, "trainval", CLASSES)
    items = [(r.image_id, str(r.path), (r.height, r.width)) for r in ds]
    p = SearchParams(max_boxes=200)
    one = compute_proposals(items, tmp_path / "a.npz", p, "h1", workers=1, progress=False)
    two = compute_proposals(items, tmp_path / "b.npz", p, "h1", workers=2, progress=False)
    assert set(one) == set(two) == {r.image_id for r in ds}
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    # a partial checkpoint with a wrong box for one image: resume trusts it (it is not recomputed)
    marker = {items[0][0]: np.array([[0, 0, 5, 5]], np.float32)}
    save_proposals(tmp_path / "c.partial.npz", marker, {"hash": "h1"})
    res = compute_proposals(items, tmp_path / "c.npz", p, "h1", workers=1, progress=False)
    np.testing.assert_array_equal(res[items[0][0]], marker[items[0][0]])
    assert not (tmp_path / "c.partial.npz").exists()
    # ... but one made under other parameters is ignored
    save_proposals(tmp_path / "d.partial.npz", marker, {"hash": "other"})
    res = compute_proposals(items, tmp_path / "d.npz", p, "h1", workers=1, progress=False)
    np.testing.assert_array_equal(res[items[0][0]], one[items[0][0]])
    with pytest.raises(ValueError, match="other parameters"):
        load_proposals(tmp_path / "d.npz", expect_hash="h2")


def test_corrupt_image_in_proposals_names_the_file(synth, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 garbage")
    with pytest.raises(Exception, match="bad.jpg"):
        compute_proposals([("bad", str(bad), (10, 10))], tmp_path / "x.npz", SearchParams(), "h", workers=1,
                          progress=False)
    assert not (tmp_path / "x.npz").exists()


def test_rcnn_mat_loader_converts_yxyx_one_based(tmp_path):
    rows = [np.array([[1, 2, 10, 20], [5, 5, 6, 7]], float), np.array([[3, 4, 30, 40]], float)]
    images = np.empty((2, 1), dtype=object)
    images[0, 0], images[1, 0] = "000001", "000002"
    boxes = np.empty((1, 2), dtype=object)
    boxes[0, 0], boxes[0, 1] = rows
    scipy.io.savemat(tmp_path / "ss.mat", {"images": images, "boxes": boxes})
    got = load_rcnn_mat(tmp_path / "ss.mat")
    np.testing.assert_array_equal(got["000001"], [[1, 0, 19, 9], [4, 4, 6, 5]])  # x1 y1 x2 y2, 0-based
    np.testing.assert_array_equal(got["000002"], rcnn_rows_to_internal(rows[1]))
    scipy.io.savemat(tmp_path / "bad.mat", {"boxes": boxes})
    with pytest.raises(ValueError, match="images"):
        load_rcnn_mat(tmp_path / "bad.mat")


def test_recall_hand_worked(synth):
    ds = VOCDataset(synth, "trainval", CLASSES)
    props = {}
    for r in ds:
        gt = r.boxes[~r.difficult]
        shifted = gt.copy()
        shifted[:, 2] = gt[:, 0] + (gt[:, 2] - gt[:, 0] + 1) * 0.6 - 1  # IoU 0.6 with its GT
        props[r.image_id] = np.concatenate([np.array([[0, 0, 1, 1]], np.float32), shifted, gt])
    res = proposal_recall(ds.records, props, counts=(1, 200), thresholds=(0.5, 0.7))
    assert res["recall"][0.5] == [0.0, 1.0]
    assert res["recall"][0.7] == [0.0, 1.0]
    only_shifted = {k: v[:1 + (len(v) - 1) // 2] for k, v in props.items()}
    res = proposal_recall(ds.records, only_shifted, counts=(200,), thresholds=(0.5, 0.7))
    assert res["recall"][0.5] == [1.0] and res["recall"][0.7] == [0.0]
    assert res["abo"] == [pytest.approx(0.6, abs=0.02)]  # every GT's best overlap is its shifted copy


def test_eval_proposals_tool_compares_files_and_plots(synth, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    from proposals.cache import save_proposals
    ds = VOCDataset(synth, "trainval", CLASSES)
    exact = {r.image_id: r.boxes for r in ds}
    half = {r.image_id: r.boxes[:, [0, 1, 0, 1]] + [0, 0, 1, 1] for r in ds}  # tiny boxes: nothing found
    save_proposals(tmp_path / "exact.npz", exact, {})
    save_proposals(tmp_path / "tiny.npz", half, {})
    tool = Path(__file__).resolve().parents[1] / "tools" / "eval_proposals.py"
    out = subprocess.run([sys.executable, str(tool), "--voc-root", str(synth), "--split", "trainval",
                          "--classes", ",".join(CLASSES), "--proposals", str(tmp_path / "exact.npz"),
                          str(tmp_path / "tiny.npz"), "--labels", "exact,tiny", "--counts", "1,100",
                          "--plot", str(tmp_path / "r.png")], capture_output=True, text=True, check=True).stdout
    exact_row, tiny_row = (t.splitlines()[-1] for t in out.split("plot:")[0].split("Proposal recall")[1:])
    assert exact_row.split() == ["100", "1.000", "1.000", "1.000"]
    assert tiny_row.split()[:3] == ["100", "0.000", "0.000"]
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_real_voc_photo_gets_about_2000_proposals():
    from pathlib import Path
    f = Path(__file__).resolve().parents[2] / "shared" / "data" / "voc2007-test-real13" / "JPEGImages" / "000004.jpg"
    if not f.is_file():
        pytest.skip("shared real VOC photos not present")
    boxes = selective_search(load_image(f))
    assert 1000 <= len(boxes) <= 2000


def test_a_6000_by_4000_photo_is_searched_downscaled_by_default(synth, tmp_path, caplog):
    """Default config: longer sides above proposals.max_image_side are searched at that size, boxes in
    the original pixels (at full size this image takes selective search > 15 min and 2.4 GB)."""
    import time

    import cv2
    from spp_det.config import Config
    from spp_det.workspace import Workspace
    small = VOCDataset(synth, "test", CLASSES).records[0].load()
    big = cv2.resize(small, (6000, 4000), interpolation=cv2.INTER_LINEAR)
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), big)
    params = Workspace(Config()).data.search_params()
    assert params.max_image_side == 1000
    caplog.set_level("INFO")
    t = time.perf_counter()
    boxes = compute_proposals([("big", str(path), (4000, 6000))], tmp_path / "p.npz", params, "h", workers=1,
                              progress=False)["big"]
    assert time.perf_counter() - t < 120
    assert "1 of 1 images are larger than proposals.max_image_side = 1000 px" in caplog.text
    assert boxes[:, 2].max() > 3000 and boxes[:, 3].max() > 2000  # mapped back to 6000 x 4000 pixels
    assert boxes[:, 2].max() <= 5999 and boxes[:, 3].max() <= 3999


def test_search_params_defaults_are_the_configs():
    """``SearchParams()`` (benchmarks, the API) and a config that sets nothing search alike: the default
    method is stated in both, so a change to one must reach the other."""
    import dataclasses
    from spp_det.config import ProposalsConfig
    cfg = ProposalsConfig()
    assert SearchParams() == SearchParams(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(SearchParams)})
