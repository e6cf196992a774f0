"""End to end on a tiny generated dataset: every stage, skip-on-rerun, config invalidation, resume, API."""
import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spp_det.config import config_from_dict
from spp_det.data.images import resize_short_side
from spp_det.data.synthetic import CLASSES
from spp_det.pipeline import run_pipeline, run_stage
from spp_det.stages import get_stage, stage_done, stage_key
from spp_det.workspace import Workspace
from helpers import kill_finetune_at, tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipe")
    cfg = config_from_dict(tiny_config(tmp, tmp / "data" / "VOC2007"))
    ws = run_pipeline(cfg, progress=False)
    return tmp, cfg, ws


def test_all_outputs_and_metrics(trained):
    tmp, cfg, ws = trained
    for v in ("pool5", "fc7", "fc7_bbox"):
        d = ws.root / "detections" / "test" / v
        files = sorted(d.glob("comp4_det_test_*.txt"))
        assert len(files) == len(CLASSES)
        res = json.loads((ws.root / "eval" / f"test_{v}.json").read_text())
        assert set(res["ap"]) == set(CLASSES) and 0.0 <= res["mAP"] <= 1.0
    line = next(l for f in files for l in f.read_text().splitlines())
    image_id, score, *box = line.split()
    assert float(box[0]) >= 1.0  # 1-based in the files
    table = (ws.root / "eval" / "stagewise_test.txt").read_text()
    assert "no fine-tuning" in table and "bbox regression" in table
    cache = ws.models.conv5_cache()
    # flipped views were cached for fine-tuning; maps are fp16
    cdir = cache.dirs[224]
    assert any(p.name.startswith(f"{r.image_id}_flip.") for p in cdir.iterdir() for r in ws.data.dataset("trainval"))
    assert np.load(next(cdir.glob("*.npy"))).dtype == np.float16
    # the pool5 scale is measured once and shared by the baseline SVMs and the box regressors
    assert sorted(p.name.split("_")[0] for p in (ws.root / "norms").glob("*.json")) == ["fc7", "pool5"]
    # Lite0's recipe asked the data whether mirrored objects keep their class, and kept the answer
    check = json.loads(ws.layout.mirror_check.read_text())
    assert ws.models.finetune_cfg.use_flipped == "check" and isinstance(check["use_mirrors"], bool)


def test_rerun_skips_every_stage(trained, capsys):
    tmp, cfg, ws = trained
    run_pipeline(cfg, progress=False)
    out = capsys.readouterr().out
    for stage in ("proposals", "conv5", "finetune", "svm", "bbox_reg", "test", "eval"):
        assert f"[{stage}] up to date, skipped" in out


def test_changed_config_reruns_only_dependent_stages(trained, capsys):
    tmp, cfg, ws = trained
    cfg2 = config_from_dict({**cfg.to_dict(), "svm": {**cfg.to_dict()["svm"], "C": 0.01}})
    ws2 = Workspace(cfg2)
    for s in ("conv5", "finetune", "bbox_reg"):
        assert stage_done(ws2, s), s
    for s in ("svm", "svm_pool5", "test", "eval"):
        assert not stage_done(ws2, s), s
    # forcing the mirrors either way (instead of the check) is a new fine-tuning
    for flip in (True, False):
        cfg5 = config_from_dict({**cfg.to_dict(), "finetune": {**cfg.to_dict()["finetune"], "use_flipped": flip}})
        assert not stage_done(Workspace(cfg5), "finetune")
    # a new scale gets a new conv5 cache directory: maps from another config are never read
    cfg3 = config_from_dict({**cfg.to_dict(), "model": {**cfg.to_dict()["model"], "scales": [256]}})
    assert Workspace(cfg3).models.conv5_cache().dirs[256] != ws.models.conv5_cache().dirs[224]
    assert not stage_done(Workspace(cfg3), "conv5")
    # so does another storage format (the maps differ), and fine-tuning pools from them
    cfg4 = config_from_dict({**cfg.to_dict(), "features": {**cfg.to_dict()["features"], "cache_format": "uint8"}})
    assert Workspace(cfg4).models.conv5_cache().dirs[224] != ws.models.conv5_cache().dirs[224]
    assert not stage_done(Workspace(cfg4), "conv5") and not stage_done(Workspace(cfg4), "finetune")


def test_finetune_resume_equals_uninterrupted_run(trained, monkeypatch):
    tmp, cfg, ws = trained
    work2 = tmp / "work_resume"
    shutil.copytree(ws.root, work2, ignore=shutil.ignore_patterns("finetune", "finetune.json"))
    cfg2 = config_from_dict({**cfg.to_dict(), "workdir": str(work2)})
    ws2 = Workspace(cfg2)
    kill_finetune_at(ws2, 25, monkeypatch)  # killed between snapshots (the last one was at 20)
    assert torch.load(work2 / "finetune" / "ckpt.pt", weights_only=False)["iter"] == 20
    run_stage(ws2, "finetune", progress=False)
    a = torch.load(ws.root / "finetune" / "best.pt")
    b = torch.load(work2 / "finetune" / "best.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_finetune_checkpoints_between_snapshots_by_the_clock(trained, monkeypatch, caplog):
    """finetune.checkpoint_minutes: 0 writes the resume checkpoint after every iteration: a kill between
    snapshots loses nothing, the resumed run ends as the uninterrupted one did (weights and the training
    loss of each snapshot), and the option is not part of the stage key."""
    tmp, cfg, ws = trained
    work = tmp / "work_resume_minutes"
    shutil.copytree(ws.root, work, ignore=shutil.ignore_patterns("finetune", "finetune.json"))
    d = cfg.to_dict()
    ft = {**d["finetune"], "checkpoint_minutes": 0}
    ws2 = Workspace(config_from_dict({**d, "workdir": str(work), "finetune": ft}))
    assert stage_key(ws2, "finetune") == stage_key(ws, "finetune")
    kill_finetune_at(ws2, 25, monkeypatch)  # the last snapshot was at 20
    assert torch.load(work / "finetune" / "ckpt.pt", weights_only=False)["iter"] == 25
    caplog.set_level(logging.INFO, logger="spp_det.finetune")
    run_stage(ws2, "finetune", progress=False)
    assert "resuming fine-tuning at iteration 25" in caplog.text
    a, b = torch.load(ws.layout.head), torch.load(ws2.layout.head)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    want, got = (json.loads(w.layout.finetune_log.read_text())["history"] for w in (ws, ws2))
    assert [h["iter"] for h in got] == [h["iter"] for h in want] == [10, 20, 30]
    np.testing.assert_allclose([h["train_loss"] for h in got], [h["train_loss"] for h in want], rtol=1e-6)
    with pytest.raises(ValueError, match="finetune.checkpoint_minutes"):
        config_from_dict({**d, "finetune": {**d["finetune"], "checkpoint_minutes": -1}})


def test_python_api_detects_on_a_test_image(trained, tmp_path):
    tmp, cfg, ws = trained
    from spp_det.api import Detector, draw_detections
    det = Detector.from_workdir(ws.root)
    rec = ws.data.dataset("test").records[0]
    d = det.detect(str(rec.path))
    assert d.boxes.shape[1] == 4 and len(d.boxes) == len(d.scores) == len(d.labels)
    assert (d.boxes[:, 0] >= 0).all() and (d.boxes[:, 2] <= rec.width - 1).all()
    assert set(np.unique(d.labels)) <= set(range(len(CLASSES)))
    # the same windows through the API and through the test stage give the same scores
    boxes = ws.data.proposals("test")[rec.image_id]
    via_api = det.detect(rec.load(), boxes=boxes, variant="fc7")
    from spp_det.inference import TrainedModels
    maps = ws.models.conv5_cache().load(rec)
    cached = TrainedModels.from_workspace(ws).detect(maps, boxes, (rec.height, rec.width))["fc7"]
    np.testing.assert_allclose(np.sort(via_api.scores), np.sort(cached.scores), atol=0.02)  # fp16 cache
    assert draw_detections(rec.load(), d, det.classes).shape == (rec.height, rec.width, 3)


def test_demo_tool_writes_images(trained, tmp_path):
    tmp, cfg, ws = trained
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for r in ws.data.dataset("test").records[:2]:
        shutil.copy(r.path, imgs / r.path.name)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), "--workdir", str(ws.root),
                        "--images", str(imgs), "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert len(list(out.glob("*_det.jpg"))) == 2


def test_stage_tool_reports_bad_dataset_clearly(tmp_path):
    import yaml
    cfg = tiny_config(tmp_path, tmp_path / "nowhere" / "VOC2007")
    del cfg["dataset"]["generate"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "compute_proposals.py"), "--config",
                        str(tmp_path / "c.yaml"), "--no-progress"], capture_output=True, text=True)
    assert p.returncode == 2
    assert "dataset root not found" in p.stderr and "Traceback" not in p.stderr


def test_stage_refuses_stale_upstream_outputs(trained):
    tmp, cfg, ws = trained
    d = cfg.to_dict()
    d["finetune"] = {**d["finetune"], "base_lr": 0.01}
    ws2 = Workspace(config_from_dict(d))
    with pytest.raises(ValueError, match="needs finetune first"):
        run_stage(ws2, "svm", progress=False)


def test_two_scale_pipeline_shares_caches_and_pools_at_both_scales(trained):
    tmp, cfg, ws = trained
    d = cfg.to_dict()
    d["workdir"] = str(tmp / "work_2scale")
    d["model"] = {**d["model"], "scales": [224, 288]}
    d["features"] = {**d["features"], "conv5_root": str(ws.layout.conv5_root)}
    d["proposals"] = {**d["proposals"], "cache_dir": str(ws.root / "proposals")}
    d["finetune"] = {**d["finetune"], "iterations": 10, "lr_steps": []}
    before = {p.name: p.stat().st_mtime_ns for p in ws.models.conv5_cache().dirs[224].iterdir()}
    props_before = (ws.root / "proposals" / "test.npz").stat().st_mtime_ns
    ws2 = run_pipeline(config_from_dict(d), progress=False)
    cache = ws2.models.conv5_cache()
    assert cache.dirs[224] == ws.models.conv5_cache().dirs[224]
    # the 224 maps and the proposals of the 1-scale run were read, not recomputed
    assert {p.name: p.stat().st_mtime_ns for p in cache.dirs[224].iterdir()} == before
    assert (ws.root / "proposals" / "test.npz").stat().st_mtime_ns == props_before
    assert sorted(p.name for p in cache.dirs[288].glob("*.npy")) == sorted(before)
    res = json.loads((ws2.root / "eval" / "test_fc7_bbox.json").read_text())
    assert 0.0 <= res["mAP"] <= 1.0
    rec = ws2.data.dataset("test").records[0]
    idx = ws2.models.pooler().scale_indices(ws2.data.boxes_for(rec, "test"), (rec.height, rec.width))
    assert set(idx.tolist()) == {0, 1}  # test windows are pooled from both maps

    # model combination: each model's own numbers equal its test stage's; the union keeps no duplicates
    from spp_det.combine import run_combination
    summary = run_combination([ws, ws2], tmp / "combined", progress=False)
    for w, name in ((ws, "tiny_0"), (ws2, "tiny_1")):
        own = json.loads((w.root / "eval" / "test_fc7_bbox.json").read_text())
        assert summary[name]["mAP"] == pytest.approx(own["mAP"], abs=1e-9)
        assert summary[name]["coco"]["AP"] == pytest.approx(own["coco"]["AP"], abs=1e-9)
    assert 0.0 <= summary["combined"]["mAP"] <= 1.0
    from spp_det.evaluation.voc import read_comp4
    f = lambda d: read_comp4(next((tmp / "combined" / d).glob("comp4_det_test_disc.txt")))
    a, b, c = f("tiny_0"), f("tiny_1"), f("combined")
    assert len(c.scores) <= len(a.scores) + len(b.scores)
    assert set(np.round(c.scores, 5)) <= set(np.round(a.scores, 5)) | set(np.round(b.scores, 5))
    # averaging (the two share proposals): each model's row is still its own test stage's
    avg = run_combination([ws, ws2], tmp / "averaged", progress=False, mode="average")
    for name in ("tiny_0", "tiny_1"):
        assert avg[name]["mAP"] == pytest.approx(summary[name]["mAP"], abs=1e-9)
    assert avg["_info"]["mode"] == "average" and 0.0 <= avg["combined"]["mAP"] <= 1.0


@pytest.mark.parametrize("mode", ["union", "average"])
def test_combining_a_model_with_itself_changes_nothing(trained, tmp_path, mode):
    from spp_det.combine import run_combination
    tmp, cfg, ws = trained
    s = run_combination([ws, Workspace(cfg)], tmp_path / "self", progress=False, mode=mode)
    assert s["combined"]["mAP"] == pytest.approx(s["tiny_0"]["mAP"], abs=1e-12)
    for c in CLASSES:
        assert (tmp_path / "self" / "combined" / f"comp4_det_test_{c}.txt").read_text() == \
            (tmp_path / "self" / "tiny_0" / f"comp4_det_test_{c}.txt").read_text()
    own = json.loads((ws.root / "eval" / "test_fc7_bbox.json").read_text())
    assert s["tiny_1"]["mAP"] == pytest.approx(own["mAP"], abs=1e-9)  # each model's row is its test stage's


def test_averaging_refuses_models_that_scored_other_windows(trained, tmp_path, monkeypatch):
    from spp_det.combine import run_combination
    tmp, cfg, ws = trained
    other = Workspace(cfg)
    shifted = lambda r, split: ws.data.boxes_for(r, split) + 1.0
    monkeypatch.setattr(other.data, "boxes_for", shifted)
    with pytest.raises(ValueError, match="other proposals than in .*averaging needs the same windows"):
        run_combination([ws, other], tmp_path / "avg", progress=False, mode="average")
    with pytest.raises(ValueError, match="combination mode 'mean': must be one of union, average"):
        run_combination([ws, other], tmp_path / "avg", progress=False, mode="mean")
    assert not (tmp_path / "avg").exists()  # nothing half-written


def test_pretrain_stage_feeds_the_detection_backbone(trained, tmp_path):
    from spp_det.stages import STAGE
    tmp, cfg, ws = trained
    d = cfg.to_dict()
    d.update(workdir=str(tmp_path / "w"), backbone={"name": "zf5", "weights": "pretrain"})
    d["model"] = {**d["model"], "fc_dim": 16}
    d["pretrain"] = {"crops_per_object": 1, "resize": 64, "crop": 56, "sizes": [56, 48], "epochs": 2,
                     "batch_size": 8, "fc_dim": 16, "eval_modes": ["center", "full", "multiview"],
                     "multiview_scales": [56, 64], "eval_images": 6}
    ws2 = Workspace(config_from_dict(d))
    assert "pretrain" in STAGE["conv5"].reads and STAGE["pretrain"].used(ws2)
    with pytest.raises(ValueError, match="needs pretrain first"):
        run_stage(ws2, "conv5", progress=False)
    run_stage(ws2, "pretrain", progress=False)
    res = json.loads((ws2.root / "pretrain" / "eval.json").read_text())["results"]
    assert res["multiview"]["views_per_image"] == 2 + 2 * 3 + 2 * 9 and res["center"]["images"] == 6
    state = torch.load(ws2.layout.pretrained_model)
    torch.testing.assert_close(ws2.models.backbone.trunk[0].weight, state["trunk.0.weight"])
    from spp_det.finetune import build_head
    head = build_head(ws2.models, len(ws2.data.classes), seed=0)
    torch.testing.assert_close(head.fc6.weight, state["fc6.weight"])  # fc6/fc7 start pre-trained
    h = ws2.models.conv5_key(224)
    state["trunk.0.weight"] += 1.0  # other weights -> other conv5 cache
    torch.save(state, ws2.layout.pretrained_model)
    assert Workspace(config_from_dict(d)).models.conv5_key(224) != h
    bad = {**d, "model": {**d["model"], "fc_dim": 32}}
    with pytest.raises(ValueError, match="pretrain.fc_dim"):
        config_from_dict(bad)


def test_compare_runs_tool_prints_each_variant(trained):
    tmp, cfg, ws = trained
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "compare_runs.py"), str(ws.root), str(ws.root)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    res = json.loads((ws.root / "eval" / "test_fc7_bbox.json").read_text())
    row = next(line for line in p.stdout.splitlines() if line.startswith("fine-tuned fc7 + bbox"))
    assert row.split()[-3:] == [f"{100 * res['mAP']:.2f}", "/", f"{100 * res['coco']['AP']:.2f}"]


def test_rcnn_mode_runs_every_stage_on_warped_windows(trained):
    """``mode: rcnn``: no conv5 cache; fine-tuning, SVMs, box regression and test all take features of
    warped windows (same dimension as SPP's), and the test stage's scores come from those features."""
    from spp_det.inference import TrainedModels
    from spp_det.rcnn import RCNNPooler
    tmp, cfg, ws = trained
    d = cfg.to_dict()
    d.update(workdir=str(tmp / "work_rcnn"), mode="rcnn", rcnn={"input_size": 64, "context": 4, "batch": 32})
    d["proposals"] = {**d["proposals"], "cache_dir": str(ws.root / "proposals")}
    d["finetune"] = {**d["finetune"], "iterations": 8, "lr_steps": []}
    d["svm"] = {**d["svm"], "pool5_baseline": False}
    ws_r = run_pipeline(config_from_dict(d), progress=False)
    assert not (ws_r.root / "conv5").exists()
    assert stage_key(ws_r, "svm") != stage_key(ws, "svm")
    res = json.loads((ws_r.root / "eval" / "test_fc7_bbox.json").read_text())
    assert 0.0 <= res["mAP"] <= 1.0
    models = TrainedModels.from_workspace(ws_r)
    assert isinstance(models.pooler, RCNNPooler) and models.pooler.dim == ws.models.pooler().dim
    rec = ws_r.data.dataset("test").records[0]
    boxes = ws_r.data.boxes_for(rec, "test")[:40]
    dets = models.detect(rec.load(), boxes, (rec.height, rec.width))["fc7"]
    feats = models.head.fc7_features(models.pooler.pool(rec.load(), boxes, (rec.height, rec.width)))
    svm = models.svm_fc7  # the formula of spp_det/linear.py, written out
    scores = (feats.detach().numpy() * svm.scale) @ svm.W[:, :, 0].T + svm.b[:, 0]
    for s, l in zip(dets.scores, dets.labels):  # every detection's score is one of its class's window scores
        assert np.isclose(scores[:, l], s, atol=1e-4).any()
    with pytest.raises(ValueError, match="model.scales must have a single entry"):
        config_from_dict({**d, "model": {**d["model"], "scales": [224, 288]}})


def test_conv_finetuning_trains_the_last_modules_and_later_stages_use_its_maps(trained, monkeypatch):
    tmp, cfg, ws = trained
    d = cfg.to_dict()
    d["workdir"] = str(tmp / "work_conv")
    d["features"] = {**d["features"], "conv5_root": str(ws.layout.conv5_root)}
    d["proposals"] = {**d["proposals"], "cache_dir": str(ws.root / "proposals")}
    d["finetune"] = {**d["finetune"], "iterations": 6, "lr_steps": [], "snapshot_every": 3, "conv_layers": 2,
                     "batch_size": 16}
    ws2 = run_pipeline(config_from_dict(d), progress=False)
    base = ws.models.backbone.trunk.state_dict()
    tuned = torch.load(ws2.layout.tuned_trunk, weights_only=True)
    changed = {k.split(".")[0] for k in base if not torch.equal(base[k], tuned[k])}
    assert changed == {"12", "13"}  # Lite0's trunk: stem (0-2), blocks 0-10 (3-13); the last two trained
    assert not any("running_" in k or "_bn" in k for k in base if not torch.equal(base[k], tuned[k]))  # BN frozen
    # the frozen start's outputs were cached once per view beside the conv5 maps
    starts = list(ws.layout.conv5_root.glob("lite0_start12_s224_*"))
    assert len(starts) == 1 and any("_flip." in p.name for p in starts[0].iterdir())
    # later stages read maps of the fine-tuned trunk: another cache directory, other maps
    t, b = ws2.models.conv5_cache(tuned=True), ws2.models.conv5_cache()
    assert t.dirs[224] != b.dirs[224] and b.dirs[224] == ws.models.conv5_cache().dirs[224]
    rec = ws2.data.dataset("test").records[0]
    assert not torch.equal(t.load(rec)[0], b.load(rec)[0])
    tuned_map = ws2.models.detection_backbone.conv5(resize_short_side(rec.load(), 224))
    np.testing.assert_allclose(t.load(rec)[0].numpy(), tuned_map.numpy(), atol=0.05)
    # the no-fine-tuning row is the same experiment as without conv fine-tuning: identical detections
    for f in sorted((ws.root / "detections" / "test" / "pool5").glob("comp4*.txt")):
        assert (ws2.root / "detections" / "test" / "pool5" / f.name).read_text() == f.read_text()
    assert 0.0 <= json.loads((ws2.root / "eval" / "test_fc7_bbox.json").read_text())["mAP"] <= 1.0
    # without the pool5 baseline nothing reads the start trunk's conv5 maps: they are not computed, and the
    # detections are those of the run that computed them (the frozen start's outputs are copied over)
    root4 = tmp / "conv5_conv_only"
    root4.mkdir()
    shutil.copytree(starts[0], root4 / starts[0].name)
    d4 = {**d, "workdir": str(tmp / "work_conv_only"), "features": {**d["features"], "conv5_root": str(root4)},
          "svm": {**d["svm"], "pool5_baseline": False}}
    ws4 = run_pipeline(config_from_dict(d4), progress=False)
    assert not get_stage("conv5").used(ws4) and get_stage("conv5").used(ws2)
    assert sorted(p.name for p in root4.iterdir()) == sorted([starts[0].name, t.dirs[224].name])
    for v in ("fc7", "fc7_bbox"):
        for f in sorted((ws2.root / "detections" / "test" / v).glob("comp4*.txt")):
            assert (ws4.root / "detections" / "test" / v / f.name).read_text() == f.read_text()
    # resuming after a kill between snapshots gives the same trunk
    work3 = tmp / "work_conv_resume"
    shutil.copytree(ws2.root, work3, ignore=shutil.ignore_patterns("finetune", "finetune.json"))
    ws3 = Workspace(config_from_dict({**d, "workdir": str(work3)}))
    kill_finetune_at(ws3, 4, monkeypatch)  # the last snapshot was at 3
    run_stage(ws3, "finetune", progress=False)
    again = torch.load(ws3.layout.tuned_trunk, weights_only=True)
    for k in tuned:
        torch.testing.assert_close(again[k], tuned[k], rtol=0, atol=1e-6)


def test_box_regressors_trained_in_memory_bounded_groups_are_the_same(trained):
    """bbox_reg.max_memory_gb splits the classes into groups (one pass over the maps each): the same models."""
    from spp_det.bbox_reg import class_groups, train_bbox_regressors
    from spp_det.linear import LinearModels
    from spp_det.stages import training_windows
    from spp_det.window_features import WindowFeatures
    assert class_groups([3, 3, 5, 1, 9], 6) == [[0, 1], [2, 3], [4]]
    _, cfg, ws = trained
    saved = LinearModels.load(ws.layout.bbox_reg)
    bcfg = type(cfg.bbox_reg)(**{**vars(cfg.bbox_reg), "max_memory_gb": 1e-6})  # one class per group
    grouped = train_bbox_regressors(training_windows(ws, False), WindowFeatures(ws.models.pooler(), "pool5"),
                                    saved.scale, ws.data.classes, bcfg, cfg.seed, progress=False)
    np.testing.assert_array_equal(grouped.W, saved.W)
    np.testing.assert_array_equal(grouped.b, saved.b)
    assert grouped.info == saved.info


def test_finetune_window_database_is_compact_and_gives_every_labelled_window(trained):
    """The window database keeps rows of each view's window list (6 bytes a window), sharing the proposals
    between an image and its mirror; its boxes and labels are those of a brute-force labelling of GT +
    proposals (IoU written out, R-CNN's rule: fg >= 0.5 takes its best GT's class, bg in [0.1, 0.5))."""
    from spp_det.boxes import flip_boxes
    from spp_det.finetune import build_window_db
    _, cfg, ws = trained
    ft, split = cfg.finetune, ws.finetune_split
    db = build_window_db(ws.data, split, True, cfg)
    records = ws.data.dataset(split).records
    assert len(db) == 2 * len(records)
    by_view = {(d.record.image_id, d.record.flipped): d for d in db}
    for r in records:
        plain, mirror = by_view[(r.image_id, False)], by_view[(r.image_id, True)]
        assert mirror.proposals is plain.proposals  # one array for both views
        for d in (plain, mirror):
            assert d.rows.dtype == np.int32 and d.labels.dtype == np.int16
            gt, gl = d.record.gt_for_training(cfg.dataset.use_difficult)
            props = ws.data.proposals_of(r, split)
            windows = np.concatenate([gt, flip_boxes(props, r.width) if d.record.flipped else props])
            want_rows, want_labels = [], []
            for k, w in enumerate(windows):
                ious = []
                for g in gt:
                    iw = min(w[2], g[2]) - max(w[0], g[0]) + 1
                    ih = min(w[3], g[3]) - max(w[1], g[1]) + 1
                    inter = max(iw, 0) * max(ih, 0)
                    area = lambda b: (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
                    ious.append(inter / (area(w) + area(g) - inter))
                best = int(np.argmax(ious)) if ious else -1
                if ious and ious[best] >= ft.fg_threshold:
                    want_rows.append(k), want_labels.append(gl[best] + 1)
                elif ious and ft.bg_low <= ious[best] < ft.bg_high:
                    want_rows.append(k), want_labels.append(0)
            np.testing.assert_array_equal(d.rows, want_rows)
            np.testing.assert_array_equal(d.labels, want_labels)
            np.testing.assert_array_equal(d.boxes(), windows[want_rows].astype(np.float32))
            pick = np.arange(len(d))[::3]
            np.testing.assert_array_equal(d.boxes(pick), d.boxes()[pick])


def test_spp_det_run_quiet_prints_only_results_and_demo_draws_test_and_real_images(trained, tmp_path, capsys):
    """`spp-det run --quiet` on a finished experiment says nothing (no stage lines, no table); without it,
    a line per stage. `spp-det demo` then draws the test images and a folder of photos (the detector's
    boxes, and windows labelled by ImageNet's classifier) and writes the report."""
    import signal
    from spp_det.cli import main
    _, cfg, ws = trained
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["run", "--config", str(ws.layout.config), "--quiet"]) == 0
        assert capsys.readouterr().out == ""
        assert main(["run", "--config", str(ws.layout.config), "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "[proposals] up to date, skipped" in out and "Stage times" in out
        photos = tmp_path / "photos"
        photos.mkdir()
        for r in ws.data.dataset("trainval").records[:2]:
            shutil.copy(r.path, photos / f"photo_{r.path.name}")
        assert main(["demo", "--config", str(ws.layout.config), "--photos", str(photos), "--test-images", "3",
                     "--quiet"]) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert len(list(ws.layout.demo_dir("test_images").glob("*_det.jpg"))) == 3
    assert sorted(p.name for p in ws.layout.demo_dir("images").glob("*_det.jpg")) == \
        sorted(f"{p.stem}_det.jpg" for p in photos.iterdir())
    assert sorted(p.name for p in ws.layout.demo_dir("imagenet").glob("*_imagenet.jpg")) == \
        sorted(f"{p.stem}_imagenet.jpg" for p in photos.iterdir())
    assert ws.layout.report.is_file()


def test_stages_draw_their_pictures_and_logs_agree_with_the_saved_data(trained):
    """eval: precision-recall curves per variant, stage-wise bars, proposal recall; finetune: log.csv (the
    rows of log.json) and curves.png; svm: the mining record (its last point is the cache the info counts,
    one point per retrain, after the last training image) and its picture."""
    import csv
    from spp_det.io_utils import load_json
    from spp_det.linear import LinearModels
    from spp_det.variants import VARIANTS
    _, cfg, ws = trained
    lay, split = ws.layout, cfg.dataset.test_split
    pngs = [lay.pr_plot(split, v.name) for v in VARIANTS if v.used(cfg)] + [
        lay.stagewise_plot(split), lay.recall_plot(split), lay.finetune_plot, lay.mining_plot("fc7"),
        lay.mining_plot("pool5")]
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
    history = load_json(lay.finetune_log)["history"]
    with open(lay.finetune_csv) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iter"]) for r in rows] == [h["iter"] for h in history]
    assert [float(r["train_loss"]) for r in rows] == [h["train_loss"] for h in history]
    n_train = len(ws.data.dataset(cfg.dataset.train_split).records)
    for kind in ("fc7", "pool5"):
        for name, d in LinearModels.load(lay.svm(kind)).info.items():
            assert len(d["mining"]) == d["retrains"] >= 2, name  # the first image, and the last
            assert d["mining"][0][0] == 1 and d["mining"][-1] == [n_train, d["neg_cached"]], name
            assert all(a[0] < b[0] for a, b in zip(d["mining"], d["mining"][1:])), name


def test_report_is_one_self_contained_page_that_agrees_with_the_evaluation(trained, tmp_path):
    """spp-det report: every picture embedded (decodable PNG / JPEG), one grid cell per chosen test image, and
    the true positives it colours are the devkit's: over all detections they add up to eval's TP count.
    Pictures an older run lacks are drawn first."""
    import base64
    import re
    from spp_det.evaluation.voc import eval_class, gt_by_class, load_comp4_dir
    from spp_det.report import write_report
    from spp_det.variants import main_variant
    _, cfg, ws = trained
    lay, split = ws.layout, cfg.dataset.test_split
    lay.recall_plot(split).unlink()
    lay.finetune_plot.unlink()
    n_test = len(ws.data.dataset(split).records)
    page = write_report(ws, images=n_test, min_score=-1e9, top=10 ** 6).read_text()
    assert lay.recall_plot(split).is_file() and lay.finetune_plot.is_file()
    assert "src=\"file:" not in page and "<img" in page
    for kind, data in re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', page):
        raw = base64.b64decode(data)
        assert raw[:4] == (b"\x89PNG" if kind == "png" else b"\xff\xd8\xff\xe0"), kind
    captions = re.findall(r"<figcaption>([^<]+)</figcaption>", page)
    assert len(captions) == n_test
    tp_shown = sum(int(re.search(r"(\d+) TP", c).group(1)) for c in captions)
    records = ws.data.dataset(split).records
    v = main_variant(cfg)
    dets = load_comp4_dir(lay.detections(split, v), records, ws.data.classes, split)
    gts = gt_by_class(records, len(ws.data.classes))
    assert tp_shown == sum(eval_class(d, g)["tp"] for d, g in zip(dets, gts)) > 0
    for title in ("Stage-wise results", "Per class", "Test images", "Training", "Proposals of", "Stage times",
                  "Config"):
        assert title in page


def test_browse_draws_ground_truth_and_proposals_and_counts_objects(trained, tmp_path, capsys):
    """spp-det browse: evenly spaced images drawn, a summary whose counts are the dataset's; proposals come
    from the proposals stage's file, or, where there is none, are computed for these images alone, the
    same boxes (the drawings are byte-identical)."""
    import signal
    from spp_det.cli import main
    _, cfg, ws = trained
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["browse", "--config", str(ws.layout.config), "--split", "test", "--images", "3",
                     "--proposals", "20", "--out", str(tmp_path / "cached"), "-q"]) == 0
        assert main(["browse", "--config", str(ws.layout.config), "--split", "test", "--images", "3",
                     "--proposals", "20", "--out", str(tmp_path / "computed"), "-q",
                     "--set", f"proposals.cache_dir={tmp_path / 'none'}", "--workdir", str(tmp_path / "w")]) == 0
    finally:
        signal.signal(signal.SIGTERM, handler)
    records = ws.data.dataset("test").records
    cached = sorted((tmp_path / "cached").glob("*.jpg"))
    assert len(records) == 6  # 3 evenly spaced of 6: positions 0, 2.5 (rounded half to even: 2) and 5
    assert [p.stem for p in cached] == [records[i].image_id for i in (0, 2, 5)]
    for p in cached:
        assert p.read_bytes() == (tmp_path / "computed" / p.name).read_bytes(), p.name
    assert not (tmp_path / "none").exists()  # browsing computes, never writes, proposals
    summary = (tmp_path / "cached" / "summary.txt").read_text()
    counts = ws.data.dataset("test").num_objects()
    for name, n in zip(ws.data.classes, counts):
        assert re.search(rf"^\s+{name}\s+{n}\s", summary, re.M), name
    assert f"{len(records)} images, {counts.sum()} objects" in capsys.readouterr().out


def test_report_shows_only_what_was_made_under_its_config(trained):
    """With fine-tuning's learning rate changed, fine-tuning, the fc7 SVMs and everything after them are not
    done for the config: the report must not show the earlier config's curves, fc7 mining or evaluation
    as this one's; what the change does not touch (the pool5 SVMs) it still shows."""
    from spp_det.config import load_config
    from spp_det.report import write_report
    from spp_det.workspace import Workspace
    _, cfg, ws = trained
    other = Workspace(load_config(ws.layout.config, [f"finetune.base_lr={cfg.finetune.base_lr * 2}"]))
    page = write_report(other).read_text()
    assert "No evaluation yet" in page and "Per class" not in page and "<figcaption>" not in page
    assert 'alt="hard-negative mining of the pool5 SVMs"' in page
    assert "hard-negative mining of the fc7 SVMs" not in page
    assert "fine-tuning curves" not in page and "No fine-tuning log for this config" in page
    write_report(ws)  # the fixture's own report again
