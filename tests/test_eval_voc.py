"""VOC AP against a literal port of the devkit's VOCevaldet.m / VOCap.m and hand-worked cases."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spp_det.evaluation.voc import ClassDetections, eval_class, evaluate_comp4_dir, voc_ap

ROOT = Path(__file__).resolve().parents[1]


def devkit_ap(ids, confidence, BB, gt, use_07=True, minoverlap=0.5):
    """Line by line from VOCevaldet.m (MATLAB semantics: stable sort, max ignores NaN)."""
    npos = 0
    gtd = {}
    for k, (boxes, diff) in gt.items():
        gtd[k] = {"BB": np.asarray(boxes, float), "diff": np.asarray(diff, bool), "det": [False] * len(boxes)}
        npos += int(sum(1 for d in diff if not d))
    si = sorted(range(len(confidence)), key=lambda i: -confidence[i])  # Python's sort is stable
    nd = len(confidence)
    tp, fp = [0.0] * nd, [0.0] * nd
    for d in range(nd):
        i = ids[si[d]]
        bb = BB[si[d]]
        ovmax, jmax = -np.inf, None
        g = gtd.get(i)
        if g is not None:
            for j in range(len(g["BB"])):
                bbgt = g["BB"][j]
                bi = [max(bb[0], bbgt[0]), max(bb[1], bbgt[1]), min(bb[2], bbgt[2]), min(bb[3], bbgt[3])]
                iw, ih = bi[2] - bi[0] + 1, bi[3] - bi[1] + 1
                if iw > 0 and ih > 0:
                    ua = (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1) + (bbgt[2] - bbgt[0] + 1) * (bbgt[3] - bbgt[1] + 1) - iw * ih
                    ov = iw * ih / ua
                    if ov > ovmax:
                        ovmax, jmax = ov, j
        if ovmax >= minoverlap:
            if not g["diff"][jmax]:
                if not g["det"][jmax]:
                    tp[d] = 1
                    g["det"][jmax] = True
                else:
                    fp[d] = 1
        else:
            fp[d] = 1
    fp, tp = np.cumsum(fp), np.cumsum(tp)
    rec = tp / npos
    with np.errstate(invalid="ignore", divide="ignore"):
        prec = tp / (fp + tp)  # 0/0 = NaN, as in MATLAB
    if use_07:
        ap = 0.0
        for t in [k / 10 for k in range(11)]:
            sel = prec[rec >= t]
            sel = sel[~np.isnan(sel)]
            ap += (sel.max() if sel.size else 0.0) / 11
        return ap
    mrec = np.concatenate([[0], rec, [1]])
    mpre = np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = np.fmax(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx]))


def random_case(rng):
    gt = {}
    for k in range(rng.integers(1, 6)):
        n = rng.integers(0, 4)
        xy = rng.integers(0, 60, (n, 2))
        wh = rng.integers(5, 40, (n, 2))
        gt[f"im{k}"] = (np.concatenate([xy, xy + wh], 1), rng.random(n) < 0.25)
    ids, conf, BB = [], [], []
    for _ in range(rng.integers(0, 25)):
        k = f"im{rng.integers(0, 7)}"  # some images without GT
        if k in gt and len(gt[k][0]) and rng.random() < 0.7:
            b = gt[k][0][rng.integers(len(gt[k][0]))] + rng.integers(-6, 7, 4)
        else:
            xy = rng.integers(0, 60, 2)
            b = np.concatenate([xy, xy + rng.integers(3, 40, 2)])
        b = np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
        ids.append(k)
        conf.append(float(rng.choice([0.1, 0.5, 0.9, rng.random()])))  # ties exercise the stable sort
        BB.append(b)
    return gt, ids, conf, BB


@pytest.mark.parametrize("use_07", [True, False])
def test_matches_devkit_port_on_random_cases(use_07):
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(400):
        gt, ids, conf, BB = random_case(rng)
        if sum((~d).sum() for _, d in gt.values()) == 0:
            continue
        dets = ClassDetections(np.array(ids, dtype=object), np.array(conf), np.array(BB, float).reshape(-1, 4))
        ours = eval_class(dets, gt, 0.5, use_07)["ap"]
        assert ours == pytest.approx(devkit_ap(ids, conf, BB, gt, use_07), abs=1e-12)
        checked += 1
    assert checked > 300


def dets(*rows):
    return ClassDetections(np.array([r[0] for r in rows], dtype=object), np.array([r[1] for r in rows], float),
                           np.array([r[2] for r in rows], float).reshape(-1, 4))


def test_hand_worked_duplicate_is_false_positive():
    gt = {"a": (np.array([[0, 0, 9, 9]]), np.array([False]))}
    r = eval_class(dets(("a", 0.9, [0, 0, 9, 9]), ("a", 0.8, [0, 0, 9, 9])), gt)
    assert (r["tp"], r["fp"]) == (1, 1)
    assert r["ap"] == pytest.approx(1.0)  # recall 1 reached at precision 1
    # per detection, in the order given (what the report colours): the lower-scored duplicate is the FP
    r = eval_class(dets(("a", 0.8, [0, 0, 9, 9]), ("a", 0.9, [0, 0, 9, 9]), ("b", 0.1, [0, 0, 9, 9])), gt)
    assert r["status"].tolist() == [0, 1, 0]


def test_hand_worked_difficult_is_ignored():
    gt = {"a": (np.array([[0, 0, 9, 9], [50, 50, 59, 59]]), np.array([False, True]))}
    r = eval_class(dets(("a", 0.9, [50, 50, 59, 59]), ("a", 0.5, [0, 0, 9, 9])), gt)
    assert (r["npos"], r["tp"], r["fp"]) == (1, 1, 0)
    assert r["status"].tolist() == [-1, 1]
    assert r["ap"] == pytest.approx(1.0)


def test_iou_of_exactly_half_counts_as_match():
    # GT 10x10 (+1 rule: x 0..9); detection x 0..4 covers 5 columns: IoU = 50 / 100 = 0.5 exactly.
    gt = {"a": (np.array([[0, 0, 9, 9]]), np.array([False]))}
    assert eval_class(dets(("a", 1.0, [0, 0, 4, 9])), gt)["tp"] == 1
    assert eval_class(dets(("a", 1.0, [0, 0, 3, 9])), gt)["tp"] == 0  # 0.4


def test_class_without_detections_has_ap_zero():
    gt = {"a": (np.array([[0, 0, 9, 9]]), np.array([False]))}
    assert eval_class(ClassDetections.empty(), gt)["ap"] == 0.0


def test_voc07_grid_counts_recall_of_exactly_three_tenths():
    # 10 positives, 3 found at precision 1 then nothing: AP07 = (4 thresholds 0..0.3 at p=1) / 11.
    rec = np.array([0.1, 0.2, 0.3])
    prec = np.ones(3)
    assert voc_ap(rec, prec, True) == pytest.approx(4 / 11)
    assert voc_ap(rec, prec, False) == pytest.approx(0.3)


def write_voc(root: Path, objects: dict, classes):
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    import cv2
    from spp_det.data.synthetic import annotation_xml
    for image_id, objs in objects.items():
        cv2.imwrite(str(root / "JPEGImages" / f"{image_id}.jpg"), np.zeros((60, 80, 3), np.uint8))
        (root / "Annotations" / f"{image_id}.xml").write_text(annotation_xml(image_id, 80, 60, objs))
    (root / "ImageSets" / "Main" / "test.txt").write_text("".join(f"{i}\n" for i in objects))


def test_eval_voc_tool_end_to_end(tmp_path):
    classes = ["cat", "dog"]
    write_voc(tmp_path / "voc", {
        "000001": [{"name": "cat", "box": (0, 0, 9, 9), "truncated": False, "difficult": False}],
        "000002": [{"name": "dog", "box": (10, 10, 29, 29), "truncated": False, "difficult": False},
                   {"name": "cat", "box": (40, 20, 59, 39), "truncated": False, "difficult": True}],
    }, classes)
    res = tmp_path / "res"
    res.mkdir()
    # 1-based boxes in the file: cat found in 000001, a hit on the difficult cat (ignored), a miss
    (res / "comp4_det_test_cat.txt").write_text("000001 0.9 1 1 10 10\n000002 0.8 41 21 60 40\n000002 0.1 1 1 5 5\n")
    out = tmp_path / "ap.json"
    p = subprocess.run([sys.executable, str(ROOT / "tools" / "eval_voc.py"), "--voc-root", str(tmp_path / "voc"),
                        "--split", "test", "--results", str(res), "--classes", "cat,dog", "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["ap"] == {"cat": pytest.approx(1.0), "dog": 0.0}  # dog file missing -> no detections
    assert r["mAP"] == pytest.approx(0.5)
    assert "mAP" in p.stdout


def test_comp4_for_unknown_image_is_an_error(tmp_path):
    from spp_det.data.voc import VOCDataset
    write_voc(tmp_path / "voc", {"000001": [{"name": "cat", "box": (0, 0, 9, 9), "truncated": False,
                                            "difficult": False}]}, ["cat"])
    (tmp_path / "comp4_det_test_cat.txt").write_text("999999 0.9 1 1 10 10\n")
    ds = VOCDataset(tmp_path / "voc", "test", ["cat"])
    with pytest.raises(ValueError, match="not in split"):
        evaluate_comp4_dir(tmp_path, ds.records, ["cat"], "test")


def _eval_tool(tmp_path, results, classes="cat,dog", out=None):
    cmd = [sys.executable, str(ROOT / "tools" / "eval_voc.py"), "--voc-root", str(tmp_path / "voc"), "--split", "test",
           "--results", str(results), "--classes", classes] + (["--out", str(out)] if out else [])
    return subprocess.run(cmd, capture_output=True, text=True)


CAT_ONLY = {"000001": [{"name": "cat", "box": (0, 0, 9, 9), "truncated": False, "difficult": False}],
            "000002": [{"name": "cat", "box": (10, 10, 29, 29), "truncated": False, "difficult": False}]}


@pytest.mark.parametrize("case, expect", [
    ("missing", "results directory not found"),
    ("empty", "no comp4 result file for split 'test'"),
    ("nan", "comp4_det_test_cat.txt:2: score and box must be finite numbers"),
    ("inf_box", "comp4_det_test_cat.txt:1: score and box must be finite numbers"),
])
def test_eval_tool_refuses_results_it_cannot_score(tmp_path, case, expect):
    write_voc(tmp_path / "voc", CAT_ONLY, ["cat", "dog"])
    res = tmp_path / "res"
    if case != "missing":
        res.mkdir()
    if case == "nan":
        (res / "comp4_det_test_cat.txt").write_text("000001 0.9 1 1 10 10\n000002 nan 11 11 30 30\n")
    if case == "inf_box":
        (res / "comp4_det_test_cat.txt").write_text("000001 0.9 1 1 inf 10\n")
    out = tmp_path / "ap.json"
    p = _eval_tool(tmp_path, res, out=out)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], p.stderr
    assert not out.exists()


def test_a_class_without_test_objects_is_reported_and_left_out_of_the_mean(tmp_path):
    write_voc(tmp_path / "voc", CAT_ONLY, ["cat", "dog"])
    shutil.rmtree(tmp_path / "voc" / "JPEGImages")  # evaluation needs only Annotations and ImageSets
    res = tmp_path / "res"
    res.mkdir()
    (res / "comp4_det_test_cat.txt").write_text("000001 0.9 1 1 10 10\n000002 0.8 200 200 210 210\n")
    (res / "comp4_det_test_dog.txt").write_text("000001 0.7 1 1 10 10\n")
    out = tmp_path / "ap.json"
    p = _eval_tool(tmp_path, res, out=out)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())  # strict JSON: no bare NaN
    assert r["ap"] == {"cat": pytest.approx(6 / 11), "dog": None} and r["npos"] == {"cat": 2, "dog": 0}
    assert r["mAP"] == pytest.approx(6 / 11)  # dog is not in the mean
    assert "no test object" in p.stdout
