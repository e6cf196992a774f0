"""The timing tool times the real computation: its detections equal the detection code's."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from spp_det import timing
from spp_det.data.images import resize_short_side
from spp_det.detect import postprocess
from spp_det.features import WindowPooler
from spp_det.models import build_lite0
from spp_det.rcnn import RCNNPooler

ROOT = Path(__file__).resolve().parents[1]


def _image_and_boxes():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    xy = rng.integers(0, 100, (60, 2))
    boxes = np.concatenate([xy, np.minimum(xy + rng.integers(8, 60, (60, 2)), [159, 119])], 1).astype(np.float32)
    return img, boxes


def test_timed_path_gives_the_detections_of_the_detection_code():
    img, boxes = _image_and_boxes()
    models = timing.paper_shaped_models(build_lite0("package"), num_classes=3, fc_dim=32, levels=(1, 2))
    det = models.detector
    for method, pooler in [(timing.Method("spp", "spp", (160, 200)), WindowPooler(models.backbone, (160, 200), (1, 2))),
                           (timing.Method("rcnn", "rcnn", rcnn_size=48), RCNNPooler(models.backbone, (1, 2), 48))]:
        inputs = ([models.backbone.conv5(resize_short_side(img, s)) for s in (160, 200)] if method.kind == "spp" else img)
        with torch.no_grad():
            pooled = pooler.pool(inputs, boxes, img.shape[:2])
            fc7 = det.head.fc7_features(pooled).numpy()
        timing.calibrate_svms(models, fc7, pass_rate=0.2)
        assert np.ptp(det.svm_fc7.scores(fc7)) > 0.1  # distinct scores: no ties at the threshold
        ref = postprocess(boxes, det.svm_fc7.scores(fc7), img.shape[:2], det.test_cfg, pooled.numpy(), det.bbox_reg)
        times, dets = timing.time_image(method, models, img, boxes)
        assert len(ref) > 0 and set(times) == set(timing.PARTS[1:]) and all(v >= 0 for v in times.values())
        np.testing.assert_allclose(dets.scores, ref.scores, rtol=1e-5)
        np.testing.assert_allclose(dets.boxes, ref.boxes, rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(dets.labels, ref.labels)


def test_summary_speedups_and_tool_outputs(tmp_path):
    rows = {"SPP 1-scale": [dict.fromkeys(timing.PARTS[1:], 0.1)], "R-CNN": [dict.fromkeys(timing.PARTS[1:], 1.0)]}
    s = timing.summarize(rows, [2.0])
    assert s["SPP 1-scale"]["total"] == 0.6000000000000001 or abs(s["SPP 1-scale"]["total"] - 0.6) < 1e-12
    assert abs(s["SPP 1-scale"]["speedup_total"] - 10.0) < 1e-9 and abs(s["SPP 1-scale"]["speedup_conv"] - 10.0) < 1e-9
    img, _ = _image_and_boxes()
    src = tmp_path / "imgs"
    src.mkdir()
    for i in range(2):
        cv2.imwrite(str(src / f"{i}.jpg"), img)
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "time_detection.py"), "--images", str(src),
                        "--backbone", "lite0", "--fc-dim", "32", "--classes", "3", "--scales", "120",
                        "--scales5", "96", "120", "--rcnn-windows", "8", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "speed-up" in r.stdout and "R-CNN" in r.stdout
    data = json.loads((out / "timing.json").read_text())
    assert set(data["summary"]) == {"SPP 1-scale", "SPP 2-scale", "R-CNN"}
    assert data["summary"]["R-CNN"]["speedup_total"] == 1.0
    assert (out / "timing.png").read_bytes()[:4] == b"\x89PNG"
