"""Proposal recall: the fraction of (non-difficult) GT boxes covered at an IoU."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from spp_det.boxes import box_iou
from spp_det.data.voc import ImageRecord

DEFAULT_COUNTS = (10, 50, 100, 200, 300, 500, 1000, 2000)


def proposal_recall(records: Sequence[ImageRecord], proposals: Mapping[str, np.ndarray],
                    counts: Sequence[int] = DEFAULT_COUNTS,
                    thresholds: Sequence[float] = (0.5, 0.7)) -> dict:
    """Recall of the top-``k`` proposals per image for each ``k`` in ``counts``.

    Returns ``{"counts": [...], "recall": {thr: [...]}, "abo": [...], "num_gt": n, "mean_boxes": m}``:
    ``abo`` is the average best overlap (mean over GT boxes of the best IoU among the top ``k``;
    Uijlings et al.'s measure). IoU uses the +1 pixel rule; difficult GT boxes are left out.
    """
    best = {k: [] for k in counts}
    num_boxes = []
    for r in records:
        if r.image_id not in proposals:
            raise KeyError(f"no proposals for image {r.image_id}")
        props = proposals[r.image_id]
        num_boxes.append(len(props))
        gt = r.boxes[~r.difficult]
        if len(gt) == 0:
            continue
        iou = box_iou(gt, props)  # (G, N)
        for k in counts:
            sub = iou[:, :k]
            best[k].append(sub.max(axis=1) if sub.shape[1] else np.zeros(len(gt)))
    num_gt = sum(len(b) for b in best[counts[0]]) if counts else 0
    recall = {}
    for t in thresholds:
        recall[float(t)] = [float((np.concatenate(best[k]) >= t).mean()) if num_gt else 0.0 for k in counts]
    abo = [float(np.concatenate(best[k]).mean()) if num_gt else 0.0 for k in counts]
    return {"counts": list(counts), "recall": recall, "abo": abo, "num_gt": int(num_gt),
            "mean_boxes": float(np.mean(num_boxes)) if num_boxes else 0.0}


def format_recall_table(result: dict) -> str:
    lines = [f"GT boxes: {result['num_gt']}   mean proposals/image: {result['mean_boxes']:.0f}",
             "  #props " + "".join(f"  R@{t:.1f}" for t in result["recall"]) + "    ABO"]
    for i, k in enumerate(result["counts"]):
        lines.append(f"  {k:6d} " + "".join(f"  {result['recall'][t][i]:.3f}" for t in result["recall"])
                     + f"  {result['abo'][i]:.3f}")
    return "\n".join(lines)


def plot_recall(results: Mapping[str, dict], path, title: str = "") -> None:
    """Recall at each IoU threshold and ABO against the number of proposals per image, one line per
    method (``results``: label -> :func:`proposal_recall` result), written as a PNG."""
    from spp_det.plots import figure, save_figure
    thresholds = list(next(iter(results.values()))["recall"])
    fig = figure((4.2 * (len(thresholds) + 1), 3.6))
    axes = fig.subplots(1, len(thresholds) + 1)
    for label, res in results.items():
        for ax, t in zip(axes, thresholds):
            ax.plot(res["counts"], res["recall"][t], marker="o", ms=3, label=label)
        axes[-1].plot(res["counts"], res["abo"], marker="o", ms=3, label=label)
    for ax, name in zip(axes, [f"recall at IoU {t:g}" for t in thresholds] + ["average best overlap"]):
        ax.set_xscale("log")
        ax.set_xlabel("proposals per image")
        ax.set_title(name)
        ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
