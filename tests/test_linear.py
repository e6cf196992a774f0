"""LinearModels (SVMs and box regressors): the formula of spp_det/linear.py against a per-class loop."""
import numpy as np
import pytest
import torch

from spp_det.linear import LinearModels


def test_scores_and_deltas_match_a_per_class_loop_and_survive_save_load(tmp_path):
    rng = np.random.default_rng(0)
    C, D, N = 3, 7, 5
    x = rng.standard_normal((N, D)).astype(np.float32)
    svm = LinearModels(rng.standard_normal((C, D, 1)), rng.standard_normal((C, 1)), 2.5, ["a", "b", "c"], "svm_fc7")
    expect = np.stack([[float((2.5 * x[n]) @ svm.W[c, :, 0] + svm.b[c, 0]) for c in range(C)] for n in range(N)])
    np.testing.assert_allclose(svm.scores(x), expect, rtol=1e-5, atol=1e-5)
    reg = LinearModels(rng.standard_normal((C, D, 4)), rng.standard_normal((C, 4)), 0.5, ["a", "b", "c"], "bbox")
    np.testing.assert_allclose(reg.deltas(x, 1), (0.5 * x) @ reg.W[1] + reg.b[1], rtol=1e-5, atol=1e-6)
    for m in (svm, reg):
        m.save(tmp_path / f"{m.kind}.pt")
        back = LinearModels.load(tmp_path / f"{m.kind}.pt")
        assert (back.kind, back.classes, back.scale) == (m.kind, m.classes, m.scale)
        np.testing.assert_array_equal(back.W, m.W)
    with pytest.raises(ValueError, match="scores\\(\\) is for one output per class"):
        reg.scores(x)
    with pytest.raises(ValueError, match="W must be \\(C, D, K\\)"):
        LinearModels(np.zeros((2, D, 1)), np.zeros((2, 1)), 1.0, ["a", "b", "c"], "svm_fc7")


@pytest.mark.parametrize("D, N", [(64, 300), (5600, 1), (5600, 300)])  # fc7 and pool5 sizes
def test_the_same_weights_score_bit_identically_whatever_their_memory_layout(D, N):
    """A model trained in one process and the same model merged from torchrun's ranks hold equal
    weights in different layouts; their scores (and so the comp4 files) must be the same bytes
    (OpenBLAS 0.3.31 rounds (64, 300) and (5600, 1) differently for a transposed W)."""
    rng = np.random.default_rng(2)
    C = 6
    x = rng.standard_normal((N, D)).astype(np.float32)
    W = rng.standard_normal((C, D, 1)).astype(np.float32)
    by_columns = np.ascontiguousarray(W[:, :, 0].T).T[:, :, None]  # (C, D, 1): a (D, C) array transposed
    assert not by_columns.flags.c_contiguous and np.array_equal(by_columns, W)
    b = rng.standard_normal((C, 1)).astype(np.float32)
    a, c = (LinearModels(w, b, 0.04, list("abcdef"), "svm_pool5") for w in (W, by_columns))
    assert a.scores(x).tobytes() == c.scores(x).tobytes()


def test_svm_files_written_before_the_class_still_load(tmp_path):
    W, b = np.arange(6, dtype=np.float32).reshape(3, 2), np.array([1.0, -1.0], np.float32)  # (D, C), (C,)
    torch.save({"kind": "fc7", "W": torch.from_numpy(W), "b": torch.from_numpy(b), "scale": 2.0,
                "classes": ["a", "b"], "info": {}}, tmp_path / "fc7.pt")
    m = LinearModels.load(tmp_path / "fc7.pt")
    x = np.ones((1, 3), np.float32)
    np.testing.assert_allclose(m.scores(x), (2.0 * x) @ W + b)
    assert m.kind == "svm_fc7"


def test_merge_takes_each_class_from_the_model_that_trained_it():
    rng = np.random.default_rng(1)
    classes = ["a", "b", "c"]
    full = LinearModels(rng.standard_normal((3, 4, 4)), rng.standard_normal((3, 4)), 0.5, classes, "bbox",
                        {c: {"windows": i} for i, c in enumerate(classes)})

    def share(only):  # what one rank trains: its classes' rows and info, zeros elsewhere
        W, b = np.zeros_like(full.W), np.zeros_like(full.b)
        W[only], b[only] = full.W[only], full.b[only]
        return LinearModels(W, b, 0.5, classes, "bbox", {classes[c]: full.info[classes[c]] for c in only})

    merged = LinearModels.merge([([0, 2], share([0, 2])), ([1], share([1]))])
    np.testing.assert_array_equal(merged.W, full.W)
    np.testing.assert_array_equal(merged.b, full.b)
    assert merged.info == full.info and list(merged.info) == classes
    for parts in ([([0, 2], share([0, 2]))], [([0, 1], share([0, 1])), ([1, 2], share([1, 2]))]):
        with pytest.raises(ValueError, match="every class exactly once"):
            LinearModels.merge(parts)
