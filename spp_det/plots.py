"""Pictures of an experiment's results (matplotlib figures outside pyplot; PNGs written atomically).

Conventions: each function takes plain numbers (arrays, lists, dicts, as the stages save them) and the
path of the PNG to write; none reads a work directory. The stages that own the data call them
(eval: precision-recall curves, stage-wise bars, proposal recall; finetune: training curves; svm:
hard-negative mining), and ``spp-det report`` (:mod:`spp_det.report`) draws those a run made before
they existed from the same saved data.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np


def figure(figsize: tuple[float, float]):
    """A matplotlib ``Figure`` outside pyplot: no global backend is switched and nothing needs closing,
    so drawing is safe in a notebook and in threads."""
    from matplotlib.figure import Figure
    return Figure(figsize=figsize)


def colours(n: int):
    """A colormap with ``n`` distinct colours (tab10, or tab20 past 10)."""
    import matplotlib
    return matplotlib.colormaps["tab20" if n > 10 else "tab10"]


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically."""
    from .io_utils import atomic_path
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray, float]], path: str | os.PathLike,
              title: str) -> None:
    """Precision against recall, one line per class, ``curves[name] = (recall (K,), precision (K,), AP)`` as
    :func:`spp_det.evaluation.voc.eval_class` gives them (detections in score order); the legend gives
    each class's AP. A class without test objects (NaN recall) is left out."""
    fig = figure((6.4, 4.8))
    ax = fig.subplots()
    cmap = colours(len(curves))
    for i, (name, (rec, prec, ap)) in enumerate(curves.items()):
        rec, prec = np.asarray(rec, np.float64), np.asarray(prec, np.float64)
        if np.isnan(ap):
            continue
        ax.plot(np.concatenate([[0.0], rec]), np.concatenate([[prec[0] if len(prec) else 0.0], prec]),
                color=cmap(i % cmap.N), lw=1.3, label=f"{name}  AP {100 * ap:.1f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower left", ncol=2 if len(curves) > 10 else 1)
    fig.tight_layout()
    save_figure(fig, path)


def stagewise_bars(rows: Sequence[tuple[str, float, float]], path: str | os.PathLike, title: str) -> None:
    """The paper's Table 9 as bars: ``rows`` = (variant title, VOC mAP, COCO AP), both in [0, 1] (COCO AP
    may be NaN), top to bottom in table order."""
    fig = figure((7.5, 0.55 * len(rows) + 1.2))
    ax = fig.subplots()
    y = np.arange(len(rows))[::-1]
    voc = [100 * r[1] for r in rows]
    coco = [100 * r[2] for r in rows]
    b1 = ax.barh(y + 0.2, voc, 0.4, label="VOC mAP", color="tab:blue")
    b2 = ax.barh(y - 0.2, np.nan_to_num(coco), 0.4, label="COCO AP", color="tab:orange")
    ax.bar_label(b1, labels=[f"{v:.2f}" for v in voc], fontsize=7, padding=2)
    ax.bar_label(b2, labels=["-" if np.isnan(v) else f"{v:.2f}" for v in coco], fontsize=7, padding=2)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.set_xlim(0, 110)
    ax.set_xlabel("%")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    save_figure(fig, path)


def finetune_curves(history: Sequence[Mapping[str, float]], path: str | os.PathLike, title: str,
                    best_iter: int | None = None) -> None:
    """Fine-tuning's log (``finetune/log.json`` ``history``: per snapshot ``iter``, ``train_loss``, ``lr``
    and, with a val split, ``val_loss`` and ``val_acc``): loss, learning rate and val accuracy against
    iteration; ``best_iter`` (the kept snapshot) marked."""
    its = [h["iter"] for h in history]
    has_val = any("val_loss" in h for h in history)
    fig = figure((11 if has_val else 7.5, 3.4))
    axes = fig.subplots(1, 3 if has_val else 2)
    ax = axes[0]
    ax.plot(its, [h["train_loss"] for h in history], "o-", ms=3, label="train loss")
    if has_val:
        ax.plot(its, [h.get("val_loss", np.nan) for h in history], "s-", ms=3, label="val loss")
    ax.set_ylabel("cross-entropy")
    ax.legend(fontsize=7)
    axes[1].plot(its, [h["lr"] for h in history], "-", color="tab:green")
    axes[1].set_ylabel("learning rate")
    if has_val:
        axes[2].plot(its, [100 * h.get("val_acc", np.nan) for h in history], "o-", ms=3, color="tab:red")
        axes[2].set_ylabel("val window accuracy (%)")
    for a in axes:
        a.set_xlabel("iteration")
        a.grid(alpha=0.3)
        if best_iter is not None:
            a.axvline(best_iter, color="gray", ls="--", lw=0.8)
    fig.suptitle(title + ("" if best_iter is None else f" (dashed: kept snapshot, iteration {best_iter})"),
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def mining_progress(info: Mapping[str, Mapping], path: str | os.PathLike, title: str) -> None:
    """Hard-negative mining per class: the cached negatives after each retrain against the training images
    seen (``info[class]["mining"]`` = ``[[images seen, negatives cached], ...]``, as
    :func:`spp_det.svm.train_svms` records them)."""
    fig = figure((6.4, 4.2))
    ax = fig.subplots()
    cmap = colours(len(info))
    for i, (name, d) in enumerate(info.items()):
        pts = np.asarray(d.get("mining", []), np.float64).reshape(-1, 2)
        if len(pts):
            ax.plot(pts[:, 0], pts[:, 1], "o-", ms=2.5, lw=1.1, color=cmap(i % cmap.N),
                    label=f"{name} ({d['pos']} pos, {int(pts[-1, 1])} neg, {d['retrains']} retrains)")
    ax.set_xlabel("training images seen")
    ax.set_ylabel("hard negatives cached (after eviction)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=2 if len(info) > 10 else 1)
    fig.tight_layout()
    save_figure(fig, path)
