"""An experiment's work directory: paths, datasets, caches and stage hashes.

Paths: :class:`spp_det.layout.Layout` (``ws.layout``), the one statement of where files live.

Stage keys, manifests and ``--force`` come from the stage table in
:mod:`spp_det.stages`: changing e.g. ``svm.C`` reruns the SVMs and everything
after them but not conv5 or fine-tuning; editing a test annotation reruns only
the evaluation.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .config import Config, FinetuneConfig
from .data.coco import COCODataset
from .data.voc import DatasetError, DetectionDataset, ImageRecord, VOCDataset
from .features import Conv5Cache, InputSource, WindowPooler, WindowSource, resolve_device
from .head import fc_init_mode
from .io_utils import file_sha256, stable_hash
from .layout import Layout
from .models import Backbone, build_backbone, packaged_weights
from .rcnn import ImageInputs, RCNNPooler


class Workspace:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.layout = Layout.from_config(cfg)
        self.root = self.layout.root
        self._datasets: dict[str, DetectionDataset] = {}
        self._proposals: dict[str, dict[str, np.ndarray]] = {}
        self._file_ids: dict[tuple, str] = {}
        self._data_keys: dict[tuple[str, str], str] = {}

    # ------------------------------------------------------------------ data
    def dataset(self, split: str) -> DetectionDataset:
        """The validated records of ``split`` (VOC layout or COCO json, per ``dataset.format``)."""
        if split not in self._datasets:
            d = self.cfg.dataset
            if d.format == "coco":
                if split not in d.coco_files:
                    raise DatasetError(f"dataset.coco_files has no json for split {split!r} "
                                       f"(has: {', '.join(d.coco_files) or 'none'})")
                self._datasets[split] = COCODataset(d.coco_files[split], d.root, d.classes, split,
                                                    d.coco_skip_unknown)
            else:
                self._datasets[split] = VOCDataset(d.root, split, d.classes)
        return self._datasets[split]

    @property
    def classes(self) -> list[str]:
        return list(self.cfg.dataset.classes)

    @property
    def finetune_split(self) -> str:
        return self.cfg.finetune.split or self.cfg.dataset.train_split

    def proposal_splits(self) -> list[str]:
        splits = [self.finetune_split, self.cfg.dataset.train_split, self.cfg.finetune.val_split,
                  self.cfg.dataset.test_split]
        return list(dict.fromkeys(s for s in splits if s))

    def search_params(self):
        """Selective-search settings of this config (:class:`proposals.selective_search.SearchParams`)."""
        from proposals.selective_search import SearchParams
        p = self.cfg.proposals
        return SearchParams(p.mode, p.base_k, p.inc_k, p.sigma, p.max_boxes, p.min_size, p.max_image_side)

    def proposals_path(self, split: str) -> Path:
        return self.layout.proposals(split)

    def proposals(self, split: str) -> dict[str, np.ndarray]:
        if split not in self._proposals:
            from proposals.cache import load_proposals
            self._proposals[split] = load_proposals(self.proposals_path(split), self.proposals_hash(split))
        return self._proposals[split]

    def boxes_for(self, record: ImageRecord, split: str) -> np.ndarray:
        """Proposals of a record (mirrored for a flipped record), internal boxes ``(N, 4)``."""
        props = self.proposals(split).get(record.image_id)
        if props is None:
            raise KeyError(f"no proposals for image {record.image_id} in {self.proposals_path(split)}")
        if record.flipped:
            from .boxes import flip_boxes
            return flip_boxes(props, record.width)
        return props

    # ------------------------------------------------------------------ models
    @functools.cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.features.device)

    @property
    def pretrained_path(self) -> Path:
        """Where the ``pretrain`` stage writes the classification net (``backbone.weights: pretrain``)."""
        return self.layout.pretrained_model

    def weights_arg(self) -> Optional[str]:
        w = self.cfg.backbone.weights
        return str(self.pretrained_path) if w == "pretrain" else w

    @functools.cached_property
    def backbone(self) -> Backbone:
        w = self.weights_arg()
        if self.cfg.backbone.weights == "pretrain" and not self.pretrained_path.is_file():
            raise FileNotFoundError(f"{self.pretrained_path}: not found; run the pretrain stage first "
                                    "(tools/pretrain_cls.py --config ...)")
        return build_backbone(self.cfg.backbone.name, w)

    @functools.cached_property
    def finetune_cfg(self) -> FinetuneConfig:
        """``finetune`` with its recipe resolved (``auto``: ``paper`` when fc6/fc7 start from the backbone's
        pretrained classifier, else ``random_fc``) and the schedule fields it leaves null filled in."""
        ft = self.cfg.finetune
        recipe = ft.recipe
        if recipe == "auto":
            bb, m = self.backbone, self.cfg.model
            dim = bb.out_channels * sum(n * n for n in m.spp_levels)
            pretrained = fc_init_mode(bb.fc_init, dim, m.fc_dim, m.spp_levels, bb.out_channels) is not None
            recipe = "paper" if pretrained else "random_fc"
        return ft.resolved(recipe)

    @property
    def scales(self) -> list[int]:
        return [int(x) for x in self.cfg.model.scales]

    @property
    def rcnn_mode(self) -> bool:
        return self.cfg.mode == "rcnn"

    def pooler(self) -> WindowSource:
        """What turns one image's inputs (:meth:`window_inputs`) and windows into ``(N, dim)`` features:
        pooling from conv5 (SPP mode), or warping and running the trunk per window (R-CNN mode)."""
        m = self.cfg.model
        if self.rcnn_mode:
            r = self.cfg.rcnn
            return RCNNPooler(self.backbone.to(self.device), m.spp_levels, r.input_size, r.context, r.batch,
                              self.device)
        return WindowPooler(self.backbone, self.scales, m.spp_levels, m.projection, m.projection_offset,
                            m.scale_select)

    def window_inputs(self, tuned: bool = False) -> InputSource:
        """Per-image inputs of :meth:`pooler`: ``load(record)`` gives the cached conv maps (SPP mode;
        of the conv-fine-tuned trunk if ``tuned``) or the image itself (R-CNN mode)."""
        return ImageInputs() if self.rcnn_mode else self.conv5_cache(tuned)

    def detection_inputs(self) -> InputSource:
        """What the fine-tuned detector pools from (SVMs on fc7, box regression, test): the maps of the
        conv-fine-tuned trunk when ``finetune.conv_layers`` > 0, else the ImageNet trunk's."""
        return self.window_inputs(self.conv_tuned)

    @property
    def conv_tuned(self) -> bool:
        """True when fine-tuning trains conv layers too (``finetune.conv_layers``): the later stages then
        read conv5 maps recomputed with the fine-tuned trunk (:meth:`conv5_cache` ``(tuned=True)``)."""
        return self.cfg.finetune.enabled and self.cfg.finetune.conv_layers > 0

    @property
    def tuned_trunk_path(self) -> Path:
        return self.layout.tuned_trunk

    @functools.cached_property
    def detection_backbone(self) -> Backbone:
        """The backbone of the trained detector: :attr:`backbone` with the conv-fine-tuned trunk loaded when
        ``finetune.conv_layers`` > 0 (a separate copy: :attr:`backbone` stays the ImageNet one)."""
        if not self.conv_tuned:
            return self.backbone
        if not self.tuned_trunk_path.is_file():
            raise FileNotFoundError(f"{self.tuned_trunk_path}: not found; run the finetune stage first")
        bb = build_backbone(self.cfg.backbone.name, self.weights_arg())
        bb.trunk.load_state_dict(torch.load(self.tuned_trunk_path, map_location="cpu", weights_only=True))
        return bb

    @property
    def conv5_root(self) -> Path:
        return self.layout.conv5_root

    def conv5_cache(self, tuned: bool = False) -> Conv5Cache:
        """The conv5 maps at every scale: of the ImageNet trunk, or (``tuned``) of the conv-fine-tuned one."""
        name = self.cfg.backbone.name + ("_tuned" if tuned else "")
        return Conv5Cache({s: self.layout.conv5_dir(name, s, self.conv5_hash(s, tuned)) for s in self.scales},
                          self.detection_backbone if tuned else self.backbone)

    # ------------------------------------------------------------------ hashes
    def weights_id(self) -> Optional[str]:
        """Content hash of the backbone weights file (so caches follow the weights, not their name)."""
        w = self.cfg.backbone.weights
        if w is None or w == "imagenet":
            return w
        path = packaged_weights(self.cfg.backbone.name) if w == "package" else Path(self.weights_arg())
        return self.file_id(path) if path.is_file() else str(w)

    def file_id(self, path: Path) -> str:
        """sha256 prefix of a file, computed once per (path, mtime, size): a rewritten file gets a new one."""
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key not in self._file_ids:
            self._file_ids[key] = file_sha256(path)
        return self._file_ids[key]

    def images_key(self, split: str) -> str:
        """Content fingerprint of a split's image files (:mod:`spp_det.data.fingerprint`)."""
        if ("images", split) not in self._data_keys:
            from .data.fingerprint import images_fingerprint
            self._data_keys["images", split] = images_fingerprint(self.dataset(split).records)
        return self._data_keys["images", split]

    def annotations_key(self, split: str) -> str:
        """Content fingerprint of a split's parsed annotations and the class list."""
        if ("annotations", split) not in self._data_keys:
            from .data.fingerprint import annotations_fingerprint
            self._data_keys["annotations", split] = annotations_fingerprint(self.dataset(split).records,
                                                                              self.classes)
        return self._data_keys["annotations", split]

    def proposals_hash(self, split: str) -> str:
        """Key of a split's proposals (stored in the file and checked on load): its images and the method."""
        p = self.cfg.proposals
        key = {"images": self.images_key(split), "method": p.method}
        if p.method == "mat":
            mat = p.mat_files.get(split)
            key["mat"] = self.file_id(Path(mat)) if mat and Path(mat).is_file() else mat
        else:
            key.update(mode=p.mode, base_k=p.base_k, inc_k=p.inc_k, sigma=p.sigma, max_boxes=p.max_boxes,
                       min_size=p.min_size, max_image_side=p.max_image_side)
        return stable_hash(key)

    def conv_start_cache(self, tuner) -> Conv5Cache:
        """Cached outputs of the frozen start of the trunk that conv fine-tuning trains the rest of
        (:class:`spp_det.finetune.ConvTuner`): fp16 maps per view and scale, beside the conv5 maps."""
        name = f"{self.cfg.backbone.name}_start{tuner.cut}"
        return Conv5Cache({s: self.layout.conv5_dir(name, s, self.conv5_hash(s)) for s in self.scales}, tuner)

    def conv5_hash(self, scale: int, tuned: bool = False) -> str:
        """Hash of what one scale's maps depend on besides the image (its cache directory's suffix; each
        file's name carries its image's digest): the backbone, its weights' bytes (``tuned``: the bytes of
        the conv-fine-tuned trunk, ``finetune/trunk.pt``) and the scale."""
        weights = self.weights_id()
        if tuned:
            t = self.tuned_trunk_path
            weights = {"start": weights, "trunk": self.file_id(t) if t.is_file() else None}
        return stable_hash({"backbone": self.cfg.backbone.name, "weights": weights, "scale": int(scale)}, 8)

    def conv_start_dirs(self) -> list[Path]:
        """Every cache directory of conv fine-tuning's frozen-start outputs for this backbone and weights."""
        return [d for s in self.scales
                for d in self.conv5_root.glob(f"{self.cfg.backbone.name}_start*_s{s}_{self.conv5_hash(s)}")]

    def pooling_key(self, tuned: bool = False) -> dict:
        """What pooled window features depend on (maps of the ImageNet or, ``tuned``, the fine-tuned trunk)."""
        m = self.cfg.model
        if self.rcnn_mode:
            r = self.cfg.rcnn
            return {"mode": "rcnn", "backbone": self.cfg.backbone.name, "weights": self.weights_id(),
                    "levels": list(m.spp_levels), "input_size": r.input_size or self.backbone.input_size,
                    "context": r.context}
        key = {"conv5": [self.conv5_hash(s, tuned) for s in self.scales], "levels": list(m.spp_levels),
               "projection": m.projection, "offset": m.projection_offset}
        if len(self.scales) > 1:
            key["scale_select"] = m.scale_select
        return key

    # ------------------------------------------------------------------ stages (the table: spp_det.stages)
    def stage_hash(self, stage: str) -> str:
        from .stages import stage_key
        return stage_key(self, stage)

    def stage_done(self, stage: str) -> bool:
        from .stages import stage_done
        return stage_done(self, stage)

    def manifest_info(self, stage: str) -> dict:
        from .stages import manifest_info
        return manifest_info(self, stage)
