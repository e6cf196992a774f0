"""Where an experiment's files live: every path under a work directory, stated once.

Layout (``<workdir>/``)::

    config.yaml                          resolved config (every default written out)
    timings.json                         stage times of the last run
    .lock                                held while a run uses the directory
    manifests/<stage>.json               a finished stage's key and outputs (spp_det.stages)
    pretrain/model.pt, eval.json, crops/ SPP classification pre-training (if a pretrain section is set)
    proposals/<split>.npz                image id -> (N, 4) internal boxes (proposals.cache_dir moves them)
    conv5/<backbone>_s<scale>_<hash>/    <id>.<digest>.npy, <id>_flip.<digest>.npy (fp16 C x H' x W'; .npz in
                                         features.cache_format uint8, spp_det/map_codec.py), one dir
                                         per scale; digest: the image file's content hash
                                         (features.conv5_root moves them to a shared root)
    finetune/ckpt.pt, best.pt, log.json  fc6/fc7/fc8 (+ optimiser state in ckpt.pt)
    finetune/log.csv, curves.png         the log as a table and its picture (loss, lr, val accuracy)
    finetune/tensorboard/                the same as TensorBoard events, if tensorboard is installed
    finetune/trunk.pt                    the conv-fine-tuned trunk (finetune.conv_layers > 0)
    conv5/<backbone>_tuned_s<scale>_<hash>/  its maps of the train and test splits (stage conv5_tuned)
    conv5/<backbone>_start<k>_s<scale>_<hash>/  conv fine-tuning's frozen-start outputs
    norms/<kind>_<hash>.json             feature scale 20 / mean norm (shared by stages)
    svm/fc7.pt, svm/pool5.pt             per-class W, b, feature scale (spp_det.linear.LinearModels)
    svm/mining_<kind>.png                hard negatives cached against images seen, per class
    bbox_reg/model.pt                    per-class ridge weights, feature scale (the same class)
    detections/<split>/<variant>/comp4_det_<split>_<cls>.txt
    eval/<split>_<variant>.json          {"mAP", "ap", "npos", "metric", "coco"}
    eval/stagewise_<split>.txt, .png     the Table-9-style summary, and as bars
    eval/pr_<split>_<variant>.png        per-class precision-recall curves (AP in the legend)
    eval/recall_<split>.png              proposal recall at IoU 0.5 / 0.7 against the number of proposals
    report.html                          spp-det report: one page of all of the above (spp_det.report)
    browse/<split>/                      spp-det browse: images with ground truth (+ proposals), summary.txt
    demo_test_images/, demo_images/      spp-det demo: test images and real photos with detections drawn
    demo_imagenet/                       spp-det demo: the real photos' windows labelled by ImageNet's classifier

Pictures (the .png files and the report) are drawn from the saved data beside them and are not
stage outputs: deleting one never reruns a stage; ``spp-det report`` draws any that are missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class Layout:
    """The paths of one work directory (``root``); ``proposals_dir`` and ``conv5_root`` may be shared
    caches elsewhere (``proposals.cache_dir``, ``features.conv5_root``)."""

    root: Path
    proposals_dir: Optional[Path] = None
    conv5_root: Optional[Path] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "proposals_dir", Path(self.proposals_dir or self.root / "proposals"))
        object.__setattr__(self, "conv5_root", Path(self.conv5_root or self.root / "conv5"))

    @classmethod
    def from_config(cls, cfg) -> "Layout":
        return cls(Path(cfg.workdir), cfg.proposals.cache_dir and Path(cfg.proposals.cache_dir),
                   cfg.features.conv5_root and Path(cfg.features.conv5_root))

    # run bookkeeping
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    def manifest(self, stage: str) -> Path:
        return self.root / "manifests" / f"{stage}.json"

    # stage outputs
    @property
    def pretrain_dir(self) -> Path:
        return self.root / "pretrain"

    @property
    def pretrained_model(self) -> Path:
        return self.pretrain_dir / "model.pt"

    def proposals(self, split: str) -> Path:
        return self.proposals_dir / f"{split}.npz"

    def conv5_dir(self, name: str, scale: int, key: str) -> Path:
        """One scale's cache directory of maps made by ``name`` (backbone, ``<backbone>_tuned``, ...)."""
        return self.conv5_root / f"{name}_s{int(scale)}_{key}"

    @property
    def finetune_dir(self) -> Path:
        return self.root / "finetune"

    @property
    def head(self) -> Path:
        """The fine-tuned fc6/fc7/fc8 (the chosen snapshot)."""
        return self.finetune_dir / "best.pt"

    @property
    def mirror_check(self) -> Path:
        """The outcome of ``finetune.use_flipped: check`` (spp_det/mirror_check.py)."""
        return self.finetune_dir / "mirrors.json"

    @property
    def tuned_trunk(self) -> Path:
        return self.finetune_dir / "trunk.pt"

    @property
    def norms_dir(self) -> Path:
        return self.root / "norms"

    def norm(self, kind: str, key: str) -> Path:
        return self.norms_dir / f"{kind}_{key}.json"

    def norms(self, kind: str) -> list[Path]:
        return sorted(self.norms_dir.glob(f"{kind}_*.json"))

    def svm(self, kind: str) -> Path:
        """The SVMs on ``kind`` features (``fc7``, ``pool5``)."""
        return self.root / "svm" / f"{kind}.pt"

    @property
    def bbox_reg(self) -> Path:
        return self.root / "bbox_reg" / "model.pt"

    def detections(self, split: str, variant: Optional[str] = None) -> Path:
        d = self.root / "detections" / split
        return d / variant if variant else d

    @property
    def eval_dir(self) -> Path:
        return self.root / "eval"

    def eval_result(self, split: str, variant: str) -> Path:
        return self.eval_dir / f"{split}_{variant}.json"

    def stagewise(self, split: str) -> Path:
        return self.eval_dir / f"stagewise_{split}.txt"

    def stagewise_plot(self, split: str) -> Path:
        return self.eval_dir / f"stagewise_{split}.png"

    def pr_plot(self, split: str, variant: str) -> Path:
        return self.eval_dir / f"pr_{split}_{variant}.png"

    def recall_plot(self, split: str) -> Path:
        return self.eval_dir / f"recall_{split}.png"

    @property
    def finetune_log(self) -> Path:
        return self.finetune_dir / "log.json"

    @property
    def finetune_csv(self) -> Path:
        return self.finetune_dir / "log.csv"

    @property
    def finetune_plot(self) -> Path:
        return self.finetune_dir / "curves.png"

    @property
    def tensorboard_dir(self) -> Path:
        return self.finetune_dir / "tensorboard"

    def mining_plot(self, kind: str) -> Path:
        return self.root / "svm" / f"mining_{kind}.png"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    def browse_dir(self, split: str) -> Path:
        return self.root / "browse" / split

    def demo_dir(self, what: str) -> Path:
        """``test_images``, ``images`` (the real photos) or ``imagenet``."""
        return self.root / f"demo_{what}"

