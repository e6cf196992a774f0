"""The real-photo demo's ImageNet window labels: per-window average pooling against a brute-force mean,
and windows of one conv map telling two photos side by side apart."""
import cv2
import numpy as np
import pytest
import torch

from spp_det.imagenet_windows import ImageNetWindowScorer, intersection_over_smaller, window_means

CAT, COFFEE = range(281, 286), (967, 968)  # ImageNet indices: the cats, espresso / cup


def test_window_means_equal_the_brute_force_mean():
    rng = np.random.default_rng(0)
    fmap = torch.from_numpy(rng.standard_normal((7, 9, 13)).astype(np.float32))
    x1, y1 = rng.integers(0, 13, 50), rng.integers(0, 9, 50)
    cells = np.stack([x1, y1, x1 + rng.integers(0, 13 - x1), y1 + rng.integers(0, 9 - y1)], 1)
    want = torch.stack([fmap[:, b:d + 1, a:c + 1].mean((1, 2)) for a, b, c, d in cells])
    torch.testing.assert_close(window_means(fmap, cells), want, rtol=1e-5, atol=1e-5)


def test_intersection_over_smaller_box():
    assert intersection_over_smaller(np.array([0, 0, 9, 9]), np.array([5, 5, 9, 9])) == 1.0  # inside
    assert intersection_over_smaller(np.array([0, 0, 9, 9]), np.array([5, 0, 14, 9])) == 0.5
    assert intersection_over_smaller(np.array([0, 0, 9, 9]), np.array([10, 0, 19, 9])) == 0.0  # touching


@pytest.fixture(scope="module")
def side_by_side():
    """The cat photo left, the coffee photo right, one image; their boxes (internal)."""
    from skimage import data
    cat = cv2.cvtColor(cv2.resize(data.chelsea(), (300, 300)), cv2.COLOR_RGB2BGR)
    cup = cv2.cvtColor(cv2.resize(data.coffee(), (300, 300)), cv2.COLOR_RGB2BGR)
    return np.hstack([cat, cup]), np.array([[0, 0, 299, 299], [300, 0, 599, 299]], np.float64)


def test_windows_of_one_conv_map_are_classified_apart(side_by_side):
    img, boxes = side_by_side
    scorer = ImageNetWindowScorer()
    top = scorer.probabilities(img, boxes).argmax(1)
    assert top[0] in CAT and top[1] in COFFEE
    rng = np.random.default_rng(1)  # small windows as distractors: the two photos stay the best windows
    xy = rng.integers(0, 500, (30, 2))
    small = np.concatenate([xy, xy + rng.integers(64, 100, (30, 2))], 1).clip(0, [599, 299, 599, 299])
    best, _ = scorer.label(img, np.concatenate([boxes, small]), top=2, min_prob=0.0, overlap=0.5)
    labels = {scorer.classes.index(w.label) for w in best}
    assert len(best) == 2 and any(c in CAT for c in labels) and any(c in COFFEE for c in labels)
