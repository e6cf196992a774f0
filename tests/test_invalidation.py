"""Never a stale result: data edits invalidate exactly the stages that read the data; ``--force`` recomputes.

One small pipeline is run once; each test copies its data and work directory (content keys do not
depend on where the data live, so the copy is up to date), edits the copy and reruns.
"""
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import tiny_config
from spp_det.config import config_from_dict
from spp_det.pipeline import run_pipeline, run_stage
from spp_det.stages import STAGE_NAMES, downstream, stage_done
from spp_det.workspace import Workspace


def _config(tmp: Path, data: Path, work: Path):
    d = tiny_config(tmp, data, workdir=str(work),
                    finetune={"iterations": 12, "lr_steps": [], "snapshot_every": 4},
                    norm={"images": 4, "boxes_per_image": 20})
    return config_from_dict(d)


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inval")
    run_pipeline(_config(tmp, tmp / "data" / "VOC2007", tmp / "work"), progress=False)
    return tmp


@pytest.fixture
def copy(done, tmp_path):
    """A copy of the finished experiment's data and work directory; returns its config."""
    shutil.copytree(done / "data", tmp_path / "data")
    shutil.copytree(done / "work", tmp_path / "work")
    cfg = _config(tmp_path, tmp_path / "data" / "VOC2007", tmp_path / "work")
    cfg.dataset.generate = None  # the copy is user data now: nothing regenerates it
    return cfg


def ran(out: str) -> set[str]:
    return set(re.findall(r"^\[(\w+)\] running$", out, re.M))


def _edit_xml(path: Path, fn) -> None:
    tree = ET.parse(path)
    fn(tree.getroot())
    tree.write(path)


def test_a_copied_dataset_keeps_every_stage(copy, capsys):
    run_pipeline(copy, progress=False)
    out = capsys.readouterr().out
    assert ran(out) == {"dataset"}, out


def test_editing_a_test_box_reruns_only_the_evaluation(copy, capsys):
    root = Path(copy.dataset.root)
    test_id = (root / "ImageSets" / "Main" / "test.txt").read_text().split()[0]
    before = (Path(copy.workdir) / "eval" / "test_fc7_bbox.json").read_text()

    def shrink(ann):
        box = ann.find("object/bndbox")
        box.find("xmax").text = str(int(float(box.find("xmin").text)) + 2)  # a 3-px-wide box: unmatched
    _edit_xml(root / "Annotations" / f"{test_id}.xml", shrink)
    run_pipeline(copy, progress=False)
    out = capsys.readouterr().out
    assert ran(out) == {"dataset", "eval"}, out
    assert (Path(copy.workdir) / "eval" / "test_fc7_bbox.json").read_text() != before


def test_relabelling_a_training_object_retrains_but_keeps_proposals_and_maps(copy, capsys):
    from spp_det.data.synthetic import CLASSES
    root = Path(copy.dataset.root)
    train_id = (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()[0]

    def relabel(ann):
        name = ann.find("object/name")
        name.text = next(c for c in CLASSES if c != name.text)
    _edit_xml(root / "Annotations" / f"{train_id}.xml", relabel)
    run_pipeline(copy, progress=False)
    out = capsys.readouterr().out
    assert ran(out) == {"dataset", "finetune", "svm_pool5", "svm", "bbox_reg", "test", "eval"}, out
    assert "resuming fine-tuning" not in out


def test_replacing_a_test_image_recomputes_its_proposals_and_map_only(copy, capsys, caplog):
    root = Path(copy.dataset.root)
    test_id = (root / "ImageSets" / "Main" / "test.txt").read_text().split()[0]
    jpg = root / "JPEGImages" / f"{test_id}.jpg"
    cv2.imwrite(str(jpg), cv2.imread(str(jpg))[:, ::-1])  # same size, other pixels
    ws = Workspace(copy)
    maps_before = set(ws.models.conv5_cache().dirs[224].iterdir())
    caplog.set_level("INFO")
    run_pipeline(copy, progress=False)
    out = capsys.readouterr().out
    assert ran(out) == {"dataset", "proposals", "conv5", "test", "eval"}, out
    new_maps = set(Workspace(copy).models.conv5_cache().dirs[224].iterdir()) - maps_before
    assert [p.name.split(".")[0] for p in new_maps] == [test_id]  # only the replaced image's map was computed
    assert "conv5 [224]: 1 images" in caplog.text
    assert "changed since its last run" in caplog.text


def test_a_test_time_option_reruns_only_test_and_eval(copy, capsys):
    """Box voting on a finished run: the trained stages stay; the same detections (ids, scores, order)
    come back. (This 12-iteration detector scores every window below 0, so by voting's max(score, 0)
    weights no box moves either; tests/test_heads.py checks the voting itself.)"""
    from spp_det.evaluation.voc import read_comp4
    files = sorted(Workspace(copy).layout.detections("test", "fc7").glob("comp4_det_test_*.txt"))
    before = [read_comp4(p) for p in files]
    copy.test.box_voting = 0.5
    run_pipeline(copy, progress=False)
    assert ran(capsys.readouterr().out) == {"dataset", "test", "eval"}
    for b, p in zip(before, files):
        a = read_comp4(p)
        np.testing.assert_array_equal(a.image_ids, b.image_ids)
        np.testing.assert_array_equal(a.scores, b.scores)
        assert (b.scores < 0).all()
        np.testing.assert_array_equal(a.boxes, b.boxes)


def test_force_recomputes_a_stage_and_everything_downstream_from_scratch(copy, capsys, caplog):
    ws = Workspace(copy)
    best = torch.load(ws.root / "finetune" / "best.pt")
    ckpt = torch.load(ws.root / "finetune" / "ckpt.pt", weights_only=False)
    assert ckpt["iter"] == 12
    caplog.set_level("INFO")
    run_pipeline(copy, progress=False, force=["finetune"])
    out = capsys.readouterr().out
    assert downstream("finetune", ws) == ["finetune", "svm", "test", "eval"]  # conv5_tuned unused: no bbox_reg
    assert ran(out) == {"dataset", "finetune", "svm", "test", "eval"}, out
    assert "resuming" not in caplog.text
    again = torch.load(ws.root / "finetune" / "best.pt")
    for k in best:  # from scratch on the same data: the same weights (CPU, seeded)
        torch.testing.assert_close(again[k], best[k], rtol=0, atol=1e-6)
    assert downstream("finetune") == ["finetune", "conv5_tuned", "svm", "bbox_reg", "test", "eval"]


def test_force_on_a_single_stage_tool_invalidates_downstream(copy):
    """``tools/<stage>.py --force`` runs one stage; what reads it must not stay 'done'."""
    ws = Workspace(copy)
    run_stage(ws, "svm", progress=False, force=True)
    assert stage_done(ws, "svm")
    assert not stage_done(ws, "test") and not stage_done(ws, "eval")
    assert stage_done(ws, "bbox_reg") and stage_done(ws, "finetune")
    assert not (ws.root / "detections" / "test").exists()  # reset: no old detections left to be read


def test_feature_norm_follows_the_weights_it_measured(copy):
    from spp_det.stages import fine_tuned_head, norm_path, training_windows
    from spp_det.window_features import WindowFeatures, feature_scale
    ws = Workspace(copy)
    head, windows = fine_tuned_head(ws), training_windows(ws, tuned=False)

    def scale() -> float:
        feats = WindowFeatures(ws.models.pooler(), "fc7", head)
        path = norm_path(ws, feats, windows.split, tuned=False)
        return feature_scale(feats, windows, ws.cfg.norm, ws.cfg.seed, path, progress=False)
    s1 = scale()
    n1 = sorted((ws.root / "norms").glob("fc7_*.json"))
    with torch.no_grad():
        head.fc7.weight.mul_(2.0)
    s2 = scale()
    assert len(sorted((ws.root / "norms").glob("fc7_*.json"))) == len(n1) + 1
    assert s2 != pytest.approx(s1)


def test_every_stage_is_in_the_table_once():
    assert len(set(STAGE_NAMES)) == len(STAGE_NAMES)
    for name in STAGE_NAMES:
        assert downstream(name)[0] == name
    assert np.all([STAGE_NAMES.index(r) < STAGE_NAMES.index(s.name)
                   for s in __import__("spp_det.stages").stages.STAGES for r in s.reads])


def test_pretraining_crops_follow_the_annotations_content(done, tmp_path):
    """Crops for SPP pre-training are remade when a box moves (their key is the content, not the paths)."""
    import dataclasses
    import json

    from spp_det.data.crops import make_classification_crops
    from spp_det.data.synthetic import CLASSES
    from spp_det.data.voc import VOCDataset
    records = VOCDataset(done / "data" / "VOC2007", "trainval", CLASSES).records  # every class present
    out = tmp_path / "crops"
    make_classification_crops(records, CLASSES, out, per_object=1)
    key = json.loads((out / "done.json").read_text())["hash"]
    make_classification_crops(records, CLASSES, out, per_object=1)
    assert json.loads((out / "done.json").read_text())["hash"] == key
    moved = [dataclasses.replace(records[0], boxes=records[0].boxes + np.float32([1, 1, 0, 0]))] + records[1:]
    make_classification_crops(moved, CLASSES, out, per_object=1)
    assert json.loads((out / "done.json").read_text())["hash"] != key


def test_a_manifest_of_an_older_version_reruns_its_stage_once_saying_why(copy, capsys, caplog):
    """A manifest written before key parts were recorded (older spp-det) is not trusted: that stage reruns,
    the log says why, and the next run skips it. (What reads it keeps its manifest: downstream keys are
    made of upstream *keys*, which the rerun reproduces; an older version's downstream manifests are
    older-format too and rerun the same way.)"""
    import json
    ws = Workspace(copy)
    path = ws.layout.manifest("svm")
    m = json.loads(path.read_text())
    del m["parts"]
    m["hash"] = "0" * 16
    path.write_text(json.dumps(m))
    caplog.set_level("INFO", logger="spp_det.pipeline")
    run_pipeline(copy, progress=False)
    assert ran(capsys.readouterr().out) == {"dataset", "svm"}
    assert "stage svm: running (made by an older version of spp-det)" in caplog.text
    run_pipeline(copy, progress=False)
    assert ran(capsys.readouterr().out) == {"dataset"}
