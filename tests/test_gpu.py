"""On a CUDA GPU: the Triton SPP kernel, scoring on the GPU, and every stage with ``features.device: cuda``,
each against the CPU.  Marked ``cuda``; skipped (not failed) where torch sees no GPU, as in CI.  The
CPU runs the same code paths in the other test modules, and the Triton kernel's logic through Triton's
interpreter (``tests/test_spp.py``).

Tolerances, GPU against CPU: pooling is a max, exact in every dtype (equal bit for bit); fc and conv
differ by float32 rounding (cuDNN/cuBLAS sum in other orders), so features agree to 1e-4 relative and
trained models to what SGD makes of that rounding (stated per test).
"""
import json

import numpy as np
import pytest
import torch

from spp_det.spp import spp_pool, spp_pool_reference

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")]

CUDA = torch.device("cuda")


def _windows(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Selective-search-like cell windows: log-uniform sizes, anywhere on an ``h x w`` map."""
    ww = np.exp(rng.uniform(0, np.log(w), n)).astype(int).clip(1, w)
    hh = np.exp(rng.uniform(0, np.log(h), n)).astype(int).clip(1, h)
    x1, y1 = rng.integers(0, w - ww + 1), rng.integers(0, h - hh + 1)
    return np.stack([x1, y1, x1 + ww - 1, y1 + hh - 1], 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_kernel_equals_the_cpu_kernel_on_a_paper_sized_map(dtype):
    rng = np.random.default_rng(0)
    fmap = torch.from_numpy(rng.standard_normal((256, 42, 57)).astype(np.float32)).to(dtype)
    cells = _windows(rng, 2000, 42, 57)
    want = spp_pool(fmap, cells, method="kernel")
    got = spp_pool(fmap.to(CUDA), cells, method="triton")
    assert got.device.type == "cuda" and got.dtype == dtype and got.shape == (2000, 256 * 50)
    assert torch.equal(got.cpu(), want)
    assert torch.equal(spp_pool(fmap.to(CUDA), cells).cpu(), want)  # "auto" on a GPU map


@pytest.mark.parametrize("levels", [(1, 2, 3, 6), (1, 2, 4), (2, 5), (3,)])
def test_triton_kernel_equals_the_reference_for_other_pyramids_and_odd_channels(levels):
    rng = np.random.default_rng(1)
    fmap = torch.from_numpy(rng.standard_normal((300, 13, 9)).astype(np.float32))  # 300 = 256 + 44 channels
    cells = _windows(rng, 150, 13, 9)
    want = spp_pool_reference(fmap, cells, levels)
    for method in ("triton", "tables", "roipool"):
        assert torch.equal(spp_pool(fmap.to(CUDA), cells, levels, method).cpu(), want), method


def test_linear_models_score_gpu_features_as_numpy_does():
    from spp_det.linear import LinearModels
    rng = np.random.default_rng(2)
    m = LinearModels(rng.standard_normal((3, 50, 4)), rng.standard_normal((3, 4)), 0.7, ["a", "b", "c"], "bbox")
    x = rng.standard_normal((40, 50)).astype(np.float32)
    np.testing.assert_allclose(m.deltas(torch.from_numpy(x).to(CUDA), 1), m.deltas(x, 1), rtol=1e-5, atol=1e-5)
    s = LinearModels(rng.standard_normal((3, 50, 1)), rng.standard_normal((3, 1)), 0.7, ["a", "b", "c"], "svm_fc7")
    np.testing.assert_allclose(s.scores(torch.from_numpy(x).to(CUDA)), s.scores(x), rtol=1e-5, atol=1e-5)
    s.b = s.b + 1.0  # a replaced bias reaches the GPU copy
    np.testing.assert_allclose(s.scores(torch.from_numpy(x).to(CUDA)), s.scores(x), rtol=1e-5, atol=1e-5)
    picks = [(0, np.array([3, 1, 7])), (2, np.array([1, 39])), (1, np.array([5]))]
    for got, (c, rows) in zip(m.class_deltas(torch.from_numpy(x).to(CUDA), picks), picks):
        np.testing.assert_allclose(got, m.deltas(x[rows], c), rtol=1e-5, atol=1e-5)


def _match(a, b) -> tuple[float, float]:
    """Share of ``a``'s detections that ``b`` has (same class, box within 0.5 px, score within 1e-3),
    and the largest score difference among them."""
    hit, worst = 0, 0.0
    for box, s, l in zip(a.boxes, a.scores, a.labels):
        m = (b.labels == l) & (np.abs(b.boxes - box).max(1) < 0.5) & (np.abs(b.scores - s) < 1e-3)
        if m.any():
            hit += 1
            worst = max(worst, float(np.abs(b.scores[m] - s).min()))
    return hit / max(1, len(a)), worst


def test_paper_shaped_detector_gives_the_cpu_detections_on_the_gpu():
    """ZF-5 (paper shapes, random weights), 4096-d fc, 20 classes, 2,000 windows: detections from
    conv maps and windows, on the GPU (maps, pooling, fc, SVMs, regression there) and on the CPU."""
    from spp_det.data.images import resize_short_side
    from spp_det.models import build_backbone
    from spp_det.timing import calibrate_svms, fc7_features, paper_shaped_models, Method
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (375, 500, 3), np.uint8)
    img[100:300, 150:400] //= 3  # some structure
    h, w = img.shape[:2]
    x1, y1 = rng.integers(0, w - 40, 2000), rng.integers(0, h - 40, 2000)
    boxes = np.stack([x1, y1, np.minimum(w - 1, x1 + rng.integers(20, 300, 2000)),
                      np.minimum(h - 1, y1 + rng.integers(20, 300, 2000))], 1).astype(np.float32)
    method = Method("SPP 1-scale", "spp", [688])
    out = {}
    for dev in ("cpu", "cuda"):
        torch.manual_seed(0)  # the same random trunk on both
        models = paper_shaped_models(build_backbone("zf5"), 20, 4096, device=dev)
        if dev == "cpu":
            calibrate_svms(models, fc7_features(method, models, img, boxes))
            bias = models.detector.svm_fc7.b
        models.detector.svm_fc7.b = bias  # the same calibrated SVMs on both
        maps = [models.backbone.conv5(resize_short_side(img, 688), dev)]
        out[dev] = models.detector.detect(maps, boxes, (h, w))[models.detector.main_variant]
    cpu, gpu = out["cpu"], out["cuda"]
    assert len(cpu) > 100
    share, worst = _match(cpu, gpu)
    print(f"GPU vs CPU detections: {len(gpu)} vs {len(cpu)}; {share:.4f} of the CPU's matched, "
          f"largest score difference {worst:.2e}")
    assert share >= 0.99 and abs(len(gpu) - len(cpu)) <= 0.01 * len(cpu)


def test_rcnn_pooler_on_the_gpu_gives_the_cpu_features():
    from spp_det.models import build_backbone
    from spp_det.rcnn import RCNNPooler
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, (200, 260, 3), np.uint8)
    boxes = np.array([[0, 0, 259, 199], [10, 20, 80, 150], [100, 50, 101, 52]], np.float32)
    feats = {}
    for dev in ("cpu", "cuda"):
        bb = build_backbone("zf5")
        torch.manual_seed(0)
        for p in bb.trunk.parameters():
            torch.nn.init.normal_(p, 0, 0.05)
        feats[dev] = RCNNPooler(bb.to(dev), size=96, batch=2, device=dev).pool(img, boxes, img.shape[:2])
    assert feats["cuda"].device.type == "cuda"
    # cuDNN convolves in TF32 (torch's default): 10-bit mantissas, so errors scale with the features
    err = float((feats["cuda"].cpu() - feats["cpu"]).abs().max() / feats["cpu"].abs().max())
    print(f"R-CNN features, largest |GPU - CPU| / largest |CPU|: {err:.2e}")
    assert err < 5e-3


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """The test suite's tiny pipeline (Lite0, fc 64) run end to end on the CPU and on the GPU, the
    proposals shared (R-CNN's fast mode: no opencv-contrib needed), every later stage computed apart."""
    from helpers import tiny_config
    from spp_det.config import config_from_dict
    from spp_det.pipeline import run_pipeline
    tmp = tmp_path_factory.mktemp("gpu")
    runs = {}
    for dev in ("cpu", "cuda"):
        d = tiny_config(tmp, tmp / "data" / "VOC2007", workdir=str(tmp / f"work_{dev}"),
                        features={"device": dev}, proposals={"mode": "rcnn", "cache_dir": str(tmp / "proposals")})
        runs[dev] = (d, run_pipeline(config_from_dict(d), progress=False))
    return tmp, runs


def test_every_stage_runs_on_the_gpu_and_agrees_with_the_cpu(tiny_runs):
    tmp, runs = tiny_runs
    (_, cpu), (_, gpu) = runs["cpu"], runs["cuda"]
    assert gpu.models.device.type == "cuda"
    a, b = torch.load(cpu.layout.head), torch.load(gpu.layout.head)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    res = {}
    for v in ("pool5", "fc7", "fc7_bbox"):
        res[v] = [json.loads((ws.root / "eval" / f"test_{v}.json").read_text())["mAP"] for ws in (cpu, gpu)]
    print(f"fine-tuned head, largest |GPU - CPU| weight: {worst:.2e}; mAP CPU / GPU: "
          + ", ".join(f"{v} {c:.4f} / {g:.4f}" for v, (c, g) in res.items()))
    # measured on an H100: 9.7e-3 (TF32 conv maps, then 30 SGD steps), mAP within 0.005
    assert worst < 3e-2
    for v, (c, g) in res.items():
        assert abs(c - g) <= 0.02, v


def test_the_api_on_the_gpu_gives_the_test_stage_detections(tiny_runs):
    from spp_det.api import Detector
    tmp, runs = tiny_runs
    _, ws = runs["cuda"]
    det = {dev: Detector.from_workdir(ws.root, device=dev) for dev in ("cpu", "cuda")}
    rec = ws.data.dataset("test").records[0]
    boxes = ws.data.proposals("test")[rec.image_id]
    a, b = (det[d].detect(rec.load(), boxes=boxes, variant="fc7_bbox") for d in ("cpu", "cuda"))
    share, worst = _match(a, b)
    print(f"API GPU vs CPU on one test image: {len(b)} vs {len(a)} detections, {share:.4f} matched, "
          f"largest score difference {worst:.2e}")
    assert share >= 0.99


def test_rcnn_mode_conv_finetuning_and_pretraining_run_on_the_gpu(tiny_runs):
    from spp_det.config import config_from_dict
    from spp_det.pipeline import run_pipeline, run_stage
    from spp_det.workspace import Workspace
    tmp, runs = tiny_runs
    d, ws = runs["cuda"]
    r = {**d, "workdir": str(tmp / "rcnn"), "mode": "rcnn", "rcnn": {"input_size": 64, "context": 4, "batch": 32},
         "finetune": {**d["finetune"], "iterations": 8, "lr_steps": []}, "svm": {**d["svm"], "pool5_baseline": False}}
    ws_r = run_pipeline(config_from_dict(r), progress=False)
    assert 0.0 <= json.loads((ws_r.root / "eval" / "test_fc7_bbox.json").read_text())["mAP"] <= 1.0
    c = {**d, "workdir": str(tmp / "conv"),
         "finetune": {**d["finetune"], "iterations": 6, "lr_steps": [], "snapshot_every": 3, "conv_layers": 2,
                      "batch_size": 16}}
    ws_c = run_pipeline(config_from_dict(c), progress=False)
    base = ws.models.backbone.trunk.state_dict()
    tuned = torch.load(ws_c.layout.tuned_trunk, weights_only=True)
    assert {k.split(".")[0] for k in base if not torch.equal(base[k].cpu(), tuned[k])} == {"12", "13"}
    p = {**d, "workdir": str(tmp / "pre"), "backbone": {"name": "zf5", "weights": "pretrain"},
         "model": {**d["model"], "fc_dim": 16},
         "pretrain": {"crops_per_object": 1, "resize": 64, "crop": 56, "sizes": [56, 48], "epochs": 2,
                      "batch_size": 8, "fc_dim": 16, "eval_modes": ["center", "full", "multiview"],
                      "multiview_scales": [56, 64], "eval_images": 6}}
    ws_p = Workspace(config_from_dict(p))
    run_stage(ws_p, "pretrain", progress=False)
    res = json.loads((ws_p.root / "pretrain" / "eval.json").read_text())["results"]
    assert res["multiview"]["views_per_image"] == 2 + 2 * 3 + 2 * 9
    assert all(v.device.type == "cpu" for v in torch.load(ws_p.layout.pretrained_model).values())


def test_finetuning_on_the_gpu_resumes_to_the_uninterrupted_result(tiny_runs, monkeypatch):
    import shutil

    from helpers import kill_finetune_at
    from spp_det.config import config_from_dict
    from spp_det.pipeline import run_stage
    from spp_det.workspace import Workspace
    tmp, runs = tiny_runs
    d, ws = runs["cuda"]
    work2 = tmp / "gpu_resume"
    shutil.copytree(ws.root, work2, ignore=shutil.ignore_patterns("finetune", "finetune.json"))
    ws2 = Workspace(config_from_dict({**d, "workdir": str(work2)}))
    kill_finetune_at(ws2, 25, monkeypatch)
    run_stage(ws2, "finetune", progress=False)
    a, b = torch.load(ws.layout.head), torch.load(ws2.layout.head)
    for k in a:  # dropout draws from the GPU's generator: restored with the checkpoint
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
