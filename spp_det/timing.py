"""Per-image time of each part of detection, for SPP-net (any scales) and the R-CNN mode.

Parts (seconds per image): ``proposals`` (selective search), ``conv`` (SPP: resize +
conv5 at every scale; R-CNN: the trunk and image-level pyramid on every warped
window), ``pool`` (SPP: projecting and pyramid-pooling the windows; R-CNN:
warping them), ``fc`` (fc6, fc7), ``svm`` (scoring), ``bbox_reg`` (regressing the
windows above the threshold), ``nms``.  ``total`` excludes proposals, as the
paper's Table 10 does.  Every timed section ends with a device synchronisation
on GPU.  Everything after the conv maps is timed through
:meth:`spp_det.inference.TrainedModels.detect` itself (its ``times`` hook), the code the
test stage runs; ``tests/test_timing.py`` checks the detections equal the test stage's.

Models: a trained experiment's (:func:`models_from_workspace`), or the paper's
shapes with random weights (:func:`paper_shaped_models`: time does not depend
on the weights; the random SVMs are offset so that about 2 % of windows per
class pass the -1.5 threshold, as the trained demo's SVMs do: 1.7 %).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .config import TestConfig
from .data.images import resize_short_side
from .detect import Detections
from .features import WindowPooler
from .head import SPPHead, batched
from .devices import sync
from .inference import TrainedModels
from .linear import LinearModels
from .models import Backbone
from .rcnn import RCNNPooler

PARTS = ("proposals", "conv", "pool", "fc", "svm", "bbox_reg", "nms")


@dataclass
class Method:
    """What to time: ``kind`` "spp" (pooled at ``scales``) or "rcnn" (``rcnn_size`` input, or the
    backbone's); ``rcnn_windows``: time R-CNN on this many windows per image and scale the per-window
    parts up to all windows (``None``: all)."""

    name: str
    kind: str
    scales: Sequence[int] = (688,)
    rcnn_size: Optional[int] = None
    rcnn_windows: Optional[int] = None


@dataclass
class Models:
    """What is timed: the trunk (``conv``) and a detector (:class:`spp_det.inference.TrainedModels`) whose
    window source is swapped for each :class:`Method`; its ``detect`` is the path that is timed."""

    backbone: Backbone
    detector: TrainedModels
    levels: Sequence[int] = (1, 2, 3, 6)

    @property
    def device(self) -> torch.device:
        return self.detector.device

    def for_method(self, method: Method) -> TrainedModels:
        """The detector with the window source of ``method`` (SPP at its scales, or R-CNN warping)."""
        if method.kind == "rcnn":
            pooler = RCNNPooler(self.backbone, self.levels, method.rcnn_size, batch=64, device=self.device)
        else:
            pooler = WindowPooler(self.backbone, method.scales, self.levels)
        return dataclasses.replace(self.detector, pooler=pooler)


def paper_shaped_models(backbone: Backbone, num_classes: int = 20, fc_dim: int = 4096,
                        levels: Sequence[int] = (1, 2, 3, 6), seed: int = 0,
                        device: torch.device | str = "cpu") -> Models:
    """Random fc6/fc7/fc8 (``C * 50 -> fc_dim -> fc_dim -> num_classes + 1``), SVMs and box regressors
    of the paper's shapes; call :func:`calibrate_svms` on a real image's features before timing."""
    torch.manual_seed(seed)
    dim = backbone.out_channels * sum(n * n for n in levels)
    dev = torch.device(device)
    head = SPPHead(dim, num_classes, fc_dim).eval().to(dev)
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in range(num_classes)]
    svm = LinearModels(rng.standard_normal((num_classes, fc_dim, 1)) / np.sqrt(fc_dim), np.zeros((num_classes, 1)),
                       1.0, names, "svm_fc7")
    reg = LinearModels(rng.standard_normal((num_classes, dim, 4)) * 1e-4, np.zeros((num_classes, 4)), 1.0, names,
                       "bbox")
    backbone = backbone.to(dev)
    detector = TrainedModels(WindowPooler(backbone, [688], levels), head, svm, TestConfig(), num_classes,
                             bbox_reg=reg, device=dev)
    return Models(backbone, detector, tuple(levels))


def models_from_workspace(ws) -> Models:
    """The trained models of an experiment (its backbone, test-time fc, SVMs, box regressors)."""
    return Models(ws.models.detection_backbone.to(ws.models.device), TrainedModels.from_workspace(ws),
                  tuple(ws.cfg.model.spp_levels))


def calibrate_svms(models: Models, fc7: np.ndarray, pass_rate: float = 0.02) -> None:
    """Offset the SVM biases so that ``pass_rate`` of these windows score above the threshold."""
    svm, cfg = models.detector.svm_fc7, models.detector.test_cfg
    raw = svm.scores(fc7) - svm.b[:, 0]
    svm.b = (cfg.score_thresh - np.quantile(raw, 1.0 - pass_rate, axis=0))[:, None].astype(np.float32)


def fc7_features(method: Method, models: Models, image_bgr: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """fc7 ``(N, fc_dim)`` of windows ``(N, 4)`` through ``method``'s window source (for calibration)."""
    det = models.for_method(method)
    with torch.no_grad():
        inputs = image_bgr if method.kind == "rcnn" else spp_maps(method, models, image_bgr)
        pooled = det.pooler.pool(inputs, boxes, image_bgr.shape[:2])
        return batched(lambda x: det.head.fc7_features(x.to(det.device)).cpu(), pooled, det.batch).numpy()


def spp_maps(method: Method, models: Models, image_bgr: np.ndarray) -> list[torch.Tensor]:
    """The conv maps of an image at ``method``'s scales (what the SPP window source pools from)."""
    return [models.backbone.conv5(resize_short_side(image_bgr, s), models.device) for s in method.scales]


def time_image(method: Method, models: Models, image_bgr: np.ndarray, boxes: np.ndarray,
               rng: Optional[np.random.Generator] = None) -> tuple[dict, Detections]:
    """Seconds per part (no ``proposals``) and the detections (the detector's main variant) of one image's
    windows ``(N, 4)``: the conv maps here, the rest by :meth:`TrainedModels.detect`."""
    times = dict.fromkeys(PARTS[1:], 0.0)
    n_all = len(boxes)
    factor = 1.0
    if method.kind == "rcnn" and method.rcnn_windows and method.rcnn_windows < n_all:
        rng = rng or np.random.default_rng(0)
        boxes = boxes[np.sort(rng.choice(n_all, method.rcnn_windows, replace=False))]
        factor = n_all / len(boxes)
    det = models.for_method(method)
    with torch.no_grad():
        if method.kind == "rcnn":
            inputs = image_bgr
        else:
            sync(models.device)
            t = time.perf_counter()
            inputs = spp_maps(method, models, image_bgr)
            sync(models.device)
            times["conv"] = time.perf_counter() - t
        dets = det.detect(inputs, boxes, image_bgr.shape[:2], variants=[det.main_variant], times=times)
    if method.kind == "rcnn":  # R-CNN's "pool" ran the trunk on every canvas: that part is conv
        times["conv"] += det.pooler.last_times["conv"]
        times["pool"] -= det.pooler.last_times["conv"]
    if factor != 1.0:  # every part scales with the number of windows
        times = {k: v * factor for k, v in times.items()}
    return times, dets[det.main_variant]


def summarize(per_image: dict[str, list[dict]], proposals: list[float]) -> dict:
    """Mean seconds per part and method, ``total`` (no proposals), speed-ups against ``R-CNN``."""
    out = {}
    for name, rows in per_image.items():
        mean = {k: float(np.mean([r[k] for r in rows])) for k in PARTS[1:]}
        mean["total"] = float(sum(mean[k] for k in PARTS[1:]))
        mean["proposals"] = float(np.mean(proposals))
        out[name] = mean
    ref = next((n for n in out if n.lower().startswith("r-cnn")), None)
    for name, m in out.items():
        m["speedup_total"] = out[ref]["total"] / m["total"] if ref else None
        m["speedup_conv"] = out[ref]["conv"] / m["conv"] if ref else None
    return out


def format_table(summary: dict, title: str) -> str:
    cols = ["conv", "pool", "fc", "svm", "bbox_reg", "nms", "total"]
    lines = [title, f"  {'method':<18}" + "".join(f"{c:>10}" for c in cols) + f"{'speed-up':>10}{'conv x':>9}"]
    for name, m in summary.items():
        sp = f"{m['speedup_total']:9.1f}x" if m["speedup_total"] else f"{'-':>10}"
        sc = f"{m['speedup_conv']:8.1f}x" if m["speedup_conv"] else f"{'-':>9}"
        lines.append(f"  {name:<18}" + "".join(f"{m[c]:10.4f}" for c in cols) + sp + sc)
    prop = next(iter(summary.values()))["proposals"]
    lines.append(f"  (seconds per image; selective search, not in the totals: {prop:.3f} s; 'pool' is the window "
                 "warping in R-CNN mode)")
    return "\n".join(lines)


def bar_chart(summary: dict, path: str, title: str) -> None:
    """Grouped bars: seconds per image of each part and the total, one bar per method (log scale,
    so R-CNN's conv and SPP's pooling both stay readable)."""
    import textwrap

    from .plots import figure, save_figure
    names = list(summary)
    parts = list(PARTS[1:]) + ["total"]
    fig = figure((9, 4.5))
    ax = fig.subplots()
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        vals = [max(summary[n][p], 1e-5) for p in parts]
        bars = ax.bar(np.arange(len(parts)) + (i - (len(names) - 1) / 2) * width, vals, width, label=n)
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in vals], fontsize=6, rotation=90, padding=2)
    ax.set_xticks(np.arange(len(parts)), parts)
    ax.set_yscale("log")
    ax.set_ylim(top=ax.get_ylim()[1] * 20)
    ax.set_ylabel("seconds per image (log scale)")
    ax.set_title("\n".join(textwrap.wrap(title, 110)), fontsize=7)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def run_timing(image_paths: Sequence[str], methods: Sequence[Method], models: Models, search_params,
               calibrate: bool = False, progress: bool = True) -> tuple[dict, dict]:
    """Time every method on every image (same selective-search windows for all), after a warm-up
    pass on the first image; returns (summary, raw per-image rows)."""
    from tqdm import tqdm

    from proposals.selective_search import selective_search

    from .data.images import load_image
    if not image_paths:
        raise ValueError("no images to time")
    images, windows, t_prop = [], [], []
    for p in tqdm(image_paths, desc="proposals", unit="img", disable=not progress):
        img = load_image(p)
        t = time.perf_counter()
        windows.append(selective_search(img, search_params))
        t_prop.append(time.perf_counter() - t)
        images.append(img)
    if calibrate:  # random SVMs: offset on the first image's SPP features
        spp = next((m for m in methods if m.kind == "spp"), Method("cal", "spp", (688,)))
        calibrate_svms(models, fc7_features(spp, models, images[0], windows[0]))
    for m in methods:  # warm-up: first-call compilation, allocator growth, oneDNN kernel selection
        n = min(len(windows[0]), 128) if m.kind == "rcnn" else len(windows[0])
        time_image(m, models, images[0], windows[0][:n])
    rows: dict[str, list[dict]] = {m.name: [] for m in methods}
    for m in methods:
        rng = np.random.default_rng(0)
        for img, boxes in tqdm(list(zip(images, windows)), desc=m.name, unit="img", disable=not progress):
            times, dets = time_image(m, models, img, boxes, rng)
            rows[m.name].append({**times, "windows": len(boxes), "detections": len(dets)})
    summary = summarize(rows, t_prop)
    for m in methods:
        summary[m.name]["windows_per_image"] = float(np.mean([r["windows"] for r in rows[m.name]]))
        summary[m.name]["rcnn_windows_timed"] = m.rcnn_windows if m.kind == "rcnn" else None
    return summary, {"per_image": rows, "proposals": t_prop, "images": [str(p) for p in image_paths]}
