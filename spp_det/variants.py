"""The detectors a trained experiment is evaluated as: the rows of the paper's Table 9 (stage-wise mAP).

Every module that writes, reads or prints per-variant results (the test stage, evaluation, model
combination, ``spp-det compare``, the benchmarks) takes the names, titles and order from
:data:`VARIANTS`. Detections of variant ``v`` live in ``<workdir>/detections/<split>/<v.name>/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .config import Config


@dataclass(frozen=True)
class Variant:
    """``name``: its directory and key; ``title``: its row in the stage-wise table; ``svm``: which SVMs score
    the windows (``"pool5"``: on pooled conv5, trained without fine-tuning; ``"fc7"``: on the fine-tuned
    fc7); ``bbox``: box regression applied."""

    name: str
    title: str
    svm: str
    bbox: bool

    def used(self, cfg: Config) -> bool:
        """Whether an experiment with this config produces the variant."""
        return (self.svm != "pool5" or cfg.svm.pool5_baseline) and (not self.bbox or cfg.bbox_reg.enabled)


VARIANTS: tuple[Variant, ...] = (
    Variant("pool5", "SVM on pooled conv5, no fine-tuning", "pool5", False),
    Variant("fc7", "fine-tuned fc7", "fc7", False),
    Variant("fc7_bbox", "fine-tuned fc7 + bbox regression", "fc7", True),
)
VARIANT = {v.name: v for v in VARIANTS}


def main_variant(cfg: Config) -> Optional[str]:
    """The experiment's final detector: the last variant its config produces."""
    used = [v.name for v in VARIANTS if v.used(cfg)]
    return used[-1] if used else None
