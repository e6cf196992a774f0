"""Per-window features for the SVMs and box regressors, and their norm scaling.

``kind="pool5"``: the SPP-pooled conv map (e.g. 12,800-d).  ``kind="fc7"``: fc7
after ReLU of the fine-tuned head (eval mode).  Features are multiplied by
``target / mean L2 norm`` (20 by default), the mean measured once on
``norm.images`` training images x ``norm.boxes_per_image`` windows with a fixed
seed (R-CNN's ``rcnn_feature_stats``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .data.voc import ImageRecord
from .config import NormConfig
from .devices import on_device
from .features import InputSource, WindowSource
from .head import SPPHead, batched
from .io_utils import load_json, save_json


class WindowFeatures:
    """Computes unscaled features of windows from a conv map."""

    def __init__(self, pooler: WindowSource, kind: str, head: Optional[SPPHead] = None,
                 device: torch.device | str = "cpu", batch: int = 2048):
        if kind not in ("pool5", "fc7"):
            raise ValueError(f"feature kind must be 'pool5' or 'fc7', not {kind!r}")
        if kind == "fc7" and head is None:
            raise ValueError("fc7 features need the fine-tuned head")
        self.pooler, self.kind, self.device, self.batch = pooler, kind, torch.device(device), batch
        self.head = head.to(self.device).eval() if head is not None else None

    def from_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        if self.kind == "pool5":
            return pooled
        return batched(lambda x: self.head.fc7_features(x.to(self.device)).cpu(), pooled, self.batch)

    def __call__(self, maps: Sequence[torch.Tensor], boxes: np.ndarray, orig_hw: tuple[int, int]) -> np.ndarray:
        """float32 ``(N, D)`` for internal boxes ``(N, 4)`` of an image of size ``orig_hw``;
        ``maps``: the image's conv maps, one per scale (:meth:`Conv5Cache.load`)."""
        pooled = self.pooler.pool(on_device(maps, self.device), boxes, orig_hw)
        return self.from_pooled(pooled).cpu().numpy()


@dataclass
class TrainingWindows:
    """What the SVMs and box regressors train on: the training split's ``records``, each record's
    proposals (``proposals(record)``: internal ``(N, 4)``), the per-image inputs features are pooled
    from (``inputs.load(record)``: conv maps, or the image in R-CNN mode), and whether difficult
    objects are training positives. The stage table (:mod:`spp_det.stages`) builds it from the config."""

    split: str
    records: Sequence[ImageRecord]
    proposals: Callable[[ImageRecord], np.ndarray]
    inputs: InputSource
    use_difficult: bool = False

    def windows(self, record: ImageRecord) -> tuple[np.ndarray, int]:
        """GT boxes then proposals of ``record`` and the number of GT rows (:func:`windows_of`)."""
        return windows_of(record, self.proposals(record), self.use_difficult)


def windows_of(record: ImageRecord, proposals: np.ndarray, use_difficult: bool) -> tuple[np.ndarray, int]:
    """GT boxes followed by proposals (internal ``(N, 4)``) and the number of GT rows."""
    gt, _ = record.gt_for_training(use_difficult)
    return np.concatenate([gt, proposals]).astype(np.float32), len(gt)


def feature_scale(feats: WindowFeatures, windows: TrainingWindows, norm: NormConfig, seed: int, path: Path,
                  progress: bool = True) -> float:
    """``norm.target / mean L2 norm`` of ``feats`` over a seeded sample of ``windows`` (``norm.images``
    images x ``norm.boxes_per_image`` windows), read from ``path`` if it exists, else measured and saved
    there. The caller names ``path`` by everything the number depends on (:func:`spp_det.stages.norm_path`:
    for fc7, the bytes of the head's weights), so stages that share a feature kind (pool5: the baseline
    SVMs and the box regressors) measure it once.
    """
    if path.is_file():
        return float(load_json(path)["scale"])
    records = windows.records
    rng = np.random.default_rng([seed, 17])
    chosen = rng.choice(len(records), size=min(norm.images, len(records)), replace=False)
    norms = []
    for i in tqdm(chosen, desc=f"{feats.kind} norm", unit="img", disable=not progress, leave=False):
        r = records[i]
        boxes, _ = windows.windows(r)
        pick = rng.choice(len(boxes), size=min(norm.boxes_per_image, len(boxes)), replace=False)
        x = feats(windows.inputs.load(r), boxes[pick], (r.height, r.width))
        norms.append(np.linalg.norm(x, axis=1))
    mean = float(np.concatenate(norms).mean())
    if not np.isfinite(mean) or mean <= 0:
        raise ValueError(f"mean {feats.kind} feature norm is {mean}: features are all zero (dead network?)")
    save_json({"scale": norm.target / mean, "mean_norm": mean, "windows": int(sum(len(x) for x in norms))}, path)
    return norm.target / mean
