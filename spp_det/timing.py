"""Per-image time of each part of detection, for SPP-net (any scales) and the R-CNN mode.

Parts (seconds per image): ``proposals`` (selective search), ``conv`` (SPP: resize +
conv5 at every scale; R-CNN: the trunk and image-level pyramid on every warped
window), ``pool`` (SPP: projecting and pyramid-pooling the windows; R-CNN:
warping them), ``fc`` (fc6, fc7), ``svm`` (scoring), ``bbox_reg`` (regressing the
windows above the threshold), ``nms``.  ``total`` excludes proposals, as the
paper's Table 10 does.  Every timed section ends with a device synchronisation
on GPU.  The timed path computes exactly what :meth:`TrainedModels.detect`
computes with the default ``test.bbox_reg_order: before_nms`` (``tests/test_timing.py``
checks the detections are equal).

Models: a trained experiment's (:func:`models_from_workspace`), or the paper's
shapes with random weights (:func:`paper_shaped_models`: time does not depend
on the weights; the random SVMs are offset so that about 2 % of windows per
class pass the -1.5 threshold, as the trained demo's SVMs do: 1.7 %).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from .config import TestConfig
from .data.images import resize_short_side
from .detect import Detections, candidates, combine
from .features import WindowPooler
from .head import SPPHead, batched
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
    backbone: Backbone
    head: torch.nn.Module  # has fc7_features
    svm: LinearModels
    bbox_reg: Optional[LinearModels]
    test_cfg: TestConfig = field(default_factory=TestConfig)
    levels: Sequence[int] = (1, 2, 3, 6)
    device: torch.device = torch.device("cpu")
    batch: int = 2048


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paper_shaped_models(backbone: Backbone, num_classes: int = 20, fc_dim: int = 4096,
                        levels: Sequence[int] = (1, 2, 3, 6), seed: int = 0,
                        device: torch.device | str = "cpu") -> Models:
    """Random fc6/fc7/fc8 (``C * 50 -> fc_dim -> fc_dim -> num_classes + 1``), SVMs and box regressors
    of the paper's shapes; call :func:`calibrate_svms` on a real image's features before timing."""
    torch.manual_seed(seed)
    dim = backbone.out_channels * sum(n * n for n in levels)
    head = SPPHead(dim, num_classes, fc_dim).eval()
    rng = np.random.default_rng(seed)
    names = [f"class{c}" for c in range(num_classes)]
    svm = LinearModels(rng.standard_normal((num_classes, fc_dim, 1)) / np.sqrt(fc_dim), np.zeros((num_classes, 1)),
                       1.0, names, "svm_fc7")
    reg = LinearModels(rng.standard_normal((num_classes, dim, 4)) * 1e-4, np.zeros((num_classes, 4)), 1.0, names,
                       "bbox")
    dev = torch.device(device)
    return Models(backbone.to(dev), head.to(dev), svm, reg, levels=levels, device=dev)


def models_from_workspace(ws) -> Models:
    """The trained models of an experiment (its backbone, test-time fc, SVMs, box regressors)."""
    from .inference import TrainedModels
    tm = TrainedModels.from_workspace(ws)
    return Models(ws.detection_backbone.to(ws.device), tm.head, tm.svm_fc7, tm.bbox_reg, ws.cfg.test,
                  tuple(ws.cfg.model.spp_levels), ws.device, ws.cfg.features.batch_windows)


def calibrate_svms(models: Models, fc7: np.ndarray, pass_rate: float = 0.02) -> None:
    """Offset the SVM biases so that ``pass_rate`` of these windows score above the threshold."""
    raw = models.svm.scores(fc7) - models.svm.b[:, 0]
    models.svm.b = (models.test_cfg.score_thresh - np.quantile(raw, 1.0 - pass_rate, axis=0))[:, None].astype(np.float32)


def _fc(models: Models, pooled: torch.Tensor) -> np.ndarray:
    return batched(lambda x: models.head.fc7_features(x.to(models.device)).float().cpu(), pooled, models.batch).numpy()


def pool_windows(method: Method, models: Models, image_bgr: np.ndarray, boxes: np.ndarray,
                 times: dict) -> torch.Tensor:
    """Pooled features ``(N, D)`` of internal boxes ``(N, 4)``; adds ``conv`` and ``pool`` to ``times``."""
    dev, bb = models.device, models.backbone
    hw = image_bgr.shape[:2]
    if method.kind == "rcnn":
        pooler = RCNNPooler(bb, models.levels, method.rcnn_size, batch=64, device=dev)
        out = pooler.pool(image_bgr, boxes, hw)
        sync(dev)
        times["conv"] += pooler.last_times["conv"]
        times["pool"] += pooler.last_times["warp"]
        return out
    t0 = time.perf_counter()
    maps = [bb.conv5(resize_short_side(image_bgr, s), dev) for s in method.scales]
    sync(dev)
    t1 = time.perf_counter()
    out = WindowPooler(bb, method.scales, models.levels).pool(maps, boxes, hw)
    sync(dev)
    times["conv"] += t1 - t0
    times["pool"] += time.perf_counter() - t1
    return out


def time_image(method: Method, models: Models, image_bgr: np.ndarray, boxes: np.ndarray,
               rng: Optional[np.random.Generator] = None) -> tuple[dict, Detections]:
    """Seconds per part (no ``proposals``) and the detections of one image's windows ``(N, 4)``."""
    times = dict.fromkeys(PARTS[1:], 0.0)
    n_all = len(boxes)
    factor = 1.0
    if method.kind == "rcnn" and method.rcnn_windows and method.rcnn_windows < n_all:
        rng = rng or np.random.default_rng(0)
        boxes = boxes[np.sort(rng.choice(n_all, method.rcnn_windows, replace=False))]
        factor = n_all / len(boxes)
    with torch.no_grad():
        pooled = pool_windows(method, models, image_bgr, boxes, times)
        t = time.perf_counter()
        fc7 = _fc(models, pooled)
        sync(models.device)
        times["fc"] = time.perf_counter() - t
    t = time.perf_counter()
    scores = models.svm.scores(fc7)
    times["svm"] = time.perf_counter() - t
    pool5 = pooled.numpy() if models.bbox_reg is not None else None
    t = time.perf_counter()  # detect.postprocess (before_nms order), its two halves timed apart
    cands = candidates(boxes, scores, image_bgr.shape[:2], models.test_cfg, pool5, models.bbox_reg)
    times["bbox_reg"] = time.perf_counter() - t
    t = time.perf_counter()
    dets = combine([cands], scores.shape[1], models.test_cfg)
    times["nms"] = time.perf_counter() - t
    if factor != 1.0:  # every part scales with the number of windows
        times = {k: v * factor for k, v in times.items()}
    return times, dets


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

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(summary)
    parts = list(PARTS[1:]) + ["total"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
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
    from .io_utils import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


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
        with torch.no_grad():
            pooled = pool_windows(spp, models, images[0], windows[0], dict.fromkeys(PARTS, 0.0))
        calibrate_svms(models, _fc(models, pooled))
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
