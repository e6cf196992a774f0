"""R-CNN's selective search (proposals/hierarchical_grouping.py) against independent references: OpenCV's
graph segmentation, a brute-force grouping over pixel sets, the histogram formulas, and R-CNN's ranking."""
import cv2
import numpy as np
import pytest

from proposals.hierarchical_grouping import (
    COLOUR_BINS, ORIENTATIONS, STRATEGIES, TEXTURE_BINS, GroupingParams, graph_segmentations, group,
    hierarchical_grouping, pixel_bins, region_features,
)
from proposals.hierarchical_grouping import _group_features
from proposals.selective_search import SearchParams, selective_search


def _fh_reference(img: np.ndarray, k: float, min_size: int) -> np.ndarray:
    """Felzenszwalb-Huttenlocher as the paper states it, in plain Python: 8-connected graph of the
    smoothed image, edges by increasing weight, merge when the weight is within both components'
    ``Int(C) + k / |C|``, then join components under ``min_size``."""
    h, w = img.shape[:2]
    f = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.8)
    edges = []
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                if 0 <= y + dy < h and x + dx < w:
                    d = f[y, x] - f[y + dy, x + dx]
                    edges.append((y * w + x, (y + dy) * w + x + dx, np.float32(np.sqrt(np.float32((d * d).sum())))))
    order = np.argsort(np.array([e[2] for e in edges], np.float32))
    comp = list(range(h * w))
    members = {i: {i} for i in range(h * w)}
    internal = {i: 0.0 for i in range(h * w)}

    def join(a, b, wt):
        members[a] |= members.pop(b)
        for p in members[a]:
            comp[p] = a
        internal[a] = max(internal[a], internal.pop(b), wt)
    for i in order:
        u, v, wt = edges[i]
        a, b = comp[u], comp[v]
        if a != b and wt <= internal[a] + k / len(members[a]) and wt <= internal[b] + k / len(members[b]):
            join(a, b, wt)
    for i in order:
        u, v, wt = edges[i]
        a, b = comp[u], comp[v]
        if a != b and (len(members[a]) < min_size or len(members[b]) < min_size):
            join(a, b, wt)
    return np.array(comp).reshape(h, w)


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label maps group the pixels identically (labels may be numbered differently)."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()], 1), axis=0)
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("k", [5, 50, 100])
def test_segmentation_matches_the_papers_algorithm(k):
    rng = np.random.default_rng(k)
    img = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (24, 18), interpolation=cv2.INTER_NEAREST)
    img = np.clip(img.astype(int) + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
    ours = graph_segmentations(img, [k])[0]
    ref = _fh_reference(img, float(k), k)
    assert _same_partition(ours, ref)
    assert 1 < len(np.unique(ours)) < img.shape[0] * img.shape[1]


def test_segmentation_agrees_with_opencv():
    """OpenCV's implementation of the same algorithm (its tie order and graph details differ): the
    same regions, up to the pixels of the smoothed borders between them."""
    from sklearn.metrics import adjusted_rand_score
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(blocks, 40, 0), 40, 1))
    for k in (50, 100):
        ours = graph_segmentations(img, [k])[0]
        ref = cv2.ximgproc.segmentation.createGraphSegmentation(0.8, float(k), k).processImage(img)
        assert abs(len(np.unique(ours)) - len(np.unique(ref))) <= 0.1 * len(np.unique(ref))  # 52 vs 53, 33 vs 31
        assert adjusted_rand_score(ref.ravel(), ours.ravel()) > 0.95  # 0.98 measured


def test_segmentation_small_regions_are_absorbed_and_labels_are_dense():
    img = np.zeros((40, 40, 3), np.uint8)
    img[10:13, 10:13] = 255  # 9 px spot: under min_size 50, absorbed by its surroundings
    img[:, 20:] = 120
    labels = graph_segmentations(img, [50])[0]
    assert set(np.unique(labels)) == {0, 1}
    assert labels[11, 11] == labels[0, 0] != labels[0, 30]


def test_pixel_bins_follow_their_formulas():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    cbin, tbin = pixel_bins(img)
    np.testing.assert_array_equal(cbin, np.arange(3) * COLOUR_BINS + img.astype(int) * COLOUR_BINS // 256)
    f = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    gx, gy = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3)
    for c in range(3):
        for o in range(ORIENTATIONS):
            t = 2 * np.pi * o / ORIENTATIONS
            resp = np.maximum(gx[..., c] * np.cos(t) + gy[..., c] * np.sin(t), 0.0)
            expect = np.minimum((resp / resp.max() * TEXTURE_BINS).astype(int), TEXTURE_BINS - 1)
            got = tbin[..., c * ORIENTATIONS + o] - (c * ORIENTATIONS + o) * TEXTURE_BINS
            assert (got == expect).mean() > 0.99  # float32 vs float64 rounding at bin edges only


def _brute_force_hierarchy(labels: np.ndarray, bins, weights) -> tuple[np.ndarray, np.ndarray]:
    """Greedy grouping over pixel sets: every similarity recomputed from the pixels of the union.
    Returns the boxes and the levels (height above the initial regions, which are 1)."""
    h, w = labels.shape
    cbin, tbin = (b.reshape(h * w, -1) for b in bins)
    nc, nt = 3 * COLOUR_BINS, 3 * ORIENTATIONS * TEXTURE_BINS
    lab = labels.ravel().copy()
    regions = {int(r): np.flatnonzero(lab == r) for r in np.unique(lab)}

    def box(pix):
        ys, xs = np.divmod(pix, w)
        return np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)

    def hist(pix, b, n):
        v = np.bincount(b[pix].ravel(), minlength=n).astype(float)
        return v / v.sum()

    def sim(a, b):
        pa, pb = regions[a], regions[b]
        u = box(np.concatenate([pa, pb]))
        return (weights[0] * np.minimum(hist(pa, cbin, nc), hist(pb, cbin, nc)).sum()
                + weights[1] * np.minimum(hist(pa, tbin, nt), hist(pb, tbin, nt)).sum()
                + weights[2] * (1 - (len(pa) + len(pb)) / (h * w))
                + weights[3] * (1 - ((u[2] - u[0] + 1) * (u[3] - u[1] + 1) - len(pa) - len(pb)) / (h * w)))

    out = [box(regions[r]) for r in sorted(regions)]
    level = {r: 1 for r in regions}
    nxt = len(regions)
    while len(regions) > 1:
        grid = lab.reshape(h, w)
        adj = {(min(a, b), max(a, b)) for a, b in np.concatenate([
            np.stack([grid[:, :-1].ravel(), grid[:, 1:].ravel()], 1),
            np.stack([grid[:-1].ravel(), grid[1:].ravel()], 1)]) if a != b}
        a, b = max(sorted(adj), key=lambda p: sim(*p))
        regions[nxt] = np.concatenate([regions.pop(a), regions.pop(b)])
        level[nxt] = max(level[a], level[b]) + 1
        lab[regions[nxt]] = nxt
        out.append(box(regions[nxt]))
        nxt += 1
    return np.array(out), np.array([level[r] for r in sorted(level)])


@pytest.mark.parametrize("strategy", ["ctsf", "tsf", "c"])
def test_grouping_matches_a_brute_force_greedy_merge(strategy):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (30, 36, 3), dtype=np.uint8)
    labels = np.repeat(np.repeat(np.arange(20).reshape(4, 5), [7, 8, 7, 8], 0), [7, 7, 8, 7, 7], 1)
    labels = labels[:30, :36]
    bins = pixel_bins(img)
    got = group(labels, img, strategy)
    assert got.shape == (2 * 20 - 1, 4)
    expect_boxes, expect_levels = _brute_force_hierarchy(labels, bins, STRATEGIES[strategy])
    np.testing.assert_array_equal(got, expect_boxes)
    _, levels = _group_features(region_features(labels, bins), strategy, labels.size)
    np.testing.assert_array_equal(levels, expect_levels)  # what the opencv ranking ranks by
    np.testing.assert_array_equal(got[-1], [0, 0, 35, 29])  # the last merge is the whole image


def test_region_features_count_pixels_and_neighbours():
    labels = np.array([[0, 0, 1], [2, 2, 1], [2, 2, 1]])
    img = np.zeros((3, 3, 3), np.uint8)
    size, box, hc, ht, pairs = region_features(labels, pixel_bins(img))
    np.testing.assert_array_equal(size, [2, 3, 4])
    np.testing.assert_array_equal(box, [[0, 0, 1, 0], [2, 0, 2, 2], [0, 1, 1, 2]])
    np.testing.assert_array_equal(pairs, [[0, 1], [0, 2], [1, 2]])
    np.testing.assert_allclose(hc.sum(1), 1.0)
    np.testing.assert_allclose(ht.sum(1), 1.0)


def _scene(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((120, 160, 3), 90, np.uint8) + rng.integers(0, 20, (120, 160, 3), dtype=np.uint8)
    cv2.rectangle(img, (20, 30), (70, 90), (200, 40, 40), -1)
    cv2.circle(img, (115, 60), 25, (30, 180, 60), -1)
    return img


def test_ranking_is_rcnns_and_the_cap_keeps_the_top_of_the_hierarchies():
    img = _scene(0)
    full = hierarchical_grouping(img, GroupingParams(max_boxes=10 ** 6))
    assert len(np.unique(full, axis=0)) == len(full)
    sides = np.minimum(full[:, 2] - full[:, 0], full[:, 3] - full[:, 1]) + 1
    assert sides.min() >= 20
    np.testing.assert_array_equal(hierarchical_grouping(img), full[:2000])
    capped = hierarchical_grouping(img, GroupingParams(max_boxes=30))
    np.testing.assert_array_equal(capped, full[:30])
    # priority = position from the top x uniform: the whole image (priority 1 x u) ranks near the front
    whole = np.flatnonzero((full == [0, 0, 159, 119]).all(1))
    assert len(whole) == 1 and whole[0] < 10
    # the objects are found
    from spp_det.boxes import box_iou
    gt = np.array([[20, 30, 70, 90], [90, 35, 140, 85]], np.float32)
    assert (box_iou(gt, full).max(1) >= 0.7).all()
    # reproducible; another seed ranks differently
    np.testing.assert_array_equal(hierarchical_grouping(img), hierarchical_grouping(img))
    assert not np.array_equal(hierarchical_grouping(img, GroupingParams(seed=1)), full[:2000])


def test_opencv_ranking_puts_low_regions_first_and_the_cap_keeps_them():
    img = _scene(0)
    rcnn = hierarchical_grouping(img, GroupingParams(max_boxes=10 ** 6, min_side=8))
    full = hierarchical_grouping(img, GroupingParams(max_boxes=10 ** 6, min_side=8, ranking="opencv"))
    # the same boxes, ranked differently
    assert len(full) == len(rcnn) and not np.array_equal(full, rcnn)
    np.testing.assert_array_equal(np.unique(full, axis=0), np.unique(rcnn, axis=0))
    capped = hierarchical_grouping(img, GroupingParams(max_boxes=30, min_side=8, ranking="opencv"))
    np.testing.assert_array_equal(capped, full[:30])
    # priority = level from the bottom x uniform: the whole image (the highest level; its best copy of the
    # 8 groupings' kept) ranks later than in R-CNN's ranking, and the first boxes are smaller
    whole = [np.flatnonzero((b == [0, 0, 159, 119]).all(1))[0] for b in (full, rcnn)]
    assert whole[0] > 3 * whole[1]
    area = lambda b: ((b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)).mean()
    assert area(full[:30]) < 0.5 * area(rcnn[:30])
    # through selective_search (mode rcnn, proposals.ranking)
    np.testing.assert_array_equal(selective_search(img, SearchParams(mode="rcnn", ranking="opencv")), full)
    with pytest.raises(ValueError, match="ranking 'paper'"):
        GroupingParams(ranking="paper")


def test_interleaved_ranking_alternates_rcnns_and_opencvs_orders():
    img = _scene(0)
    full = {r: hierarchical_grouping(img, GroupingParams(max_boxes=10 ** 6, min_side=8, ranking=r))
            for r in ("rcnn", "opencv", "interleaved")}
    # expected: A[0], B[0], A[1], B[1], ... of R-CNN's (A) and OpenCV's (B) rankings, each box at its first
    # appearance
    expect, seen = [], set()
    for a, b in zip(full["rcnn"], full["opencv"]):
        for box in (a, b):
            if tuple(box) not in seen:
                seen.add(tuple(box))
                expect.append(box)
    np.testing.assert_array_equal(full["interleaved"], np.array(expect))
    # a cap of 2m keeps the first m boxes of both rankings
    m = 25
    capped = hierarchical_grouping(img, GroupingParams(max_boxes=2 * m, min_side=8, ranking="interleaved"))
    kept = {tuple(b) for b in capped}
    assert {tuple(b) for b in full["rcnn"][:m]} | {tuple(b) for b in full["opencv"][:m]} <= kept
    np.testing.assert_array_equal(
        selective_search(img, SearchParams(mode="rcnn", ranking="interleaved", max_boxes=2 * m)), capped)


def test_rcnn_mode_through_selective_search_maps_downscaled_boxes_back():
    img = cv2.resize(_scene(1), (640, 480), interpolation=cv2.INTER_NEAREST)
    boxes = selective_search(img, SearchParams(mode="rcnn", min_size=20, max_image_side=320))
    assert len(boxes) > 0 and boxes[:, [0, 2]].max() <= 639 and boxes[:, [1, 3]].max() <= 479
    assert (np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) + 1 >= 20).all()


def test_defer_near_duplicates_hand_worked_and_against_a_greedy_loop():
    from proposals.hierarchical_grouping import defer_near_duplicates
    from spp_det.boxes import box_iou
    a = [0, 0, 99, 99]
    a2 = [0, 0, 99, 109]  # IoU with a: 100 x 100 / (100 x 110) = 0.909
    b, c = [200, 0, 299, 99], [0, 200, 99, 299]
    boxes = np.array([a, a2, b, c], np.float32)
    np.testing.assert_array_equal(defer_near_duplicates(boxes, 0.8, 3), [a, b, c, a2])
    np.testing.assert_array_equal(defer_near_duplicates(boxes, 0.95, 3), boxes)  # 0.909 < 0.95: no duplicate
    np.testing.assert_array_equal(defer_near_duplicates(boxes, 0.8, 4), boxes)  # the cap drops nothing
    rng = np.random.default_rng(0)
    xy = rng.integers(0, 80, (300, 2))
    wh = rng.integers(5, 40, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    kept, deferred = [], []
    for i in range(len(boxes)):  # the rule, plainly: compare with every kept box until 100 are kept
        if len(kept) < 100 and (not kept or box_iou(boxes[i:i + 1], boxes[kept]).max() < 0.7):
            kept.append(i)
        else:
            deferred.append(i)
    np.testing.assert_array_equal(defer_near_duplicates(boxes, 0.7, 100), boxes[kept + deferred])
