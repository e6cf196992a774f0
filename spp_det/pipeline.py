"""The ordered stages and the resume logic.

``run_pipeline(cfg)`` runs, in order::

    dataset -> pretrain -> proposals -> conv5 -> finetune -> conv5_tuned -> svm_pool5 -> svm -> bbox_reg
            -> test -> eval

(``conv5_tuned`` recomputes the maps with the conv-fine-tuned trunk when
``finetune.conv_layers`` > 0 and does nothing otherwise.)

A stage whose manifest holds the current hash of the config values it
depends on (see :meth:`Workspace.stage_hash`) and whose outputs exist is
skipped; stages that work per image or per iteration (proposals, conv5,
fine-tuning) also resume inside themselves after a kill.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from .config import Config, save_config
from .io_utils import save_json, save_text
from .workspace import Workspace

log = logging.getLogger(__name__)
STAGES = ("dataset", "pretrain", "proposals", "conv5", "finetune", "conv5_tuned", "svm_pool5", "svm", "bbox_reg",
          "test", "eval")


def stage_dataset(ws: Workspace, progress: bool) -> list[Path]:
    gen = ws.cfg.dataset.generate
    if gen is not None:
        from tqdm import tqdm

        from .data.synthetic import make_synthetic_voc
        make_synthetic_voc(ws.cfg.dataset.root, gen.seed, gen.num_trainval, gen.num_test, gen.min_side,
                           gen.max_side, progress=tqdm if progress else None, classes=ws.classes, family=gen.family)
    for split in ws.proposal_splits():
        ds = ws.dataset(split)
        log.info("dataset %s/%s: %d images, objects per class %s", ws.cfg.dataset.root, split, len(ds),
                 dict(zip(ws.classes, ds.num_objects().tolist())))
    return []


def pretrain_folders(ws: Workspace, progress: bool) -> tuple[Path, Optional[Path]]:
    """The classification train/val folders of the pretrain stage (generated crops unless ``pretrain.data``)."""
    p = ws.cfg.pretrain
    if p.data:
        val = Path(p.data) / p.val_subdir
        return Path(p.data) / p.train_subdir, (val if val.is_dir() else None)
    from tqdm import tqdm

    from .data.crops import make_classification_crops
    d = ws.cfg.dataset
    bar = tqdm if progress else None
    crops = ws.root / "pretrain" / "crops"
    make_classification_crops(ws.dataset(d.train_split).records, ws.classes, crops / "train", p.crops_per_object,
                              tuple(p.crop_context), p.crop_jitter, p.seed, bar)
    mid = float(sum(p.crop_context)) / 2  # one fixed crop per test object: evaluation only, never trained on
    make_classification_crops(ws.dataset(d.test_split).records, ws.classes, crops / "val", 1, (mid, mid), 0.0,
                              p.seed, bar)
    return crops / "train", crops / "val"


def stage_pretrain(ws: Workspace, progress: bool) -> list[Path]:
    from .pretrain import format_results, pretrain
    train_dir, val_dir = pretrain_folders(ws, progress)
    res = pretrain(train_dir, val_dir, ws.root / "pretrain", ws.cfg.pretrain, ws.cfg.backbone.name,
                   ws.cfg.model.spp_levels, progress)
    print(format_results(res, ws.cfg.pretrain.sizes), flush=True)
    return [ws.pretrained_path, ws.root / "pretrain" / "eval.json"]


def stage_proposals(ws: Workspace, progress: bool) -> list[Path]:
    from proposals.cache import compute_proposals, save_proposals
    from proposals.rcnn_mat import load_rcnn_mat

    p = ws.cfg.proposals
    outs = []
    for split in ws.proposal_splits():
        out = ws.proposals_path(split)
        records = ws.dataset(split).records
        if p.method == "mat":
            if split not in p.mat_files:
                raise ValueError(f"proposals.method is 'mat' but proposals.mat_files has no entry for {split!r}")
            boxes = load_rcnn_mat(p.mat_files[split])
            missing = [r.image_id for r in records if r.image_id not in boxes]
            if missing:
                raise ValueError(f"{p.mat_files[split]}: no boxes for {len(missing)} images of {split!r}, "
                                 f"e.g. {missing[:3]}")
            save_proposals(out, {r.image_id: boxes[r.image_id] for r in records},
                           {"hash": ws.proposals_hash(split), "source": p.mat_files[split]})
        elif p.method == "selective_search":
            compute_proposals([(r.image_id, str(r.path), (r.height, r.width)) for r in records], out,
                              ws.search_params(),
                              ws.proposals_hash(split), p.workers, progress=progress)
        else:
            raise ValueError(f"unknown proposals.method {p.method!r} (use 'selective_search' or 'mat')")
        outs.append(out)
    return outs


def stage_conv5(ws: Workspace, progress: bool) -> list[Path]:
    if ws.rcnn_mode:
        return []  # R-CNN mode runs the whole network per window in the stages that need features
    records = {}
    for split in ws.proposal_splits():
        ds = ws.dataset(split)
        flips = ws.cfg.finetune.use_flipped and split == ws.finetune_split and ws.cfg.finetune.enabled
        for r in (ds.with_flipped() if flips else ds.records):
            records[r.key] = r
    cache = ws.conv5_cache()
    cache.build(list(records.values()), ws.device, progress)
    return list(cache.dirs.values())


def stage_finetune(ws: Workspace, progress: bool) -> list[Path]:
    from .finetune import finetune
    return [finetune(ws, progress)] + ([ws.tuned_trunk_path] if ws.conv_tuned else [])


def stage_conv5_tuned(ws: Workspace, progress: bool) -> list[Path]:
    """conv5 of the train and test images with the conv-fine-tuned trunk (what SVMs, box regression and
    test then pool from); nothing without conv fine-tuning."""
    if not ws.conv_tuned:
        return []
    d = ws.cfg.dataset
    records = {r.key: r for split in dict.fromkeys([d.train_split, d.test_split]) for r in ws.dataset(split).records}
    cache = ws.conv5_cache(tuned=True)
    cache.build(list(records.values()), ws.device, progress)
    return list(cache.dirs.values())


def stage_svm_pool5(ws: Workspace, progress: bool) -> list[Path]:
    if not ws.cfg.svm.pool5_baseline:
        return []
    from .svm import train_svms
    return [train_svms(ws, "pool5", None, progress)]


def stage_svm(ws: Workspace, progress: bool) -> list[Path]:
    from .finetune import load_head
    from .svm import train_svms
    return [train_svms(ws, "fc7", load_head(ws), progress)]


def stage_bbox_reg(ws: Workspace, progress: bool) -> list[Path]:
    if not ws.cfg.bbox_reg.enabled:
        return []
    from .bbox_reg import train_bbox_regressors
    return [train_bbox_regressors(ws, progress)]


def stage_test(ws: Workspace, progress: bool) -> list[Path]:
    from .inference import detections_dir, run_test
    return [detections_dir(ws, v) for v in run_test(ws, progress)]


VARIANT_TITLES = {"pool5": "SVM on pooled conv5, no fine-tuning",
                  "fc7": "fine-tuned fc7",
                  "fc7_bbox": "fine-tuned fc7 + bbox regression"}


def stage_eval(ws: Workspace, progress: bool) -> list[Path]:
    """VOC mAP (``eval.use_07_metric``) and COCO AP/AP50/AP75 of every variant's detections."""
    from .evaluation.coco import evaluate_comp4_voc_coco
    from .evaluation.voc import format_ap_table
    split = ws.cfg.dataset.test_split
    records = ws.dataset(split).records
    variants = [v for v in VARIANT_TITLES if (ws.root / "detections" / split / v).is_dir()
                and (v != "pool5" or ws.cfg.svm.pool5_baseline) and (v != "fc7_bbox" or ws.cfg.bbox_reg.enabled)]
    results, outs = {}, []
    for v in variants:
        vdir = ws.root / "detections" / split / v
        res, coco_res = evaluate_comp4_voc_coco(vdir, records, ws.classes, split, ws.cfg.eval.use_07_metric)
        save_json(coco_res, vdir / "coco_results.json")
        results[v] = res
        out = ws.root / "eval" / f"{split}_{v}.json"
        save_json({"mAP": res["mAP"], "ap": res["ap"], "npos": res["npos"], "metric": res["metric"],
                   "coco": res["coco"]}, out)
        outs += [out, vdir / "coco_results.json"]
    main = variants[-1]
    text = format_ap_table(results[main], f"Per-class AP on {split} ({VARIANT_TITLES[main]}):")
    text += "\n\n" + stagewise_table(results, split)
    save_text(text + "\n", ws.root / "eval" / f"stagewise_{split}.txt")
    outs.append(ws.root / "eval" / f"stagewise_{split}.txt")
    print(text, flush=True)
    return outs


def stagewise_table(results: dict, split: str) -> str:
    lines = [f"Stage-wise mAP on {split} (cf. the paper's Table 9), with COCO metrics of the same detections:",
             f"  {'':<40} {'mAP':>6}   {'COCO AP':>7} {'AP50':>6} {'AP75':>6}"]
    for v, res in results.items():
        c = res.get("coco", {})
        lines.append(f"  {VARIANT_TITLES[v]:<40} {100 * res['mAP']:6.2f}   {100 * c.get('AP', float('nan')):7.2f} "
                     f"{100 * c.get('AP50', float('nan')):6.2f} {100 * c.get('AP75', float('nan')):6.2f}")
    return "\n".join(lines)


STAGE_FUNCS: dict[str, Callable[[Workspace, bool], list[Path]]] = {
    "dataset": stage_dataset, "pretrain": stage_pretrain, "proposals": stage_proposals, "conv5": stage_conv5,
    "finetune": stage_finetune, "conv5_tuned": stage_conv5_tuned, "svm_pool5": stage_svm_pool5, "svm": stage_svm, "bbox_reg": stage_bbox_reg, "test": stage_test,
    "eval": stage_eval,
}


def upstream(ws: Workspace, stage: str) -> list[str]:
    """Stages whose outputs ``stage`` reads (for the current config)."""
    c = ws.cfg
    pre = ["pretrain"] if c.backbone.weights == "pretrain" else []
    tuned = ["conv5_tuned"] if ws.conv_tuned else []
    deps = {"pretrain": [], "proposals": [], "conv5": pre, "finetune": ["proposals", "conv5"],
            "conv5_tuned": ["finetune"], "svm_pool5": ["proposals", "conv5"],
            "svm": ["finetune"] + tuned, "bbox_reg": ["proposals", "conv5"] + tuned, "eval": ["test"],
            "test": ["svm"] + (["bbox_reg"] if c.bbox_reg.enabled else [])
            + (["svm_pool5"] if c.svm.pool5_baseline else [])}
    return deps.get(stage, [])


def run_stage(ws: Workspace, stage: str, progress: bool = True, force: bool = False) -> dict:
    """Run one stage unless it is already complete for this config; returns its timing record.

    Refuses to run when a stage it reads from is missing or was made under
    another config, so stale outputs are never consumed.
    """
    if stage not in STAGE_FUNCS:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    stale = [u for u in upstream(ws, stage) if not ws.stage_done(u)]
    if stale:
        raise ValueError(f"stage {stage!r} needs {', '.join(stale)} first: missing, or made under another "
                         f"config (run tools/run_pipeline.py, or the stage tools in order)")
    if stage == "pretrain" and ws.cfg.pretrain is None:
        return {"stage": stage, "skipped": True, "seconds": None}  # nothing to do: weights come from elsewhere
    if stage != "dataset" and not force and ws.stage_done(stage):
        log.info("stage %s: done for this config, skipped", stage)
        print(f"[{stage}] up to date, skipped", flush=True)
        return {"stage": stage, "skipped": True, "seconds": ws.manifest_info(stage).get("seconds")}
    print(f"[{stage}] running", flush=True)
    t0 = time.perf_counter()
    outputs = STAGE_FUNCS[stage](ws, progress)
    dt = time.perf_counter() - t0
    if stage != "dataset":
        ws.mark_done(stage, outputs, {"seconds": dt})
    print(f"[{stage}] finished in {dt:.1f} s", flush=True)
    return {"stage": stage, "skipped": False, "seconds": dt}


def run_pipeline(cfg: Config, stages: Optional[Sequence[str]] = None, progress: bool = True,
                 force: Sequence[str] = ()) -> Workspace:
    """Run ``stages`` (default: all) in order; prints a timing table at the end."""
    ws = Workspace(cfg)
    ws.root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, ws.root / "config.yaml")
    timings = [run_stage(ws, s, progress, s in force) for s in (stages or STAGES)]
    lines = ["Stage times (this run; skipped stages show their last run's time):"]
    for t in timings:
        sec = t["seconds"]
        lines.append(f"  {t['stage']:<10} {'skipped' if t['skipped'] else 'ran':>8}  "
                     f"{(f'{sec:8.1f} s') if sec is not None else '       -  '}")
    print("\n".join(lines), flush=True)
    save_json(timings, ws.root / "timings.json")
    return ws
