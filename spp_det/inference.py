"""Test-time detection: score every window with the trained SVMs, regress, NMS; comp4 files.

Variants written side by side: :data:`spp_det.variants.VARIANTS` (the rows of the paper's
Table 9), those the trained models allow.

Output: ``<workdir>/detections/<split>/<variant>/comp4_det_<split>_<cls>.txt``
(VOC 1-based boxes).
"""
from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .boxes import internal_to_voc
from .config import TestConfig
from .detect import Detections, candidates, combine, postprocess
from .evaluation.voc import ClassDetections, comp4_path, write_comp4
from .devices import on_device, sync
from .features import InputSource, WindowSource
from .head import FastFc, SPPHead, batched, test_time_fc
from .linear import LinearModels
from .variants import VARIANT, VARIANTS
from .workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class TrainedModels:
    """Everything needed to turn a conv map and windows into detections."""

    pooler: WindowSource
    head: "SPPHead | FastFc"  # fc6/fc7 as the test config asks (SVD, bf16)
    svm_fc7: LinearModels
    test_cfg: TestConfig
    num_classes: int
    svm_pool5: Optional[LinearModels] = None
    bbox_reg: Optional[LinearModels] = None
    device: torch.device = torch.device("cpu")
    batch: int = 2048

    @classmethod
    def from_workspace(cls, ws: Workspace) -> "TrainedModels":
        from .stages import fine_tuned_head
        c = ws.cfg
        pool5, reg = ws.layout.svm("pool5"), ws.layout.bbox_reg
        head = test_time_fc(fine_tuned_head(ws), c.test.fc_svd, c.test.fc_dtype).to(ws.models.device)
        return cls(pooler=ws.models.pooler(), head=head, svm_fc7=LinearModels.load(ws.layout.svm("fc7")),
                   test_cfg=c.test, num_classes=len(ws.data.classes),
                   svm_pool5=LinearModels.load(pool5) if c.svm.pool5_baseline and pool5.is_file() else None,
                   bbox_reg=LinearModels.load(reg) if c.bbox_reg.enabled and reg.is_file() else None,
                   device=ws.models.device, batch=c.features.batch_windows)

    @property
    def main_variant(self) -> str:
        return self.variants()[-1]

    @torch.no_grad()
    def detect(self, maps: Sequence[torch.Tensor], boxes: np.ndarray, image_hw: tuple[int, int],
               nms: bool = True, base_maps: Optional[Sequence[torch.Tensor]] = None,
               variants: Optional[Sequence[str]] = None, times: Optional[dict] = None) -> dict[str, Detections]:
        """Detections per variant for windows ``boxes`` (internal ``(N, 4)``) of one image;
        ``maps``: its conv maps, one per scale of the pooler (each window pooled at its chosen scale);
        in R-CNN mode the BGR image itself (:class:`spp_det.rcnn.RCNNPooler`).  With conv
        fine-tuning ``maps`` are the fine-tuned trunk's and ``base_maps`` the ImageNet trunk's, which
        the no-fine-tuning ``pool5`` variant was trained on (default: ``maps``).

        ``nms=False`` gives the per-class :func:`candidates` instead (thresholded,
        regressed when the order is ``before_nms``): what model combination unites.
        ``variants``: only these (default: all of :meth:`variants`).  ``times``: adds the seconds of
        each part (``pool``, ``fc``, ``svm``, ``bbox_reg``, ``nms``) to it, each ended by a device
        synchronisation; :mod:`spp_det.timing` times detection through this method.
        """
        todo = list(variants or self.variants())
        if len(boxes) == 0:
            empty = Detections.concat([])
            return {v: empty for v in todo}
        clock = _Clock(times, self.device)
        scores, pool5 = self.window_scores(maps, boxes, image_hw, base_maps, todo, clock)
        out = {}
        for v in todo:
            sc, reg = scores[VARIANT[v].svm], self.bbox_reg if VARIANT[v].bbox else None
            if nms and reg is not None and self.test_cfg.bbox_reg_order == "after_nms":
                with clock("nms"):  # the released code's order: NMS the raw windows, then regress
                    out[v] = postprocess(boxes, sc, image_hw, self.test_cfg, pool5, reg)
                continue
            with clock("bbox_reg"):  # thresholded, regressed, clipped
                out[v] = candidates(boxes, sc, image_hw, self.test_cfg, pool5, reg)
            if nms:  # postprocess's before_nms path, its two halves timed apart
                with clock("nms"):
                    out[v] = combine([out[v]], self.test_cfg, self.device)
        return out

    @torch.no_grad()
    def window_scores(self, maps: Sequence[torch.Tensor], boxes: np.ndarray, image_hw: tuple[int, int],
                      base_maps: Optional[Sequence[torch.Tensor]] = None, variants: Optional[Sequence[str]] = None,
                      clock: Optional["_Clock"] = None) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """Every window's class scores before any threshold: ``({"fc7"|"pool5": (N, C)}, pool5)``, the
        SVMs ``variants`` need (default: all), and the windows' unscaled pooled features ``(N, D)``
        (on the models' device) that the box regressors read.  Arguments as in :meth:`detect`."""
        todo = list(variants or self.variants())
        clock = clock or _Clock(None, self.device)
        with clock("pool"):  # on a GPU everything up to the scores stays there (cached maps are moved)
            pooled = self.pooler.pool(on_device(maps, self.device), boxes, image_hw)
        with clock("fc"):
            fc7 = batched(lambda x: self.head.fc7_features(x.to(self.device)), pooled, self.batch)
        pool5 = pooled  # a tensor: LinearModels score it where it lies
        with clock("svm"):
            scores = {}
            if any(VARIANT[v].svm == "fc7" for v in todo):
                scores["fc7"] = self.svm_fc7.scores(fc7)
            if "pool5" in todo:
                base = pool5 if base_maps is None else self.pooler.pool(on_device(base_maps, self.device), boxes,
                                                                         image_hw)
                scores["pool5"] = self.svm_pool5.scores(base)
        return scores, pool5

    def variants(self) -> list[str]:
        """The names of the :data:`VARIANTS` these models give, in table order."""
        return [v.name for v in VARIANTS if (v.svm != "pool5" or self.svm_pool5 is not None)
                and (not v.bbox or self.bbox_reg is not None)]


class _Clock:
    """``with clock(part):`` adds the seconds of the block to ``times[part]`` (device synchronised at
    both ends on GPU); does nothing when ``times`` is None."""

    def __init__(self, times: Optional[dict], device: torch.device):
        self.times, self.device = times, device

    @contextlib.contextmanager
    def __call__(self, part: str):
        if self.times is None:
            yield
            return
        sync(self.device)
        t = time.perf_counter()
        yield
        sync(self.device)
        self.times[part] = self.times.get(part, 0.0) + time.perf_counter() - t


def detect_split(models: TrainedModels, records: Sequence, proposals, inputs: InputSource,
                 base_inputs: Optional[InputSource] = None, progress: bool = True) -> dict[str, list[tuple[str, Detections]]]:
    """Detect on every record: ``{variant: [(image_id, detections), ...]}``. ``proposals(record)``: its
    windows (internal ``(N, 4)``); ``inputs``: what the detector pools from; ``base_inputs``: the
    ImageNet trunk's maps for the ``pool5`` variant when conv fine-tuning changed ``inputs``."""
    collected: dict[str, list[tuple[str, Detections]]] = {v: [] for v in models.variants()}
    t0 = time.perf_counter()
    for r in tqdm(records, desc="test", unit="img", disable=not progress):
        res = models.detect(inputs.load(r), proposals(r), (r.height, r.width),
                            base_maps=base_inputs.load(r) if base_inputs is not None else None)
        for v, d in res.items():
            collected[v].append((r.image_id, d))
    dt = time.perf_counter() - t0
    log.info("test: %d images in %.1f s (%.3f s/img, conv5 from cache)", len(records), dt, dt / max(1, len(records)))
    return collected


def write_detections(out_dir: Path, split: str, classes: Sequence[str],
                     per_image: Sequence[tuple[str, Detections]]) -> None:
    """comp4 files (one per class, VOC 1-based boxes) of ``[(image_id, detections), ...]``."""
    for c, name in enumerate(classes):
        ids, scores, boxes = [], [], []
        for image_id, d in per_image:
            m = d.labels == c
            ids += [image_id] * int(m.sum())
            scores.append(d.scores[m])
            boxes.append(internal_to_voc(d.boxes[m]))
        write_comp4(comp4_path(out_dir, split, name),
                    ClassDetections(np.asarray(ids, dtype=object), np.concatenate(scores) if scores else np.zeros(0),
                                    np.concatenate(boxes) if boxes else np.zeros((0, 4))))
