"""COCO-format data and metrics: box conventions, round trips, pycocotools on hand-worked cases, errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spp_det.data.coco import COCODataset, coco_to_internal, internal_to_coco
from spp_det.data.synthetic import CLASSES, make_synthetic_voc
from spp_det.data.voc import DatasetError, VOCDataset
from spp_det.evaluation.coco import coco_metrics, detections_to_results, records_to_coco
from spp_det.evaluation.voc import ClassDetections, evaluate

ROOT = Path(__file__).resolve().parents[1]


def test_box_conventions_hand_worked():
    # COCO [10, 20, 30, 40] covers pixels 10..39 x 20..59: internal (0-based inclusive) [10, 20, 39, 59]
    np.testing.assert_array_equal(coco_to_internal([10, 20, 30, 40]), [10, 20, 39, 59])
    np.testing.assert_array_equal(internal_to_coco(np.array([[10, 20, 39, 59]])), [[10, 20, 30, 40]])
    np.testing.assert_array_equal(coco_to_internal([5, 5, 0.4, 2]), [5, 5, 5, 6])  # < 1 px wide -> 1 px


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("cocovoc") / "VOC2007"
    make_synthetic_voc(root, seed=3, num_trainval=4, num_test=6, min_side=120, max_side=160, progress=None)
    return root


def test_voc_to_coco_round_trip_gives_the_same_records(voc, tmp_path):
    out = tmp_path / "test.json"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "voc_to_coco.py"), "--voc-root", str(voc), "--split",
                        "test", "--classes", ",".join(CLASSES), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    a = VOCDataset(voc, "test", CLASSES)
    b = COCODataset(out, voc / "JPEGImages", CLASSES, "test")
    assert len(a) == len(b) and sum(len(r.boxes) for r in a.records) > 0
    for ra, rb in zip(a.records, b.records):
        assert (ra.width, ra.height, ra.path) == (rb.width, rb.height, rb.path)
        np.testing.assert_array_equal(ra.boxes, rb.boxes)
        np.testing.assert_array_equal(ra.labels, rb.labels)
        np.testing.assert_array_equal(ra.difficult, rb.difficult)


def _one_image_gt() -> tuple[list, dict]:
    from spp_det.data.voc import ImageRecord
    rec = ImageRecord("1", Path("a.jpg"), 400, 400, np.array([[0, 0, 99, 99], [200, 200, 299, 299]], np.float32),
                      np.array([0, 0]), np.zeros(2, bool), np.zeros(2, bool))
    return [rec], records_to_coco([rec], ["thing"])


def test_coco_metrics_hand_worked():
    records, gt = _one_image_gt()
    # d1 = GT A exactly (IoU 1); d2 covers 100 x 62 of GT B (IoU 6200 / 10000 = 0.62)
    dets = [ClassDetections(np.array(["1", "1"], object), np.array([0.9, 0.8]),
                            np.array([[0, 0, 99, 99], [200, 200, 299, 261]], float))]
    res = detections_to_results(dets, records)
    assert res[1]["bbox"] == [200.0, 200.0, 100.0, 62.0] and res[1]["category_id"] == 1
    m = coco_metrics(gt, res)
    # IoU thresholds .50/.55/.60: both TP -> AP 1. At .65 ... .95: d2 is a FP after d1, recall 1/2:
    # precision 1 at the 51 recall points 0, .01, ..., .50 and 0 at the other 50 -> 51 / 101.
    half = 51 / 101
    assert m["AP50"] == pytest.approx(1.0)
    assert m["AP75"] == pytest.approx(half)
    assert m["AP"] == pytest.approx((3 * 1.0 + 7 * half) / 10)
    # the VOC07 metric counts d2 as a TP too (IoU 0.62 >= 0.5): AP 1
    assert evaluate(dets, records, ["thing"])["mAP"] == pytest.approx(1.0)
    assert coco_metrics(gt, [])["AP"] == 0.0


def test_crowd_objects_are_ignored_not_missed():
    records, _ = _one_image_gt()
    records[0].difficult[1] = True  # B becomes a crowd region: neither a miss nor a FP source
    gt = records_to_coco(records, ["thing"])
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1]
    dets = [ClassDetections(np.array(["1"], object), np.array([0.9]), np.array([[0, 0, 99, 99]], float))]
    assert coco_metrics(gt, detections_to_results(dets, records))["AP"] == pytest.approx(1.0)


def _write(tmp_path: Path, data) -> Path:
    p = tmp_path / "x.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_coco_reader_errors_name_the_file_and_problem(voc, tmp_path):
    good = records_to_coco(VOCDataset(voc, "test", CLASSES).records, CLASSES)
    img_root = voc / "JPEGImages"
    with pytest.raises(DatasetError, match="malformed json"):
        COCODataset(_write(tmp_path, "{oops"), img_root, CLASSES)
    with pytest.raises(DatasetError, match="unknown category 'zebra'"):
        COCODataset(_write(tmp_path, {**good, "categories": good["categories"] + [{"id": 99, "name": "zebra"}]}),
                    img_root, CLASSES)
    ds = COCODataset(_write(tmp_path, {**good, "categories": good["categories"] + [{"id": 99, "name": "zebra"}]}),
                     img_root, CLASSES, skip_unknown=True)
    assert len(ds) == len(good["images"])
    bad = json.loads(json.dumps(good))
    bad["annotations"][0]["bbox"][0] = bad["images"][0]["width"] + 5.0
    bad["annotations"][0]["image_id"] = bad["images"][0]["id"]
    with pytest.raises(DatasetError, match="outside the"):
        COCODataset(_write(tmp_path, bad), img_root, CLASSES)
    with pytest.raises(DatasetError, match="file not found"):
        COCODataset(_write(tmp_path, good), tmp_path / "nowhere", CLASSES)
    with pytest.raises(DatasetError, match="empty"):
        COCODataset(_write(tmp_path, {**good, "images": [], "annotations": []}), img_root, CLASSES)
    with pytest.raises(DatasetError, match="has no 'annotations'"):
        COCODataset(_write(tmp_path, {"images": good["images"], "categories": good["categories"]}), img_root, CLASSES)


def test_workspace_reads_a_coco_config(voc, tmp_path):
    from spp_det.config import config_from_dict
    from spp_det.workspace import Workspace
    files = {}
    for split in ("trainval", "test"):
        files[split] = str(tmp_path / f"{split}.json")
        Path(files[split]).write_text(json.dumps(records_to_coco(VOCDataset(voc, split, CLASSES).records, CLASSES)))
    cfg = config_from_dict({"dataset": {"format": "coco", "root": str(voc / "JPEGImages"), "coco_files": files,
                                        "classes": list(CLASSES)}, "workdir": str(tmp_path / "w")})
    ws = Workspace(cfg)
    assert [r.image_id for r in ws.data.dataset("test").records] == [str(i + 1) for i in range(6)]
    with pytest.raises(DatasetError, match="no json for split 'val'"):
        ws.data.dataset("val")
    before = ws.data.annotations_key("test"), ws.data.images_key("test")
    d = json.loads(Path(files["test"]).read_text())
    Path(files["test"]).write_text(json.dumps({**d, "info": {}}))  # nothing the pipeline reads
    assert (Workspace(cfg).data.annotations_key("test"), Workspace(cfg).data.images_key("test")) == before
    d["annotations"][0]["bbox"][2] -= 3  # a narrower box changes the annotations' key, not the images'
    Path(files["test"]).write_text(json.dumps(d))
    assert Workspace(cfg).data.annotations_key("test") != before[0]
    assert Workspace(cfg).data.images_key("test") == before[1]
