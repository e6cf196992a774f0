"""``finetune.use_flipped: check`` (spp_det/mirror_check.py) on real pixels and the real Lite0 trunk: a mirrored
left arrow is a right arrow (so mirrors must not be used), a mirrored disc or square is a disc or square."""
import cv2
import numpy as np
import pytest

from spp_det.data.voc import ImageRecord
from spp_det.features import ComputedMaps, WindowPooler
from spp_det.mirror_check import check_mirrors
from spp_det.models import build_backbone

SIDE = 192


def _shape(kind: str, x: int, y: int, s: int) -> np.ndarray:
    """Polygon (or None for the disc) of ``kind`` in a box of side ``s`` at ``(x, y)``."""
    if kind == "block":
        return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]])
    # an arrow pointing left: head (a triangle) on the left, shaft on the right; "right" is its mirror
    m, t = y + s // 2, s // 6
    pts = np.array([[x, m], [x + s // 2, y], [x + s // 2, m - t], [x + s, m - t], [x + s, m + t],
                    [x + s // 2, m + t], [x + s // 2, y + s]])
    if kind == "right":
        pts[:, 0] = 2 * x + s - pts[:, 0]
    return pts


def _records(tmp_path, classes, n_per_class=12, seed=0) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_per_class * len(classes)):
        c = i % len(classes)
        img = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
        img = cv2.GaussianBlur(img, (0, 0), 3)  # textured background
        s = int(rng.integers(70, 110))
        x, y = (int(v) for v in rng.integers(5, SIDE - s - 5, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        if classes[c] == "disc":
            cv2.circle(img, (x + s // 2, y + s // 2), s // 2, colour, -1)
        else:
            cv2.fillPoly(img, [_shape(classes[c], x, y, s).astype(np.int32)], colour)
        path = tmp_path / f"{i:03d}.png"
        cv2.imwrite(str(path), img)
        out.append(ImageRecord(f"{i:03d}", path, SIDE, SIDE, np.array([[x, y, x + s, y + s]], np.float32),
                               np.array([c]), np.zeros(1, bool), np.zeros(1, bool)))
    return out


def _random_boxes(record: ImageRecord) -> np.ndarray:
    rng = np.random.default_rng(int(record.image_id))
    xy = rng.integers(0, SIDE - 40, (60, 2))
    wh = rng.integers(20, 80, (60, 2))
    return np.concatenate([xy, np.minimum(xy + wh, SIDE - 1)], 1).astype(np.float32)


@pytest.fixture(scope="module")
def trunk():
    bb = build_backbone("lite0", "package")
    return ComputedMaps(bb, [224]), WindowPooler(bb, 224)


@pytest.mark.parametrize("classes, mirrors", [(["left", "right"], False), (["disc", "block"], True)])
def test_mirrors_are_used_only_where_a_mirrored_object_keeps_its_class(tmp_path, trunk, classes, mirrors):
    inputs, pooler = trunk
    out = check_mirrors(_records(tmp_path, classes), classes, inputs, pooler, _random_boxes)
    assert out.use_mirrors is mirrors and out.objects == 24 and out.background > 0 and not out.reason
    assert out.original > 0.8  # the classes are told apart on unmirrored held-out objects
    if mirrors:
        assert out.ratio > 0.9
    else:  # a mirrored left arrow is taken for a right arrow
        assert out.ratio < 0.3 and all(m < 0.3 for _, m, _ in out.per_class.values())


def test_the_check_keeps_the_papers_choice_where_it_cannot_run(tmp_path, trunk):
    inputs, pooler = trunk
    recs = _records(tmp_path, ["disc", "block"], n_per_class=2)[:3]  # block: 1 object, too few for 2 folds
    out = check_mirrors(recs, ["disc", "block"], inputs, pooler, _random_boxes)
    assert out.use_mirrors and "fewer than 2 objects" in out.reason and "cannot run" in out.summary()
