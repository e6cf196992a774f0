"""Box regression targets, SVM solver settings, post-processing, fine-tuning sampling, config."""
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.ops as tvops
from sklearn.linear_model import Ridge

from spp_det.bbox_reg import decode, encode
from spp_det.config import TestConfig, VOC_CLASSES, load_config
from spp_det.detect import Detections, combine, postprocess
from spp_det.svm import train_linear_svm

ROOT = Path(__file__).resolve().parents[1]


def test_bbox_targets_hand_worked_and_roundtrip():
    p = np.array([[0, 0, 9, 19]], float)  # w 10, h 20, centre (5, 10)
    g = np.array([[5, 0, 24, 19]], float)  # w 20, h 20, centre (15, 10)
    t = encode(p, g)
    np.testing.assert_allclose(t, [[1.0, 0.0, np.log(2), 0.0]])
    np.testing.assert_allclose(decode(p, t), g, atol=1e-5)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 50, (20, 2))], 1)
    gts = boxes + rng.normal(0, 3, (20, 4))
    np.testing.assert_allclose(decode(boxes, encode(boxes, gts)), gts, atol=1e-3)


def test_svm_is_liblinear_hinge_with_bias_feature():
    rng = np.random.default_rng(0)
    X_pos = rng.normal(2, 1, (40, 5)).astype(np.float32)
    X_neg = rng.normal(-2, 1, (200, 5)).astype(np.float32)
    from spp_det.config import SvmConfig
    w, b = train_linear_svm(X_pos, X_neg, SvmConfig(C=1.0))
    assert ((X_pos @ w + b) > 0).mean() > 0.95 and ((X_neg @ w + b) < 0).mean() > 0.95
    # b is w_bias * 10 (liblinear -B 10): the dual solution's objective with the bias regularised
    from sklearn.svm import LinearSVC
    ref = LinearSVC(C=1.0, loss="hinge", dual=True, class_weight={1: 2.0, -1: 1.0}, intercept_scaling=10.0, tol=0.1, random_state=0,
                    max_iter=10000).fit(np.concatenate([X_pos, X_neg]), np.r_[np.ones(40), -np.ones(200)])
    np.testing.assert_allclose(w, ref.coef_[0], rtol=1e-4)
    with pytest.raises(ValueError):
        train_linear_svm(X_pos, X_neg[:0], SvmConfig())


def test_postprocess_threshold_nms_cap_and_order():
    boxes = np.array([[0, 0, 9, 9], [1, 1, 10, 10], [50, 50, 59, 59], [0, 0, 9, 9]], np.float32)
    scores = np.array([[0.5, -2.0], [0.4, -1.0], [-1.4, -1.6], [0.3, 0.2]], np.float32)
    cfg = TestConfig(score_thresh=-1.5, nms=0.3, max_per_class=100)
    d = postprocess(boxes, scores, (100, 100), cfg)
    c0 = d.labels == 0
    # class 0: window 1 and 3 overlap window 0 by > 0.3 -> suppressed; window 2 kept (-1.4 > -1.5)
    np.testing.assert_allclose(d.scores[c0], [0.5, -1.4])
    # class 1: only windows 1 (-1.0) and 3 (0.2) pass -1.5; they overlap (IoU 0.68) -> torchvision keeps one
    ref = tvops.nms(torch.tensor(boxes[[1, 3]] + np.float32([0, 0, 1, 1])), torch.tensor([-1.0, 0.2]), 0.3)
    assert ref.tolist() == [1]
    np.testing.assert_allclose(d.scores[d.labels == 1], [0.2])
    cfg.max_per_class = 1
    assert (postprocess(boxes, scores, (100, 100), cfg).labels == 0).sum() == 1


def test_bbox_regression_before_vs_after_nms():
    # Two overlapping windows; regression moves the lower-scoring one away from the first.
    boxes = np.array([[0, 0, 19, 19], [4, 0, 23, 19]], np.float32)
    scores = np.array([[1.0], [0.9]], np.float32)
    pool5 = np.array([[0.0], [1.0]], np.float32)
    from spp_det.linear import LinearModels
    reg = LinearModels(np.array([[[3.0, 0, 0, 0]]]), np.zeros((1, 4)), 1.0, ["a"], "bbox")
    before = postprocess(boxes, scores, (100, 100), TestConfig(bbox_reg_order="before_nms"), pool5, reg)
    after = postprocess(boxes, scores, (100, 100), TestConfig(bbox_reg_order="after_nms"), pool5, reg)
    assert len(before) == 2  # moved by 3 widths = 60 px before NMS: no longer overlapping
    assert len(after) == 1   # NMS on raw windows removes it first
    assert before.boxes[1, 0] == pytest.approx(64.0)


def test_combine_is_union_then_nms():
    a = Detections(np.array([[0, 0, 9, 9]], np.float32), np.array([0.9], np.float32), np.array([0]))
    b = Detections(np.array([[1, 1, 10, 10], [40, 40, 49, 49]], np.float32), np.array([0.95, 0.1], np.float32),
                   np.array([0, 0]))
    c = combine([a, b], TestConfig())
    np.testing.assert_allclose(np.sort(c.scores), [0.1, 0.95])


def test_averaged_candidates_match_brute_force():
    # two models score the same 60 windows (3 classes); each regresses from its own features (5-d, 7-d)
    from spp_det.boxes import clip_boxes
    from spp_det.detect import averaged_candidates, candidates
    from spp_det.linear import LinearModels
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 90, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (60, 2))], 1).astype(np.float32)
    scores = [rng.normal(-1, 1, (60, 3)).astype(np.float32) for _ in range(2)]
    feats = [rng.normal(0, 1, (60, d)).astype(np.float32) for d in (5, 7)]
    regs = [LinearModels(rng.normal(0, 0.05, (3, d, 4)), rng.normal(0, 0.05, (3, 4)), 0.5, ["a", "b", "c"], "bbox")
            for d in (5, 7)]
    cfg = TestConfig(score_thresh=-1.2)
    got = averaged_candidates(boxes, scores, (100, 110), cfg, feats, regs)
    want_b, want_s, want_l, want_rows = [], [], [], []
    for c in range(3):  # class by class, windows in order: from the definition
        for i in range(60):
            s = (float(scores[0][i, c]) + float(scores[1][i, c])) / 2
            if s > cfg.score_thresh:
                d = (regs[0].deltas(feats[0][i:i + 1], c) + regs[1].deltas(feats[1][i:i + 1], c)) / 2
                want_b.append(clip_boxes(decode(boxes[i:i + 1], d), 100, 110)[0])
                want_s.append(s)
                want_l.append(c)
                want_rows.append(i)
    assert 20 < len(want_s) < 150  # the threshold keeps some windows and drops others
    np.testing.assert_array_equal(got.labels, want_l)
    np.testing.assert_allclose(got.scores, want_s, rtol=1e-6)
    np.testing.assert_allclose(got.boxes, np.array(want_b), rtol=1e-5, atol=1e-3)
    # unregressed: the windows themselves; one model: exactly candidates(); a model twice: itself
    plain = averaged_candidates(boxes, scores, (100, 110), cfg)
    np.testing.assert_array_equal(plain.scores, got.scores)
    np.testing.assert_array_equal(plain.boxes, clip_boxes(boxes[want_rows], 100, 110))
    one = candidates(boxes, scores[0], (100, 110), cfg, feats[0], regs[0])
    twice = averaged_candidates(boxes, [scores[0]] * 2, (100, 110), cfg, [feats[0]] * 2, [regs[0]] * 2)
    for a in (averaged_candidates(boxes, scores[:1], (100, 110), cfg, feats[:1], regs[:1]), twice):
        np.testing.assert_array_equal(a.boxes, one.boxes)
        np.testing.assert_array_equal(a.scores, one.scores)
        np.testing.assert_array_equal(a.labels, one.labels)


def test_box_voting_hand_worked():
    # class 0: the kept box (score 3) and a suppressed one 2 px to the right (score 1) vote 3:1; a box of
    # score -0.5 overlapping both has no weight; a far box does not overlap. Class 1 has one box of score
    # -0.2 only: no positive weight, it keeps its box.
    boxes = np.array([[0, 0, 19, 19], [2, 0, 21, 19], [1, 1, 20, 20], [60, 60, 79, 79], [0, 0, 9, 9]], np.float32)
    pool = Detections(boxes, np.array([3.0, 1.0, -0.5, 2.0, -0.2], np.float32), np.array([0, 0, 0, 0, 1]))
    cfg = TestConfig(nms=0.3, box_voting=0.5)
    out = combine([pool], cfg)
    got = {(int(l), round(float(s), 2)): b for b, s, l in zip(out.boxes, out.scores, out.labels)}
    assert sorted(got) == [(0, 2.0), (0, 3.0), (1, -0.2)]
    np.testing.assert_allclose(got[(0, 3.0)], [0.5, 0, 19.5, 19])  # (3 * [0,0,19,19] + 1 * [2,0,21,19]) / 4
    np.testing.assert_allclose(got[(0, 2.0)], [60, 60, 79, 79])
    np.testing.assert_allclose(got[(1, -0.2)], [0, 0, 9, 9])
    off = combine([pool], TestConfig(nms=0.3))  # off (the paper): NMS's own boxes, in the same order
    np.testing.assert_array_equal(off.scores, out.scores)
    np.testing.assert_allclose(off.boxes[0], [0, 0, 19, 19])


def test_box_voting_matches_brute_force():
    from spp_det.boxes import box_iou
    from spp_det.detect import box_voting
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 80, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (300, 2))], 1).astype(np.float32)
    pool = Detections(boxes, rng.normal(0, 1, 300).astype(np.float32), rng.integers(0, 3, 300))
    kept = combine([pool], TestConfig(nms=0.3))
    for t in (0.3, 0.5, 0.7):
        got = box_voting(kept, pool, t)
        for i in range(len(kept)):  # one detection at a time, from the definition
            num, den = np.zeros(4), 0.0
            for j in range(len(pool)):
                iou = box_iou(kept.boxes[i:i + 1], pool.boxes[j:j + 1])[0, 0]
                if pool.labels[j] == kept.labels[i] and iou >= t and pool.scores[j] > 0:
                    num += pool.scores[j] * pool.boxes[j].astype(np.float64)
                    den += pool.scores[j]
            np.testing.assert_allclose(got.boxes[i], num / den if den > 0 else kept.boxes[i], rtol=1e-5, atol=1e-4)
        np.testing.assert_array_equal(got.scores, kept.scores)
        np.testing.assert_array_equal(got.labels, kept.labels)


def test_box_voting_config_checks():
    from spp_det.config import Config
    with pytest.raises(ValueError, match="test.box_voting must be an IoU"):
        Config(test=TestConfig(box_voting=1.5)).validate()
    with pytest.raises(ValueError, match="box_voting needs test.bbox_reg_order: before_nms"):
        Config(test=TestConfig(box_voting=0.5, bbox_reg_order="after_nms")).validate()


def test_ridge_objective_matches_closed_form():
    # sklearn Ridge(alpha) minimises ||y - Xw - b||^2 + alpha ||w||^2 (intercept not penalised)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8))
    y = rng.normal(size=(50, 4))
    m = Ridge(alpha=4000.0).fit(X, y)
    Xc, yc = X - X.mean(0), y - y.mean(0)
    w = np.linalg.solve(Xc.T @ Xc + 4000.0 * np.eye(8), Xc.T @ yc)
    np.testing.assert_allclose(m.coef_.T, w, rtol=1e-6, atol=1e-10)


def test_all_configs_load_and_voc_configs_use_paper_values():
    for f in sorted((ROOT / "configs").glob("*.yaml")):
        cfg = load_config(f)
        if f.name.startswith("voc07"):
            assert cfg.dataset.classes == list(VOC_CLASSES)
            assert cfg.model.scales in ([688], [480, 576, 688, 864, 1200]) and cfg.model.spp_levels == [1, 2, 3, 6]
            assert (cfg.finetune.batch_size, cfg.finetune.fg_fraction, cfg.finetune.momentum) == (128, 0.25, 0.9)
            assert (cfg.svm.C, cfg.svm.pos_weight, cfg.svm.bias) == (0.001, 2.0, 10.0)
            assert (cfg.bbox_reg.lam, cfg.test.nms, cfg.test.score_thresh) == (4000.0, 0.3, -1.5)


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("finetune:\n  iterationz: 5\n")
    with pytest.raises(ValueError, match="finetune.iterationz"):
        load_config(p)
    p.write_text("finetune: {val_split: test}\n")
    with pytest.raises(ValueError, match="test split"):
        load_config(p)
    cfg = load_config(ROOT / "configs" / "demo.yaml", ["svm.C=0.01", "model.projection=offset"])
    assert cfg.svm.C == 0.01 and cfg.model.projection == "offset"


def test_hard_negative_mining_rules():
    from spp_det.config import SvmConfig
    from spp_det.svm import HardNegativeMiner
    rng = np.random.default_rng(0)
    D = 6
    cfg = SvmConfig(C=1.0, retrain_limit=10_000)
    miner = HardNegativeMiner([rng.normal(1.5, 1, (30, D)).astype(np.float32)], cfg)
    boxes = np.zeros((200, 4), np.float32)

    def image():
        return rng.normal(-0.5, 1.2, (200, D)).astype(np.float32)

    def cached_keys():
        return {tuple(k) for k in np.concatenate(miner.caches[0].keys_neg).tolist()}

    # first image: every negative enters, the model trains, then easy ones (< -1.2) are evicted
    X0 = image()
    is_neg0 = rng.random((200, 1)) < 0.8
    miner.add_image(0, X0, is_neg0, boxes, last=False)
    z0 = X0 @ miner.W[:, 0] + miner.B[0]
    assert miner.caches[0].retrains == 1
    assert cached_keys() == {(0, j) for j in np.nonzero(is_neg0[:, 0] & (z0 >= -1.2))[0]}
    # later image: only negatives scoring > -1.0001 under the current model are added; no retrain yet
    X1 = image()
    W, B = miner.W.copy(), miner.B.copy()
    miner.add_image(1, X1, np.ones((200, 1), bool), boxes, last=False)
    hard = set(np.nonzero(X1 @ W[:, 0] + B[0] > -1.0001)[0])
    assert {j for i, j in cached_keys() if i == 1} == hard
    assert miner.caches[0].retrains == 1 and miner.caches[0].num_added == len(hard)
    # the last image always retrains (and evicts)
    miner.add_image(2, image(), np.ones((200, 1), bool), boxes, last=True)
    assert miner.caches[0].retrains == 2 and miner.caches[0].num_added == 0
    Xn, _ = miner.caches[0].negatives()
    assert (Xn @ miner.W[:, 0] + miner.B[0] >= -1.2).all()


def test_hard_negative_mining_retrains_past_the_limit():
    from spp_det.config import SvmConfig
    from spp_det.svm import HardNegativeMiner
    rng = np.random.default_rng(1)
    miner = HardNegativeMiner([rng.normal(1, 1, (20, 4)).astype(np.float32)], SvmConfig(C=1.0, retrain_limit=50))
    boxes = np.zeros((300, 4), np.float32)
    miner.add_image(0, rng.normal(0, 1, (300, 4)).astype(np.float32), np.ones((300, 1), bool), boxes, False)
    X = rng.normal(0.8, 0.3, (300, 4)).astype(np.float32)  # hard: most score > -1 under the model
    miner.add_image(1, X, np.ones((300, 1), bool), boxes, last=False)
    assert miner.caches[0].retrains == 2  # > 50 new negatives triggered a retrain before the end


def test_truncated_svd_fc_is_the_best_rank_k_approximation():
    """Eckart-Young: the factorised layer's weight error is the norm of the discarded singular values
    (computed independently by numpy); full rank reproduces the layer; the bias is kept."""
    from spp_det.head import truncated_svd
    torch.manual_seed(0)
    layer = torch.nn.Linear(40, 24)
    s = np.linalg.svd(layer.weight.detach().double().numpy(), compute_uv=False)
    for k in (5, 24):
        f = truncated_svd(layer, k)
        W = (f[1].weight @ f[0].weight).detach().double().numpy()
        err = np.linalg.norm(W - layer.weight.detach().double().numpy())
        assert err == pytest.approx(np.sqrt((s[k:] ** 2).sum()), abs=1e-5)
        assert f[0].weight.shape == (k, 40) and f[0].bias is None
        torch.testing.assert_close(f[1].bias, layer.bias)
    x = torch.randn(7, 40)
    torch.testing.assert_close(truncated_svd(layer, 24)(x), layer(x), rtol=1e-5, atol=1e-5)


def test_test_time_fc_options():
    from spp_det.head import SPPHead, test_time_fc
    torch.manual_seed(0)
    head = SPPHead(64, 3, fc_dim=32).eval()
    assert test_time_fc(head) is head  # nothing asked: the trained head itself
    x = torch.rand(50, 64)
    ref = head.fc7_features(x)
    full = test_time_fc(head, [32, 32])  # full rank: the same features
    torch.testing.assert_close(full.fc7_features(x), ref, rtol=1e-4, atol=1e-5)
    bf = test_time_fc(head, None, "bfloat16")
    got = bf.fc7_features(x)
    assert got.dtype == torch.float32 and head.fc6.weight.dtype == torch.float32  # the head is not converted
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()  # bf16: 8 mantissa bits
    with pytest.raises(ValueError, match="fc_dtype"):
        from spp_det.config import config_from_dict
        config_from_dict({"test": {"fc_dtype": "float16"}})


def test_finetune_recipes_fill_only_what_the_user_left_null():
    from spp_det.config import FINETUNE_RECIPES, FinetuneConfig
    paper = FinetuneConfig().resolved("paper")
    assert (paper.iterations, paper.base_lr, paper.lr_steps, paper.lr_policy) == (300000, 1e-4, [250000], "step")
    rnd = FinetuneConfig().resolved("random_fc")
    assert rnd.iterations is None and rnd.epochs == FINETUNE_RECIPES["random_fc"]["epochs"]
    # mirrored views: the paper's with pretrained fc layers, the mirror check without; a user's value stays
    assert (paper.use_flipped, rnd.use_flipped) == (True, "check")
    assert FinetuneConfig(use_flipped=False).resolved("random_fc").use_flipped is False
    assert FinetuneConfig(use_flipped="check").resolved("paper").use_flipped == "check"
    # choosing the length in one unit unsets the other; explicit steps without a policy mean "step"
    mine = FinetuneConfig(iterations=30, lr_steps=[20], base_lr=0.01).resolved("random_fc")
    assert (mine.iterations, mine.epochs, mine.lr_policy, mine.base_lr) == (30, None, "step", 0.01)
    assert FinetuneConfig(epochs=2.0).resolved("paper").iterations is None
    with pytest.raises(ValueError, match="not both"):
        FinetuneConfig(iterations=10, epochs=1.0).resolved("paper")
    with pytest.raises(ValueError, match="finetune.recipe"):
        FinetuneConfig().resolved("fast")


def test_recipe_auto_follows_pretrained_fc(tmp_path):
    from spp_det.config import config_from_dict
    from spp_det.workspace import Workspace
    lite = Workspace(config_from_dict({"backbone": {"name": "lite0", "weights": "package"}, "model": {"fc_dim": 64}}))
    assert lite.models.finetune_cfg.recipe == "random_fc"
    # a ZF-5 file with fc6/fc7 of the head's shapes (what SPP pre-training writes) -> the paper's recipe
    from spp_det.models.zf5 import zf5_trunk
    state = {f"trunk.{k}": v for k, v in zf5_trunk().state_dict().items()}
    state.update({"fc6.weight": torch.zeros(64, 256 * 50), "fc6.bias": torch.zeros(64),
                  "fc7.weight": torch.zeros(64, 64), "fc7.bias": torch.zeros(64)})
    torch.save(state, tmp_path / "zf5.pt")
    zf = Workspace(config_from_dict({"backbone": {"name": "zf5", "weights": str(tmp_path / "zf5.pt")},
                                     "model": {"fc_dim": 64}}))
    assert zf.models.finetune_cfg.recipe == "paper" and zf.models.finetune_cfg.iterations == 300000
    # a pretrained fc of another width cannot initialise the head: random fc, random_fc recipe
    other = Workspace(config_from_dict({"backbone": {"name": "zf5", "weights": str(tmp_path / "zf5.pt")},
                                        "model": {"fc_dim": 128}}))
    assert other.models.finetune_cfg.recipe == "random_fc"


def test_learning_rate_schedules_match_their_formulas():
    from spp_det.config import FinetuneConfig
    from spp_det.finetune import lr_at, run_length
    step = FinetuneConfig(iterations=100, base_lr=0.1, lr_steps=[50, 80]).resolved("paper")
    assert [lr_at(i, step, 100) for i in (0, 49, 50, 79, 80)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    cos = FinetuneConfig(iterations=110, base_lr=0.2, lr_policy="cosine", warmup_iterations=10).resolved("paper")
    assert [lr_at(i, cos, 110) for i in (0, 4, 9)] == pytest.approx([0.02, 0.1, 0.2])  # linear warm-up
    for i in (10, 35, 60, 109):  # then 0.2 * (1 + cos(pi (i - 10) / 100)) / 2
        assert lr_at(i, cos, 110) == pytest.approx(0.1 * (1 + math.cos(math.pi * (i - 10) / 100)))
    # epochs: passes over the foreground windows, 32 per batch of 128 at 25 %
    assert run_length(FinetuneConfig(epochs=2.5).resolved("random_fc"), 1000) == math.ceil(2.5 * 1000 / 32)
    assert run_length(step, 1000) == 100
