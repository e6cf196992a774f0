"""An experiment: its config, where its files live, its data and its networks, built once.

A :class:`Workspace` is the composition root the stage table (:mod:`spp_det.stages`) and the tools
start from; it holds no logic of its own beyond which splits the pipeline reads:

* ``ws.layout``: :class:`spp_det.layout.Layout`, every path of the work directory;
* ``ws.data``: :class:`spp_det.data.source.DataSource`, datasets per split, proposals, content keys;
* ``ws.models``: :class:`spp_det.model_factory.ModelFactory`, backbones, window sources, conv-map caches;
* ``ws.dist``: :class:`spp_det.distributed.Dist`, this process's rank among torchrun's (one process by default).

Stage keys, manifests and ``--force`` come from the stage table in :mod:`spp_det.stages`: changing
e.g. ``svm.C`` reruns the SVMs and everything after them but not conv5 or fine-tuning; editing a test
annotation reruns only the evaluation.
"""
from __future__ import annotations

from .config import Config
from .data.source import DataSource
from .distributed import Dist
from .layout import Layout
from .model_factory import ModelFactory


class Workspace:
    def __init__(self, cfg: Config, dist: Dist = Dist()):
        self.cfg = cfg
        self.dist = dist
        self.layout = Layout.from_config(cfg)
        self.root = self.layout.root
        self.data = DataSource.from_config(cfg, self.layout.proposals)
        self.models = ModelFactory.from_config(cfg, self.layout)

    @property
    def finetune_split(self) -> str:
        return self.cfg.finetune.split or self.cfg.dataset.train_split

    def proposal_splits(self) -> list[str]:
        """Every split a stage reads: fine-tuning's, the SVMs' (train), fine-tuning's val split and test."""
        splits = [self.finetune_split, self.cfg.dataset.train_split, self.cfg.finetune.val_split,
                  self.cfg.dataset.test_split]
        return list(dict.fromkeys(s for s in splits if s))
