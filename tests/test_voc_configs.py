"""The VOC 2007 configs, run on generated data in the exact VOCdevkit layout with VOC's 20 class names."""
from pathlib import Path

import pytest

from spp_det.config import VOC_CLASSES, load_config
from spp_det.data.synthetic import make_synthetic_voc
from spp_det.data.voc import VOCDataset
from spp_det.pipeline import run_pipeline
from spp_det.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["model.scales=[224]", "model.fc_dim=64", "proposals.base_k=150", "proposals.inc_k=150",
         "proposals.max_boxes=200", "proposals.workers=1", "finetune.iterations=6", "finetune.snapshot_every=3",
         "finetune.images_per_chunk=8", "finetune.batches_per_chunk=3", "finetune.batch_size=32",
         "norm.images=5", "norm.boxes_per_image=20", "svm.retrain_limit=300"]


@pytest.fixture(scope="module")
def vocdevkit(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc") / "VOCdevkit" / "VOC2007"
    make_synthetic_voc(root, seed=2, num_trainval=70, num_test=10, min_side=150, max_side=190, progress=None,
                       classes=VOC_CLASSES)
    return root


def test_generated_voc_names_have_every_class(vocdevkit):
    ds = VOCDataset(vocdevkit, "trainval", VOC_CLASSES)
    assert (ds.num_objects(include_difficult=False) > 0).all()


@pytest.mark.parametrize("name", ["voc07_zf5", "voc07_zf5_5scale", "voc07_alexnet", "voc07_vgg16", "voc07_lite0"])
def test_voc_config_reads_the_devkit_layout(name, vocdevkit, tmp_path):
    cfg = load_config(ROOT / "configs" / f"{name}.yaml", [f"dataset.root={vocdevkit}", f"workdir={tmp_path}",
                                                          "backbone.weights=null" if name != "voc07_lite0" else "seed=0"])
    assert cfg.dataset.root.endswith("VOCdevkit/VOC2007") and cfg.dataset.classes == list(VOC_CLASSES)
    ws = Workspace(cfg)
    assert ws.proposal_splits() == ["trainval", "test"]
    assert len(ws.data.dataset("test")) == 10
    assert ws.models.pooler().dim == ws.models.backbone.out_channels * 50


def test_voc07_zf5_config_runs_end_to_end(vocdevkit, tmp_path):
    cfg = load_config(ROOT / "configs" / "voc07_zf5.yaml", [f"dataset.root={vocdevkit}", f"workdir={tmp_path}"] + SMALL)
    ws = run_pipeline(cfg, progress=False)
    files = sorted((ws.root / "detections" / "test" / "fc7_bbox").glob("comp4_det_test_*.txt"))
    assert [f.name for f in files] == sorted(f"comp4_det_test_{c}.txt" for c in VOC_CLASSES)
    assert (ws.root / "eval" / "test_fc7_bbox.json").is_file()
