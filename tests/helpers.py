"""Shared by the test modules (not a test module itself)."""
from pathlib import Path

from spp_det.data.synthetic import CLASSES


def tiny_config(tmp: Path, data_root: Path, **over) -> dict:
    cfg = {
        "name": "tiny", "workdir": str(tmp / "work"), "seed": 0,
        "dataset": {"root": str(data_root), "classes": list(CLASSES),
                    "generate": {"seed": 1, "num_trainval": 12, "num_test": 6, "min_side": 160, "max_side": 200}},
        "proposals": {"base_k": 150, "inc_k": 150, "max_boxes": 300, "workers": 1},
        "backbone": {"name": "lite0", "weights": "package"},
        "model": {"scales": [224], "fc_dim": 64},
        "finetune": {"iterations": 30, "base_lr": 0.001, "lr_steps": [20], "snapshot_every": 10,
                     "images_per_chunk": 6, "batches_per_chunk": 4, "batch_size": 32},
        "svm": {"pool5_baseline": True, "retrain_limit": 200},
        "norm": {"images": 6, "boxes_per_image": 30},
    }
    for k, v in over.items():
        cfg.setdefault(k, {}).update(v) if isinstance(v, dict) else cfg.__setitem__(k, v)
    return cfg


def kill_finetune_at(ws, iteration: int, monkeypatch) -> None:
    """Run ``ws``'s finetune stage and kill it (KeyboardInterrupt) when it reaches ``iteration``: what a
    resume test then restarts from the last snapshot."""
    import pytest

    import spp_det.finetune as ft
    from spp_det.pipeline import run_stage
    real = ft.lr_at

    def crash(it, *rest):
        if it == iteration:
            raise KeyboardInterrupt
        return real(it, *rest)
    monkeypatch.setattr(ft, "lr_at", crash)
    with pytest.raises(KeyboardInterrupt):
        run_stage(ws, "finetune", progress=False)
    monkeypatch.setattr(ft, "lr_at", real)
