"""The networks of an experiment and the caches of their conv maps, with the keys that name them.

Conventions
-----------
* Two trunks: the *start* backbone (``backbone.weights``: ImageNet, a packaged or pre-trained
  file) and, when ``finetune.conv_layers`` > 0, the *detection* backbone, the same network with the
  conv-fine-tuned trunk (``<workdir>/finetune/trunk.pt``) loaded. Window features for fine-tuning
  come from the start trunk's maps; SVMs, box regression and test use the detection trunk's.
* Conv maps: ``(C, H', W')`` per image view and scale (fp16, or ``features.cache_format``), cached by
  :class:`spp_det.features.Conv5Cache` in one directory per scale named ``<name>_s<scale>_<key>``
  (:meth:`spp_det.layout.Layout.conv5_dir`); ``key`` (:meth:`ModelFactory.conv5_key`) covers the
  backbone, its weights' bytes, the scale and the storage format, and
  each file name carries its image's content digest.
* Window features: ``WindowSource.pool(inputs, boxes, (H, W))`` gives float ``(N, dim)`` for internal
  boxes ``(N, 4)`` (:mod:`spp_det.boxes`); :meth:`ModelFactory.pooling_key` says what they depend on.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import torch

from .config import BackboneConfig, Config, FinetuneConfig, ModelConfig, RCNNConfig
from .devices import resolve_device
from .features import Conv5Cache, InputSource, WindowPooler, WindowSource
from .head import fc_init_mode
from .io_utils import file_digest, stable_hash
from .layout import Layout
from .models import Backbone, build_backbone, packaged_weights
from .rcnn import ImageInputs, RCNNPooler


class ModelFactory:
    """Builds (once) the backbones, window sources and conv-map caches of one experiment.

    Receives the config sections it reads: ``backbone``, ``model``, ``rcnn``, ``finetune`` (whether
    and how deep conv layers are fine-tuned; its recipe is resolved here), ``mode`` (``spp`` or
    ``rcnn``), ``device`` (``features.device``), ``conv_dtype`` (``features.conv_dtype``), ``cache_format``
    (``features.cache_format``) and the work directory's :class:`Layout`.
    """

    def __init__(self, backbone: BackboneConfig, model: ModelConfig, rcnn: RCNNConfig, finetune: FinetuneConfig,
                 mode: str, device: str, layout: Layout, conv_dtype: str = "float32", cache_format: str = "float16"):
        self.backbone_cfg, self.model_cfg, self.rcnn_cfg, self.finetune_raw = backbone, model, rcnn, finetune
        self.mode, self.device_name, self.layout, self.conv_dtype = mode, device, layout, conv_dtype
        self.cache_format = cache_format

    @classmethod
    def from_config(cls, cfg: Config, layout: Layout) -> "ModelFactory":
        return cls(cfg.backbone, cfg.model, cfg.rcnn, cfg.finetune, cfg.mode, cfg.features.device, layout,
                   cfg.features.conv_dtype, cfg.features.cache_format)

    # ------------------------------------------------------------------ settings
    @functools.cached_property
    def device(self) -> torch.device:
        return resolve_device(self.device_name)

    @property
    def scales(self) -> list[int]:
        return [int(x) for x in self.model_cfg.scales]

    @property
    def rcnn_mode(self) -> bool:
        return self.mode == "rcnn"

    @property
    def conv_tuned(self) -> bool:
        """True when fine-tuning trains conv layers too (``finetune.conv_layers``): the later stages then
        read conv5 maps recomputed with the fine-tuned trunk (:meth:`conv5_cache` ``(tuned=True)``)."""
        return self.finetune_raw.enabled and self.finetune_raw.conv_layers > 0

    @functools.cached_property
    def finetune_cfg(self) -> FinetuneConfig:
        """``finetune`` with its recipe resolved (``auto``: ``paper`` when fc6/fc7 start from the backbone's
        pretrained classifier, else ``random_fc``) and the schedule fields it leaves null filled in."""
        ft = self.finetune_raw
        recipe = ft.recipe
        if recipe == "auto":
            bb, m = self.backbone, self.model_cfg
            dim = bb.out_channels * sum(n * n for n in m.spp_levels)
            pretrained = fc_init_mode(bb.fc_init, dim, m.fc_dim, m.spp_levels, bb.out_channels) is not None
            recipe = "paper" if pretrained else "random_fc"
        return ft.resolved(recipe)

    # ------------------------------------------------------------------ networks
    def weights_arg(self) -> Optional[str]:
        """``backbone.weights`` as :func:`spp_det.models.build_backbone` takes it (``pretrain``: its file)."""
        w = self.backbone_cfg.weights
        return str(self.layout.pretrained_model) if w == "pretrain" else w

    @functools.cached_property
    def backbone(self) -> Backbone:
        """The start backbone (see the module docstring)."""
        if self.backbone_cfg.weights == "pretrain" and not self.layout.pretrained_model.is_file():
            raise FileNotFoundError(f"{self.layout.pretrained_model}: not found; run the pretrain stage first "
                                    "(spp-det pretrain --config ...)")
        return build_backbone(self.backbone_cfg.name, self.weights_arg(), self.conv_dtype)

    @functools.cached_property
    def detection_backbone(self) -> Backbone:
        """The backbone of the trained detector: :attr:`backbone` with the conv-fine-tuned trunk loaded when
        ``finetune.conv_layers`` > 0 (a separate copy: :attr:`backbone` stays the start one)."""
        if not self.conv_tuned:
            return self.backbone
        path = self.layout.tuned_trunk
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found; run the finetune stage first")
        bb = build_backbone(self.backbone_cfg.name, self.weights_arg(), self.conv_dtype)
        bb.trunk.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return bb

    def pooler(self) -> WindowSource:
        """What turns one image's inputs (:meth:`window_inputs`) and windows into ``(N, dim)`` features:
        pooling from conv5 (SPP mode), or warping and running the trunk per window (R-CNN mode)."""
        m = self.model_cfg
        if self.rcnn_mode:
            r = self.rcnn_cfg
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
        conv-fine-tuned trunk when ``finetune.conv_layers`` > 0, else the start trunk's."""
        return self.window_inputs(self.conv_tuned)

    # ------------------------------------------------------------------ conv-map caches
    def conv5_cache(self, tuned: bool = False) -> Conv5Cache:
        """The conv5 maps at every scale: of the start trunk, or (``tuned``) of the conv-fine-tuned one."""
        name = self.backbone_cfg.name + ("_tuned" if tuned else "")
        return Conv5Cache({s: self.layout.conv5_dir(name, s, self.conv5_key(s, tuned)) for s in self.scales},
                          self.detection_backbone if tuned else self.backbone, self.cache_format)

    def conv_start_cache(self, tuner) -> Conv5Cache:
        """Cached outputs of the frozen start of the trunk that conv fine-tuning trains the rest of
        (:class:`spp_det.finetune.ConvTuner`): fp16 maps per view and scale (what training reads, whatever
        ``features.cache_format``), beside the conv5 maps."""
        name = f"{self.backbone_cfg.name}_start{tuner.cut}"
        return Conv5Cache({s: self.layout.conv5_dir(name, s, self.conv5_key(s, cache_format="float16"))
                           for s in self.scales}, tuner)

    def conv_start_dirs(self) -> list[Path]:
        """Every cache directory of conv fine-tuning's frozen-start outputs for this backbone and weights."""
        return [d for s in self.scales
                for d in self.layout.conv5_root.glob(
                    f"{self.backbone_cfg.name}_start*_s{s}_{self.conv5_key(s, cache_format='float16')}")]

    # ------------------------------------------------------------------ keys
    def weights_key(self) -> Optional[str]:
        """Content hash of the backbone weights file (so caches follow the weights, not their name)."""
        w = self.backbone_cfg.weights
        if w is None or w == "imagenet":
            return w
        path = packaged_weights(self.backbone_cfg.name) if w == "package" else Path(self.weights_arg())
        return file_digest(path) if path.is_file() else str(w)

    def conv5_key(self, scale: int, tuned: bool = False, cache_format: Optional[str] = None) -> str:
        """What one scale's maps depend on besides the image (its cache directory's suffix): the backbone,
        its weights' bytes (``tuned``: also the bytes of the conv-fine-tuned trunk), the scale, the conv
        dtype (only when not float32, so that float32 caches keep their names) and the storage format
        (:attr:`cache_format` unless given; only when not float16, likewise)."""
        weights = self.weights_key()
        if tuned:
            t = self.layout.tuned_trunk
            weights = {"start": weights, "trunk": file_digest(t) if t.is_file() else None}
        key = {"backbone": self.backbone_cfg.name, "weights": weights, "scale": int(scale)}
        if self.conv_dtype != "float32":
            key["conv_dtype"] = self.conv_dtype
        fmt = cache_format or self.cache_format
        if fmt != "float16":
            key["cache_format"] = fmt
        return stable_hash(key, 8)

    def pooling_key(self, tuned: bool = False) -> dict:
        """What pooled window features depend on (maps of the start or, ``tuned``, the fine-tuned trunk)."""
        m = self.model_cfg
        if self.rcnn_mode:
            r = self.rcnn_cfg
            return {"mode": "rcnn", "backbone": self.backbone_cfg.name, "weights": self.weights_key(),
                    "levels": list(m.spp_levels), "input_size": r.input_size or self.backbone.input_size,
                    "context": r.context}
        key = {"conv5": [self.conv5_key(s, tuned) for s in self.scales], "levels": list(m.spp_levels),
               "projection": m.projection, "offset": m.projection_offset}
        if len(self.scales) > 1:
            key["scale_select"] = m.scale_select
        return key
