"""R-CNN's selective search ("fast mode"): graph-based segmentation + hierarchical grouping.

Uijlings et al., "Selective Search for Object Recognition" (IJCV 2013), as R-CNN's
``selective_search_boxes.m`` runs it, re-implemented and compiled with numba: the
Felzenszwalb-Huttenlocher segmentation that gives the initial regions (the algorithm of OpenCV's
``createGraphSegmentation``, ours because it shares one sorted graph among the k values: 2.2x
faster, see :func:`graph_segmentations`), the greedy grouping, its similarities and the ranking.

Per image, for each colour space in ``colour_spaces`` (HSV, Lab) and each ``k`` in ``ks`` (50, 100)
the image is segmented (``sigma`` 0.8, minimum region ``k`` pixels, as R-CNN), then grouped once per
similarity strategy (``ctsf``: colour + texture + size + fill, ``tsf``: texture + size + fill):

* colour: 25-bin histogram per channel of the colour-space image (75 bins, L1-normalised),
  compared by histogram intersection;
* texture: per channel, Gaussian derivatives (sigma 1) in 8 orientations (positive part of the
  directional derivative), 10 bins each from 0 to the image's largest response (240 bins,
  L1-normalised), histogram intersection;
* size: ``1 - (|a| + |b|) / |image|``; fill: ``1 - (|bbox(a u b)| - |a| - |b|) / |image|``.

The two most similar neighbouring regions merge (histograms size-weighted) until one is left; every
region of the hierarchy (initial and merged) gives a box. Ranking, as R-CNN: a box's priority is
its position in its grouping counted from the top (the last merge, the whole image, is 1) times a
uniform random number (seeded: reproducible); all groupings' boxes are sorted by priority, boxes
with a side under ``min_side`` (R-CNN: 20 px) are dropped, duplicates keep their best-ranked copy,
and the first ``max_boxes`` stay. So when the cap bites, it cuts the bottom of the hierarchies (the
many small initial segments) first, not a random sample. ``ranking="opencv"`` ranks as OpenCV's
``ximgproc`` does instead ("inverted from the paper" in its source): a box's level counted from the
bottom (initial regions 1, a merge one more than its higher part) times a uniform random number, so
the cap cuts the large merges first and keeps small regions; ``ranking="interleaved"`` takes
boxes from the two orders alternately (:data:`RANKINGS`).

Where this differs from R-CNN's MATLAB code: the segmentation runs on OpenCV's 8-bit HSV_FULL / Lab
images (Euclidean colour distance; not MATLAB's colour conversions) and breaks weight ties by numpy's
sort; texture uses
Sobel-on-Gaussian derivatives rather than ``anigauss``; the random numbers are numpy's.

Output boxes: float32 ``(N, 4)`` internal convention (``x1, y1, x2, y2``, 0-based inclusive).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numba
import numpy as np

COLOUR_BINS, TEXTURE_BINS, ORIENTATIONS = 25, 10, 8
STRATEGIES = {"ctsf": (1.0, 1.0, 1.0, 1.0), "tsf": (0.0, 1.0, 1.0, 1.0), "cs": (1.0, 0.0, 1.0, 0.0),
              "c": (1.0, 0.0, 0.0, 0.0), "t": (0.0, 1.0, 0.0, 0.0), "s": (0.0, 0.0, 1.0, 0.0),
              "f": (0.0, 0.0, 0.0, 1.0)}  # weights of colour, texture, size, fill
_CONVERSIONS = {"hsv": cv2.COLOR_BGR2HSV_FULL, "lab": cv2.COLOR_BGR2Lab, "rgb": cv2.COLOR_BGR2RGB}


# A ranking is one or more priority functions (lower: kept first) of a grouping's levels (regions in
# creation order: initial ones, then each merge; level 1 for initial regions, a merge one more than its
# higher part); each is multiplied by the same uniform random numbers. With more than one, the boxes
# are taken alternately from each order (a box's first copy kept).
def _from_top(level: np.ndarray) -> np.ndarray:
    return np.arange(len(level), 0, -1, dtype=np.float64)


def _from_bottom(level: np.ndarray) -> np.ndarray:
    return level.astype(np.float64)


RANKINGS = {
    # R-CNN (selective_search_boxes.m): position counted from the top, the last merge (whole image) is 1,
    # so a cap cuts the many small initial regions first
    "rcnn": (_from_top,),
    # OpenCV (ximgproc hierarchicalGrouping, "inverted from the paper"): the level counted from the
    # bottom, so small regions come first and a cap cuts the large merges
    "opencv": (_from_bottom,),
    # beyond both: R-CNN's and OpenCV's orders alternately, so a cap keeps the top of the hierarchies
    # and their small regions (docs/BENCHMARKS.md, "Proposals": recall where the cap bites)
    "interleaved": (_from_top, _from_bottom),
}


def rank_boxes(boxes: np.ndarray, levels: Sequence[np.ndarray], ranking: str, rng: np.random.Generator,
               min_side: int) -> np.ndarray:
    """The distinct boxes with both sides >= ``min_side``, in ``ranking``'s order (:data:`RANKINGS`).

    boxes: ``(N, 4)`` the groupings' boxes concatenated; levels: one array per grouping, as
    :func:`_group` returns them (their lengths sum to N). Each priority function's order ranks a
    distinct box at its best-ranked copy; with two orders, a box's key is
    ``min(2 * rank_first, 2 * rank_second + 1)``, so the first ``2m`` boxes hold the first ``m`` of
    each order.
    """
    rnd = rng.random(len(boxes))
    keep = np.flatnonzero((boxes[:, 2] - boxes[:, 0] + 1 >= min_side) & (boxes[:, 3] - boxes[:, 1] + 1 >= min_side))
    distinct, inverse = np.unique(boxes[keep], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    funcs = RANKINGS[ranking]
    key = np.full(len(distinct), np.inf)
    for i, f in enumerate(funcs):
        order = np.argsort(np.concatenate([f(v) for v in levels])[keep] * rnd[keep], kind="stable")
        rank = np.full(len(distinct), np.inf)
        np.minimum.at(rank, inverse[order], np.arange(len(order), dtype=np.float64))
        # its best copy's position in this order -> its rank among the distinct boxes
        _, dense = np.unique(rank, return_inverse=True)
        key = np.minimum(key, len(funcs) * dense.reshape(-1) + i)
    return distinct[np.argsort(key, kind="stable")]


@dataclass(frozen=True)
class GroupingParams:
    """R-CNN's fast mode by default (``selective_search_boxes.m``: HSV and Lab, k 50 and 100,
    sigma 0.8, two strategies, boxes narrower than 20 px dropped)."""

    colour_spaces: tuple[str, ...] = ("hsv", "lab")
    ks: tuple[int, ...] = (50, 100)
    sigma: float = 0.8
    strategies: tuple[str, ...] = ("ctsf", "tsf")
    ranking: str = "rcnn"  # or "opencv", "interleaved": see RANKINGS
    min_side: int = 20
    max_boxes: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ranking not in RANKINGS:
            raise ValueError(f"unknown selective search ranking {self.ranking!r}: one of {sorted(RANKINGS)}")


# ---------------------------------------------------------------------------------------- segmentation
@numba.njit(cache=True, nogil=True)
def _graph_edges(f):
    """8-connected pixel graph of a smoothed ``(H, W, C)`` float image: each pixel to its right, lower,
    lower-right and upper-right neighbour; weight = Euclidean colour distance."""
    h, w, nc = f.shape
    u = np.empty(4 * h * w, np.int32)
    v = np.empty(4 * h * w, np.int32)
    wt = np.empty(4 * h * w, np.float32)
    m = 0
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1), (-1, 1)):
                yy, xx = y + dy, x + dx
                if 0 <= yy < h and xx < w:
                    d = 0.0
                    for c in range(nc):
                        e = f[y, x, c] - f[yy, xx, c]
                        d += e * e
                    u[m], v[m], wt[m] = y * w + x, yy * w + xx, np.sqrt(d)
                    m += 1
    return u[:m], v[:m], wt[:m]


@numba.njit(cache=True, nogil=True)
def _find(parent, a):
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        parent[a], a = root, parent[a]
    return root


@numba.njit(cache=True, nogil=True)
def _segment_sorted(u, v, wt, n, k, min_size):
    """Felzenszwalb-Huttenlocher on edges sorted by weight: merge while the weight is within both
    components' thresholds ``internal + k / size``, then absorb components under ``min_size``.
    Returns labels 0..m-1 per pixel (in order of first appearance)."""
    parent = np.arange(n)
    size = np.ones(n, np.int64)
    thr = np.full(n, k)
    for i in range(u.shape[0]):
        a, b = _find(parent, u[i]), _find(parent, v[i])
        if a != b and wt[i] <= thr[a] and wt[i] <= thr[b]:
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
            thr[a] = wt[i] + k / size[a]
    for i in range(u.shape[0]):
        a, b = _find(parent, u[i]), _find(parent, v[i])
        if a != b and (size[a] < min_size or size[b] < min_size):
            if size[a] < size[b]:
                a, b = b, a
            parent[b] = a
            size[a] += size[b]
    labels = np.empty(n, np.int32)
    ids = np.full(n, -1, np.int32)
    m = 0
    for p in range(n):
        r = _find(parent, p)
        if ids[r] < 0:
            ids[r] = m
            m += 1
        labels[p] = ids[r]
    return labels


def graph_segmentations(image: np.ndarray, ks, sigma: float = 0.8) -> list[np.ndarray]:
    """Felzenszwalb-Huttenlocher segmentations ``(H, W)`` int32 of a uint8 ``(H, W, C)`` image, one per
    ``k`` in ``ks`` (minimum region size ``k``, as R-CNN), sharing the smoothing, the graph and the
    edge sort: the algorithm of ``cv2.ximgproc.segmentation.createGraphSegmentation(sigma, k, k)``,
    which builds and sorts the graph again for every ``k``. Ours: the 4 segmentations of R-CNN's fast
    mode (2 colour spaces x 2 k) of the 13 real VOC photos in 0.192 s per image where OpenCV's take
    0.421 s (2.19x; ``benchmarks/bench_proposals.py --repeat 3``)."""
    h, w = image.shape[:2]
    f = cv2.GaussianBlur(image.astype(np.float32), (0, 0), sigma).reshape(h, w, -1)
    u, v, wt = _graph_edges(f)
    order = np.argsort(wt)  # quicksort: 0.03 s for the 0.7 M edges of a 500 x 353 image, a stable sort 0.17 s
    u, v, wt = u[order], v[order], wt[order]
    return [_segment_sorted(u, v, wt, h * w, float(k), int(k)).reshape(h, w) for k in ks]


# ---------------------------------------------------------------------------------------- region features
@numba.njit(cache=True, nogil=True)
def _pixel_bins(colour, gx, gy):
    """Per pixel: its colour-histogram bin per channel ``(H, W, C)`` and its texture-histogram bin per
    channel and orientation ``(H, W, 8 C)``, as indices into the region histograms."""
    h, w, nc = colour.shape
    cos = np.empty(ORIENTATIONS)
    sin = np.empty(ORIENTATIONS)
    for o in range(ORIENTATIONS):
        cos[o] = np.cos(2.0 * np.pi * o / ORIENTATIONS)
        sin[o] = np.sin(2.0 * np.pi * o / ORIENTATIONS)
    top = np.zeros((nc, ORIENTATIONS))  # largest positive directional derivative: the bins' upper end
    for y in range(h):
        for x in range(w):
            for c in range(nc):
                for o in range(ORIENTATIONS):
                    top[c, o] = max(top[c, o], gx[y, x, c] * cos[o] + gy[y, x, c] * sin[o])
    cbin = np.empty((h, w, nc), np.int16)
    tbin = np.empty((h, w, nc * ORIENTATIONS), np.int16)
    for y in range(h):
        for x in range(w):
            for c in range(nc):
                cbin[y, x, c] = c * COLOUR_BINS + colour[y, x, c] * COLOUR_BINS // 256
                for o in range(ORIENTATIONS):
                    v = max(gx[y, x, c] * cos[o] + gy[y, x, c] * sin[o], 0.0)
                    b = min(int(v / top[c, o] * TEXTURE_BINS), TEXTURE_BINS - 1) if top[c, o] > 0.0 else 0
                    tbin[y, x, c * ORIENTATIONS + o] = (c * ORIENTATIONS + o) * TEXTURE_BINS + b
    return cbin, tbin


def pixel_bins(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Histogram bins of every pixel of a colour-space ``image`` (``(H, W, C)`` uint8): colour (25 per
    channel) and texture (Gaussian derivatives, sigma 1, in 8 orientations, 10 bins each per channel).
    Depends on the image only, so it is computed once for all segmentations of it."""
    img = np.ascontiguousarray(image)
    f = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3).reshape(img.shape)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3).reshape(img.shape)
    return _pixel_bins(img, gx, gy)


@numba.njit(cache=True, nogil=True)
def _region_features(labels, cbin, tbin, n, colour_bins, texture_bins):
    """Per region: size, bbox, colour and texture histograms (counts), and the sorted unique
    neighbour pairs ``a * n + b`` (``a < b``) of 4-connected pixels with different labels."""
    h, w = labels.shape
    size = np.zeros(n)
    box = np.empty((n, 4))
    box[:, 0] = w
    box[:, 1] = h
    box[:, 2] = -1.0
    box[:, 3] = -1.0
    hc = np.zeros((n, colour_bins), np.float32)
    ht = np.zeros((n, texture_bins), np.float32)
    pairs = np.empty(2 * h * w, np.int64)
    npairs = 0
    for y in range(h):
        for x in range(w):
            r = labels[y, x]
            size[r] += 1.0
            box[r, 0] = min(box[r, 0], x)
            box[r, 1] = min(box[r, 1], y)
            box[r, 2] = max(box[r, 2], x)
            box[r, 3] = max(box[r, 3], y)
            for i in range(cbin.shape[2]):
                hc[r, cbin[y, x, i]] += 1.0
            for i in range(tbin.shape[2]):
                ht[r, tbin[y, x, i]] += 1.0
            if x + 1 < w and labels[y, x + 1] != r:
                pairs[npairs] = min(r, labels[y, x + 1]) * n + max(r, labels[y, x + 1])
                npairs += 1
            if y + 1 < h and labels[y + 1, x] != r:
                pairs[npairs] = min(r, labels[y + 1, x]) * n + max(r, labels[y + 1, x])
                npairs += 1
    return size, box, hc, ht, np.unique(pairs[:npairs])


def region_features(labels: np.ndarray, bins: tuple[np.ndarray, np.ndarray]):
    """Features of the regions of ``labels`` (``(H, W)`` int, 0..n-1) given :func:`pixel_bins` of the
    image: size ``(n,)``, bbox ``(n, 4)`` internal, colour ``(n, 25 C)`` and texture ``(n, 80 C)``
    histograms (each L1-normalised), neighbour pairs ``(P, 2)`` with ``a < b``."""
    labels = np.ascontiguousarray(labels, np.int32)
    n = int(labels.max()) + 1
    cbin, tbin = bins
    nc = cbin.shape[2]
    size, box, hc, ht, flat = _region_features(labels, cbin, tbin, n, nc * COLOUR_BINS,
                                               nc * ORIENTATIONS * TEXTURE_BINS)
    hc /= hc.sum(1, keepdims=True)
    ht /= ht.sum(1, keepdims=True)
    return size, box, hc, ht, np.stack([flat // n, flat % n], 1)


# ---------------------------------------------------------------------------------------- grouping
@numba.njit(cache=True, nogil=True, fastmath=True)
def _similarity(a, b, size, box, hc, ht, weights, image_size):
    s = 0.0
    if weights[0] != 0.0:
        acc = 0.0
        for i in range(hc.shape[1]):
            acc += min(hc[a, i], hc[b, i])
        s += weights[0] * acc
    if weights[1] != 0.0:
        acc = 0.0
        for i in range(ht.shape[1]):
            acc += min(ht[a, i], ht[b, i])
        s += weights[1] * acc
    if weights[2] != 0.0:
        s += weights[2] * (1.0 - (size[a] + size[b]) / image_size)
    if weights[3] != 0.0:
        bw = max(box[a, 2], box[b, 2]) - min(box[a, 0], box[b, 0]) + 1.0
        bh = max(box[a, 3], box[b, 3]) - min(box[a, 1], box[b, 1]) + 1.0
        s += weights[3] * (1.0 - (bw * bh - size[a] - size[b]) / image_size)
    return s


@numba.njit(cache=True, nogil=True, fastmath=True)
def _group(size0, box0, hc0, ht0, pairs0, weights, image_size):
    """Greedy hierarchical grouping; returns the boxes ``(t, 4)`` of all ``t = 2n - 1`` regions (initial
    ones first, then merged ones in merge order; fewer if the region graph is disconnected) and their
    levels ``(t,)`` counted from the bottom (initial regions 1, a merge one more than its higher part,
    as OpenCV's ``hierarchicalGrouping`` counts them)."""
    n = size0.shape[0]
    m = 2 * n - 1
    size = np.zeros(m)
    box = np.zeros((m, 4))
    hc = np.zeros((m, hc0.shape[1]), np.float32)
    ht = np.zeros((m, ht0.shape[1]), np.float32)
    size[:n] = size0
    box[:n] = box0
    hc[:n] = hc0
    ht[:n] = ht0
    level = np.ones(m, np.int64)
    alive = np.zeros(m, np.bool_)
    alive[:n] = True
    cap = pairs0.shape[0] + n + 16
    pa = np.empty(cap, np.int64)
    pb = np.empty(cap, np.int64)
    ps = np.empty(cap)
    npairs = pairs0.shape[0]
    for k in range(npairs):
        pa[k], pb[k] = pairs0[k, 0], pairs0[k, 1]
        ps[k] = _similarity(pa[k], pb[k], size, box, hc, ht, weights, image_size)
    mark = np.full(m, -1, np.int64)  # neighbour de-duplication per merge
    nb = np.empty(m, np.int64)
    t = n
    while npairs > 0:
        best = 0
        for k in range(1, npairs):
            if ps[k] > ps[best]:
                best = k
        a, b = pa[best], pb[best]
        sa, sb = size[a], size[b]
        size[t] = sa + sb
        level[t] = max(level[a], level[b]) + 1
        box[t, 0] = min(box[a, 0], box[b, 0])
        box[t, 1] = min(box[a, 1], box[b, 1])
        box[t, 2] = max(box[a, 2], box[b, 2])
        box[t, 3] = max(box[a, 3], box[b, 3])
        for i in range(hc.shape[1]):
            hc[t, i] = (sa * hc[a, i] + sb * hc[b, i]) / (sa + sb)
        for i in range(ht.shape[1]):
            ht[t, i] = (sa * ht[a, i] + sb * ht[b, i]) / (sa + sb)
        alive[a] = False
        alive[b] = False
        alive[t] = True
        # drop the pairs of a and b, collecting their other ends
        nnb = 0
        keep = 0
        for k in range(npairs):
            u, v = pa[k], pb[k]
            if u == a or u == b or v == a or v == b:
                o = v if (u == a or u == b) else u
                if o != a and o != b and mark[o] != t:
                    mark[o] = t
                    nb[nnb] = o
                    nnb += 1
            else:
                pa[keep], pb[keep], ps[keep] = u, v, ps[k]
                keep += 1
        npairs = keep
        for j in range(nnb):
            o = nb[j]
            pa[npairs], pb[npairs] = o, t
            ps[npairs] = _similarity(o, t, size, box, hc, ht, weights, image_size)
            npairs += 1
        t += 1
    return box[:t].copy(), level[:t].copy()


def group(labels: np.ndarray, image: np.ndarray, strategy: str) -> np.ndarray:
    """Boxes ``(2n - 1, 4)`` (internal) of the hierarchy grown from the regions of ``labels`` on the
    colour-space ``image`` with similarity ``strategy`` (:data:`STRATEGIES`): the n initial regions,
    then each merge in order (the last is the whole image, for a connected region graph)."""
    return _group_features(region_features(labels, pixel_bins(image)), strategy, labels.size)[0]


def _group_features(features: tuple, strategy: str, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    size, box, hc, ht, pairs = features
    return _group(size, box, hc, ht, pairs, np.asarray(STRATEGIES[strategy], np.float64), float(image_size))


def hierarchical_grouping(image_bgr: np.ndarray, params: GroupingParams = GroupingParams()) -> np.ndarray:
    """Selective search boxes of a BGR uint8 image, ranked by ``params.ranking`` (R-CNN's by default;
    module docstring)."""
    boxes, levels = [], []
    for space in params.colour_spaces:
        img = cv2.cvtColor(image_bgr, _CONVERSIONS[space])
        bins = pixel_bins(img)
        for labels in graph_segmentations(img, params.ks, params.sigma):
            features = region_features(labels, bins)
            for strategy in params.strategies:
                b, level = _group_features(features, strategy, labels.size)
                boxes.append(b)
                levels.append(level)
    ranked = rank_boxes(np.concatenate(boxes), levels, params.ranking, np.random.default_rng(params.seed),
                        params.min_side)
    return ranked[: params.max_boxes].astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _defer_order(boxes, iou_thresh, limit):
    """Greedy pass in rank order: a box overlapping an already kept box by >= ``iou_thresh`` (+1 pixel
    rule) is deferred; stops once ``limit`` boxes are kept. Returns kept indices, then deferred ones."""
    n = boxes.shape[0]
    kept = np.empty(n, np.int64)
    deferred = np.empty(n, np.int64)
    nk = nd = 0
    for i in range(n):
        if nk >= limit:
            deferred[nd:nd + n - i] = np.arange(i, n)
            nd += n - i
            break
        x1, y1, x2, y2 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        area = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
        dup = False
        for j in range(nk):
            b = kept[j]
            iw = min(x2, boxes[b, 2]) - max(x1, boxes[b, 0]) + 1.0
            ih = min(y2, boxes[b, 3]) - max(y1, boxes[b, 1]) + 1.0
            if iw > 0.0 and ih > 0.0:
                inter = iw * ih
                other = (boxes[b, 2] - boxes[b, 0] + 1.0) * (boxes[b, 3] - boxes[b, 1] + 1.0)
                if inter >= iou_thresh * (area + other - inter):
                    dup = True
                    break
        if dup:
            deferred[nd] = i
            nd += 1
        else:
            kept[nk] = i
            nk += 1
    return np.concatenate((kept[:nk], deferred[:nd]))


def defer_near_duplicates(boxes: np.ndarray, iou: float, max_boxes: int) -> np.ndarray:
    """Ranked boxes ``(N, 4)`` (internal) reordered so that, when there are more than ``max_boxes``, a box
    overlapping a better-ranked kept box by IoU >= ``iou`` moves behind the others (order otherwise
    kept): the cap then drops near-duplicates before distinct boxes. With ``N <= max_boxes`` nothing
    moves (the cap drops nothing, so the set is the same)."""
    if len(boxes) <= max_boxes:
        return boxes
    return boxes[_defer_order(np.asarray(boxes, np.float64), float(iou), int(max_boxes))]

