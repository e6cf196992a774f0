"""The stage table: the one statement of the pipeline, and the keys, manifests and clean-ups derived from it.

Each :class:`Stage` row names its function, the stages whose outputs it reads, what of the config and
the data it depends on (its own key), when the config uses it, and what ``--force`` deletes; the rows
of :data:`STAGES` are in running order.

Keys. A stage's key hashes its own key parts and the keys of the stages it reads, so a change
invalidates exactly the stages that depend on it, transitively. Data enter through the content
fingerprints of :mod:`spp_det.data.fingerprint`: proposals and conv maps follow a split's image
bytes, training and evaluation its parsed annotations. Caches derived from trained weights (the fc7
feature norm, the conv-fine-tuned trunk's maps) are keyed on the weights' bytes. A stage not used by
the config (say ``bbox_reg`` with ``bbox_reg.enabled: false``) has a constant key and counts as done.

Manifests. ``<workdir>/manifests/<stage>.json`` records a finished stage's key, the hash of each key
part and its outputs; a stage whose manifest matches its key and whose outputs exist is skipped, and
one that reruns logs which parts changed. Stages that work per image or per iteration (proposals,
conv5, fine-tuning, pre-training) also resume inside themselves after a kill; their partial outputs
carry the stage key, so a partial made from other data or config is never resumed.

``--force``. :func:`force` deletes a stage's outputs, partial outputs and caches (for shared caches,
only the files of this experiment's images) and does the same for every stage downstream of it, so
the next run recomputes all of them from scratch.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from .data.voc import ImageRecord
from .distributed import Dist
from .io_utils import load_json, save_json, save_text, stable_hash, state_digest
from .variants import VARIANT, VARIANTS
from .workspace import Workspace

if TYPE_CHECKING:
    from .finetune import FinetuneJob
    from .head import SPPHead
    from .linear import LinearModels
    from .mirror_check import MirrorCheck
    from .window_features import TrainingWindows, WindowFeatures

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- stage functions
def stage_dataset(ws: Workspace, progress: bool) -> list[Path]:
    gen = ws.cfg.dataset.generate
    if gen is not None:
        from tqdm import tqdm

        from .data.synthetic import make_synthetic_voc
        make_synthetic_voc(ws.cfg.dataset.root, gen.seed, gen.num_trainval, gen.num_test, gen.min_side,
                           gen.max_side, progress=tqdm if progress else None, classes=ws.data.classes,
                           family=gen.family)
    for split in ws.proposal_splits():
        ds = ws.data.dataset(split)
        log.info("dataset %s/%s: %d images, objects per class %s", ws.cfg.dataset.root, split, len(ds),
                 dict(zip(ws.data.classes, ds.num_objects().tolist())))
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
    crops = ws.layout.pretrain_dir / "crops"
    make_classification_crops(ws.data.dataset(d.train_split).records, ws.data.classes, crops / "train",
                              p.crops_per_object, tuple(p.crop_context), p.crop_jitter, p.seed, bar)
    mid = float(sum(p.crop_context)) / 2  # one fixed crop per test object: evaluation only, never trained on
    make_classification_crops(ws.data.dataset(d.test_split).records, ws.data.classes, crops / "val", 1, (mid, mid),
                              0.0, p.seed, bar)
    return crops / "train", crops / "val"


def stage_pretrain(ws: Workspace, progress: bool) -> list[Path]:
    from .pretrain import format_results, pretrain
    train_dir, val_dir = pretrain_folders(ws, progress)
    res = pretrain(train_dir, val_dir, ws.layout.pretrain_dir, ws.cfg.pretrain, ws.cfg.backbone.name,
                   ws.cfg.model.spp_levels, progress, data_key=stable_hash(_pretrain_training_data(ws)),
                   device=ws.models.device)
    print(format_results(res, ws.cfg.pretrain.sizes), flush=True)
    return [ws.layout.pretrained_model, ws.layout.pretrain_dir / "eval.json"]


def stage_proposals(ws: Workspace, progress: bool) -> list[Path]:
    from proposals.cache import compute_proposals, merge_shards, save_proposals, shard_path
    from proposals.rcnn_mat import load_rcnn_mat

    p = ws.cfg.proposals
    outs = []
    for split in ws.proposal_splits():
        out = ws.data.proposals_path(split)
        records = ws.data.dataset(split).records
        if p.method == "mat":
            if not ws.dist.main:
                continue
            if split not in p.mat_files:
                raise ValueError(f"proposals.method is 'mat' but proposals.mat_files has no entry for {split!r}")
            boxes = load_rcnn_mat(p.mat_files[split])
            missing = [r.image_id for r in records if r.image_id not in boxes]
            if missing:
                raise ValueError(f"{p.mat_files[split]}: no boxes for {len(missing)} images of {split!r}, "
                                 f"e.g. {missing[:3]}")
            save_proposals(out, {r.image_id: boxes[r.image_id] for r in records},
                           {"hash": ws.data.proposals_key(split), "source": p.mat_files[split]})
        elif p.method == "selective_search":
            items = [(r.image_id, str(r.path), (r.height, r.width)) for r in records]
            key, params = ws.data.proposals_key(split), ws.data.search_params()
            if ws.dist.world == 1:
                compute_proposals(items, out, params, key, p.workers, progress=progress)
            else:  # torchrun: each rank its share, into a shard file; rank 0 merges them
                d = ws.dist
                workers = max(1, p.workers // d.local_world)  # the machine's proposals.workers, shared by its ranks
                compute_proposals(d.shard(items), shard_path(out, d.rank, d.world), params, key, workers,
                                  progress=progress)
                d.barrier()
                if d.main:
                    merge_shards(out, [shard_path(out, r, d.world) for r in range(d.world)], items, params, key)
        else:
            raise ValueError(f"unknown proposals.method {p.method!r} (use 'selective_search' or 'mat')")
        outs.append(out)
    return outs


def conv5_views(ws: Workspace) -> list[ImageRecord]:
    """The image views the conv5 stage caches: every proposal split, plus the flips of the fine-tuning split."""
    records = {}
    for split in ws.proposal_splits():
        ds = ws.data.dataset(split)
        for r in (ds.with_flipped() if split == ws.finetune_split and conv5_flips(ws) else ds.records):
            records[r.key] = r
    return list(records.values())


def conv5_flips(ws: Workspace) -> bool:
    """Whether the mirrored views of the fine-tuning split are cached (``use_flipped`` true, or ``check``,
    whose check reads them too)."""
    ft = ws.models.finetune_cfg
    return ft.use_flipped is not False and ft.enabled


def mirror_check(ws: Workspace, dist: Dist = Dist()) -> "MirrorCheck":
    """``finetune.use_flipped: check`` on the fine-tuning split (:func:`spp_det.mirror_check.check_mirrors`),
    run by rank 0 and shared with the others; written to ``<workdir>/finetune/mirrors.json`` and logged."""
    from .features import ComputedMaps
    from .mirror_check import check_mirrors
    out = None
    if dist.main:
        m, split = ws.models, ws.finetune_split
        inputs = m.window_inputs() if m.rcnn_mode or frozen_maps_used(ws) else ComputedMaps(m.backbone, m.scales,
                                                                                              m.device)
        out = check_mirrors(ws.data.dataset(split).records, ws.data.classes, inputs, m.pooler(),
                            lambda r: ws.data.boxes_for(r, split), seed=ws.cfg.seed)
        save_json(out.to_dict(), ws.layout.mirror_check)
        log.info("finetune.use_flipped check: %s", out.summary())
    return dist.all_gather(out)[0] if dist.world > 1 else out


def frozen_maps_used(ws: Workspace) -> bool:
    """Whether any stage reads the start trunk's conv5 maps: not in R-CNN mode (no maps), nor with conv
    fine-tuning unless the pool5 baseline is trained (fine-tuning then reads its own cache of the frozen
    start's outputs, and the later stages the tuned trunk's maps: on 2 cores the frozen maps of the
    silhouettes family at 5 scales took 845 s beyond its 688 ones, docs/BENCHMARKS.md)."""
    m = ws.models
    return not m.rcnn_mode and (not m.conv_tuned or ws.cfg.svm.pool5_baseline)


def stage_conv5(ws: Workspace, progress: bool) -> list[Path]:
    cache = ws.models.conv5_cache()
    cache.build(ws.dist.shard(conv5_views(ws)), ws.models.device, progress)
    return list(cache.dirs.values())


def finetune_job(ws: Workspace, dist: Dist = Dist()) -> "FinetuneJob":
    """What fine-tuning uses (:class:`spp_det.finetune.FinetuneJob`); no windows are labelled when it is off.
    ``dist``: the processes that share each mini-batch (default: one); the validation sample is pooled
    on rank 0 alone, which chooses the snapshot."""
    from .finetune import ConvTuner, FinetuneJob, FinetuneLog, build_head, build_window_db, validation_set
    models, ft = ws.models, ws.models.finetune_cfg
    head = build_head(models, len(ws.data.classes), ws.cfg.seed).to(models.device)
    run = ft.enabled and ft.iterations != 0
    tuner = ConvTuner(models.backbone, ft.conv_layers).to(models.device) if run and models.conv_tuned else None
    if run and ft.use_flipped == "check":
        mirrors = mirror_check(ws, dist).use_mirrors
    else:
        mirrors = bool(ft.use_flipped)
        if dist.main:  # no outcome of an earlier check left beside a head trained without one
            ws.layout.mirror_check.unlink(missing_ok=True)
    return FinetuneJob(head, ft, build_window_db(ws.data, ws.finetune_split, mirrors, ws.cfg) if run else [],
                       validation_set(ws.data, models, ws.cfg) if run and dist.main else None, models.pooler(),
                       models.window_inputs(), ws.cfg.seed, models.scales, models.device, stage_key(ws, "finetune"),
                       ws.layout.finetune_dir, ws.layout.finetune_log, ws.layout.head, ws.layout.tuned_trunk, tuner,
                       models.conv_start_cache(tuner) if tuner is not None else None, dist,
                       FinetuneLog(ws.layout.finetune_csv, ws.layout.finetune_plot, ws.layout.tensorboard_dir,
                                   f"fine-tuning of {ws.cfg.name} ({ft.recipe})"))


def stage_finetune(ws: Workspace, progress: bool) -> list[Path]:
    """Fine-tuning; under torchrun the ranks share each mini-batch when ``finetune.micro_batches`` is a
    multiple of their number, else rank 0 fine-tunes alone."""
    from .finetune import finetune
    d = ws.dist
    if d.world > 1 and ws.models.finetune_cfg.micro_batches % d.world:
        if not d.main:
            return []
        log.warning("fine-tuning on rank 0 alone: set finetune.micro_batches to a multiple of the %d processes "
                    "to share it (which changes the results, as a key part)", d.world)
        with d.alone():  # with the threads of the ranks that wait on this machine
            out = finetune(finetune_job(ws, Dist()), progress)
    else:
        out = finetune(finetune_job(ws, d), progress)
    return [out] + ([ws.layout.tuned_trunk] if ws.models.conv_tuned else [])


def fine_tuned_head(ws: Workspace) -> "SPPHead":
    """The fine-tuned fc6/fc7/fc8 of an experiment (``<workdir>/finetune/best.pt``), in eval mode."""
    from .finetune import load_head
    return load_head(ws.models, len(ws.data.classes), ws.cfg.seed, ws.layout.head)


def tuned_views(ws: Workspace) -> list[ImageRecord]:
    """The images the conv5_tuned stage caches: the train and test splits."""
    d = ws.cfg.dataset
    splits = dict.fromkeys([d.train_split, d.test_split])
    return list({r.key: r for s in splits for r in ws.data.dataset(s).records}.values())


def stage_conv5_tuned(ws: Workspace, progress: bool) -> list[Path]:
    """conv5 of the train and test images with the conv-fine-tuned trunk (what SVMs, box regression and
    test then pool from)."""
    cache = ws.models.conv5_cache(tuned=True)
    cache.build(ws.dist.shard(tuned_views(ws)), ws.models.device, progress)
    return list(cache.dirs.values())


def training_windows(ws: Workspace, tuned: bool) -> "TrainingWindows":
    """The training split's windows and inputs (maps of the conv-fine-tuned trunk if ``tuned``)."""
    from .window_features import TrainingWindows
    split = ws.cfg.dataset.train_split
    return TrainingWindows(split, ws.data.dataset(split).records, lambda r: ws.data.boxes_for(r, split),
                           ws.models.window_inputs(tuned), ws.cfg.dataset.use_difficult)


def _svms(ws: Workspace, kind: str, progress: bool) -> list[Path]:
    """SVMs on ``kind`` features: ``pool5`` (no fine-tuning: always the ImageNet trunk's maps) or ``fc7``."""
    from .svm import train_svms
    from .window_features import WindowFeatures
    tuned = kind == "fc7" and ws.models.conv_tuned
    data = training_windows(ws, tuned)
    feats = WindowFeatures(ws.models.pooler(), kind, fine_tuned_head(ws) if kind == "fc7" else None,
                           ws.models.device, ws.cfg.features.batch_windows)
    scale = _feature_scale(ws, feats, data, tuned, progress)
    # under torchrun the ranks share the fc7 features of the mining pass (fc6's product is what costs); pool5
    # features each rank pools itself, which costs less than sending them (Lite0: 5,600-d, 45 MB an image)
    share = ws.dist if kind == "fc7" else Dist()
    models = _by_class(ws, ws.layout.svm(kind), lambda only: train_svms(data, feats, scale, ws.data.classes,
                                                                        ws.cfg.svm, progress, only, share))
    if models is not None:
        from .plots import mining_progress
        mining_progress(models.info, ws.layout.mining_plot(kind),
                        f"{ws.cfg.name}: hard-negative mining of the {kind} SVMs on {data.split}")
    return [ws.layout.svm(kind)]


def _feature_scale(ws: Workspace, feats: "WindowFeatures", data: "TrainingWindows", tuned: bool,
                   progress: bool) -> float:
    """:func:`spp_det.window_features.feature_scale` of ``feats`` on ``data``: under torchrun rank 0
    measures and saves it, then the other ranks read it."""
    from .window_features import feature_scale
    path = norm_path(ws, feats, data.split, tuned)
    if ws.dist.main:
        scale = feature_scale(feats, data, ws.cfg.norm, ws.cfg.seed, path, progress)
    ws.dist.barrier()
    return scale if ws.dist.main else feature_scale(feats, data, ws.cfg.norm, ws.cfg.seed, path, False)


def _by_class(ws: Workspace, out: Path, train: Callable[[Optional[list[int]]], "LinearModels"]
              ) -> Optional["LinearModels"]:
    """Per-class linear models ``train(only)`` saved to ``out`` and returned (None on ranks other than 0);
    under torchrun each rank trains its share of the classes (:meth:`Dist.shard` of their indices) and
    rank 0 merges and saves them."""
    from .linear import LinearModels
    d = ws.dist
    if d.world == 1:
        models = train(None)
    else:
        mine = d.shard(range(len(ws.data.classes)))
        parts = d.gather((mine, train(mine)))  # (every rank trains, even with no class: the SVMs share a pass)
        if not d.main:
            return None
        models = LinearModels.merge([(cs, m) for cs, m in parts if cs])
    models.save(out)
    return models


def norm_path(ws: Workspace, feats: "WindowFeatures", split: str, tuned: bool) -> Path:
    """Where :func:`spp_det.window_features.feature_scale` keeps the norm of ``feats`` on ``split``: named by
    a hash of everything it depends on (window features of the start or, ``tuned``, the conv-fine-tuned
    trunk; for fc7 the bytes of the head's weights it measured)."""
    key = stable_hash({"kind": feats.kind, "pool": ws.models.pooling_key(tuned), "norm": vars(ws.cfg.norm),
                       "seed": ws.cfg.seed, "proposals": ws.data.proposals_key(split),
                       "annotations": ws.data.annotations_key(split), "use_difficult": ws.cfg.dataset.use_difficult,
                       "head": state_digest(feats.head.state_dict()) if feats.kind == "fc7" else None})
    return ws.layout.norm(feats.kind, key)


def stage_svm_pool5(ws: Workspace, progress: bool) -> list[Path]:
    return _svms(ws, "pool5", progress)


def stage_svm(ws: Workspace, progress: bool) -> list[Path]:
    return _svms(ws, "fc7", progress)


def stage_bbox_reg(ws: Workspace, progress: bool) -> list[Path]:
    from .bbox_reg import train_bbox_regressors
    from .window_features import WindowFeatures
    data = training_windows(ws, ws.models.conv_tuned)
    feats = WindowFeatures(ws.models.pooler(), "pool5")
    scale = _feature_scale(ws, feats, data, ws.models.conv_tuned, progress)
    _by_class(ws, ws.layout.bbox_reg, lambda only: train_bbox_regressors(
        data, feats, scale, ws.data.classes, ws.cfg.bbox_reg, ws.cfg.seed, progress, only))
    return [ws.layout.bbox_reg]


def stage_test(ws: Workspace, progress: bool) -> list[Path]:
    from .inference import TrainedModels, detect_split, write_detections
    split = ws.cfg.dataset.test_split
    models = TrainedModels.from_workspace(ws)
    base = ws.models.window_inputs() if ws.models.conv_tuned and models.svm_pool5 is not None else None
    records = ws.data.dataset(split).records
    found = detect_split(models, ws.dist.shard(records), lambda r: ws.data.boxes_for(r, split),
                         ws.models.detection_inputs(), base, progress)
    parts = ws.dist.gather(found)  # torchrun: every rank's images, on rank 0
    if not ws.dist.main:
        return []
    for v in found:
        by_id = {image_id: d for part in parts for image_id, d in part[v]}
        write_detections(ws.layout.detections(split, v), split, ws.data.classes,
                         [(r.image_id, by_id[r.image_id]) for r in records])  # in split order, as one process
    return [ws.layout.detections(split, v) for v in found]


def stage_eval(ws: Workspace, progress: bool) -> list[Path]:
    """VOC mAP (``eval.use_07_metric``) and COCO AP/AP50/AP75 of every variant's detections."""
    from .evaluation.coco import evaluate_comp4_voc_coco
    from .evaluation.voc import format_ap_table
    split = ws.cfg.dataset.test_split
    records = ws.data.dataset(split).records
    variants = [v.name for v in VARIANTS if v.used(ws.cfg) and ws.layout.detections(split, v.name).is_dir()]
    results, outs = {}, []
    for v in variants:
        vdir = ws.layout.detections(split, v)
        res, coco_res = evaluate_comp4_voc_coco(vdir, records, ws.data.classes, split, ws.cfg.eval.use_07_metric)
        save_json(coco_res, vdir / "coco_results.json")
        results[v] = res
        out = ws.layout.eval_result(split, v)
        save_json({"mAP": res["mAP"], "ap": res["ap"], "npos": res["npos"], "metric": res["metric"],
                   "coco": res["coco"]}, out)
        outs += [out, vdir / "coco_results.json"]
    main = variants[-1]
    text = format_ap_table(results[main], f"Per-class AP on {split} ({VARIANT[main].title}):")
    text += "\n\n" + stagewise_table(results, split)
    save_text(text + "\n", ws.layout.stagewise(split))
    outs.append(ws.layout.stagewise(split))
    draw_eval_plots(ws, split, results)
    print(text, flush=True)
    return outs


def draw_eval_plots(ws: Workspace, split: str, results: dict) -> None:
    """The eval stage's pictures (not stage outputs, :mod:`spp_det.layout`): per-class precision-recall
    curves of every variant in ``results`` (variant -> :func:`spp_det.evaluation.voc.evaluate`'s dict),
    the stage-wise bars, and the recall of ``split``'s proposals against their number."""
    from proposals.recall import plot_recall, proposal_recall

    from .plots import pr_curves, stagewise_bars
    for v, res in results.items():
        pr_curves(res["curves"], ws.layout.pr_plot(split, v),
                  f"{ws.cfg.name}, {split}: {VARIANT[v].title} (mAP {100 * res['mAP']:.2f}, {res['metric']})")
    stagewise_bars([(VARIANT[v].title, r["mAP"], r.get("coco", {}).get("AP", float("nan"))) for v, r in results.items()],
                   ws.layout.stagewise_plot(split), f"{ws.cfg.name}: stage-wise results on {split} (cf. Table 9)")
    records = ws.data.dataset(split).records
    recall = proposal_recall(records, ws.data.proposals(split))
    plot_recall({ws.cfg.proposals.mode: recall}, ws.layout.recall_plot(split),
                f"{ws.cfg.name}: proposals of {split} ({len(records)} images)")


def stagewise_table(results: dict, split: str) -> str:
    lines = [f"Stage-wise mAP on {split} (cf. the paper's Table 9), with COCO metrics of the same detections:",
             f"  {'':<40} {'mAP':>6}   {'COCO AP':>7} {'AP50':>6} {'AP75':>6}"]
    for v, res in results.items():
        c = res.get("coco", {})
        lines.append(f"  {VARIANT[v].title:<40} {100 * res['mAP']:6.2f}   {100 * c.get('AP', float('nan')):7.2f} "
                     f"{100 * c.get('AP50', float('nan')):6.2f} {100 * c.get('AP75', float('nan')):6.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- own key parts
def _data(ws: Workspace, split: str) -> dict:
    return {"images": ws.data.images_key(split), "annotations": ws.data.annotations_key(split)}


def _training_labels(ws: Workspace, *splits: Optional[str]) -> dict:
    """Annotations of the splits a stage trains on, and whether difficult objects are used."""
    return {"annotations": {s: ws.data.annotations_key(s) for s in splits if s},
            "use_difficult": ws.cfg.dataset.use_difficult}


def _pretrain_training_data(ws: Workspace) -> dict:
    """What pre-training learns from: a classification folder of the user's, or crops of the train split."""
    c = ws.cfg
    if c.pretrain.data:
        from .data.fingerprint import folder_fingerprint
        return {"folder": folder_fingerprint(c.pretrain.data)}
    return {"train": _data(ws, c.dataset.train_split)}


def key_pretrain(ws: Workspace) -> dict:
    c = ws.cfg
    key = {"pretrain": vars(c.pretrain), "backbone": c.backbone.name, "levels": list(c.model.spp_levels),
           **_pretrain_training_data(ws)}
    return key if c.pretrain.data else {**key, "test": _data(ws, c.dataset.test_split)}  # its val crops


def key_proposals(ws: Workspace) -> dict:
    return {f"split:{s}": ws.data.proposals_key(s) for s in ws.proposal_splits()}


def key_conv5(ws: Workspace) -> dict:
    return {"maps": [ws.models.conv5_key(s) for s in ws.models.scales], "flip": conv5_flips(ws),
            **{f"split:{s}": ws.data.images_key(s) for s in ws.proposal_splits()}}


def key_finetune(ws: Workspace) -> dict:
    c = ws.cfg
    # (micro_batches at 1 left out so that keys made before the option existed hold; checkpoint_minutes only
    # says how often a resumable state is written)
    ft = {k: v for k, v in vars(ws.models.finetune_cfg).items()
          if (k, v) != ("micro_batches", 1) and k != "checkpoint_minutes"}
    return {**_training_labels(ws, ws.finetune_split, c.finetune.val_split), "pool": ws.models.pooling_key(),
            "model": vars(c.model), "finetune": ft, "seed": c.seed}


def key_conv5_tuned(ws: Workspace) -> dict:
    d = ws.cfg.dataset
    return {"maps": [ws.models.conv5_key(s, tuned=True) for s in ws.models.scales],
            "images": {s: ws.data.images_key(s) for s in dict.fromkeys([d.train_split, d.test_split])}}


def key_svm_pool5(ws: Workspace) -> dict:
    c = ws.cfg
    return {**_training_labels(ws, c.dataset.train_split), "pool": ws.models.pooling_key(), "svm": vars(c.svm),
            "norm": vars(c.norm), "seed": c.seed}


def key_svm(ws: Workspace) -> dict:
    return {**key_svm_pool5(ws), "pool": ws.models.pooling_key(ws.models.conv_tuned)}


def key_bbox_reg(ws: Workspace) -> dict:
    c = ws.cfg
    bbox = {k: v for k, v in vars(c.bbox_reg).items() if k != "max_memory_gb"}  # (grouping: the same models)
    return {**_training_labels(ws, c.dataset.train_split), "pool": ws.models.pooling_key(ws.models.conv_tuned),
            "bbox": bbox, "norm": vars(c.norm), "seed": c.seed}


def key_test(ws: Workspace) -> dict:
    c = ws.cfg
    return {"test": vars(c.test), "images": ws.data.images_key(c.dataset.test_split), "split": c.dataset.test_split,
            "pool": ws.models.pooling_key(ws.models.conv_tuned)}


def key_eval(ws: Workspace) -> dict:
    return {"eval": vars(ws.cfg.eval), "annotations": ws.data.annotations_key(ws.cfg.dataset.test_split)}


# ---------------------------------------------------------------------------------------- what --force deletes
def _cached_maps(cache, records) -> list[Path]:
    return [cache.path(r, s) for r in records for s in cache.scales]


def scratch_pretrain(ws: Workspace) -> list[Path]:
    return [ws.layout.pretrain_dir]


def scratch_proposals(ws: Workspace) -> list[Path]:
    from proposals.cache import partial_path, shard_files
    paths = [ws.data.proposals_path(s) for s in ws.proposal_splits()]
    return paths + [partial_path(p) for p in paths] + [q for p in paths for q in shard_files(p)]  # torchrun's


def scratch_conv5(ws: Workspace) -> list[Path]:
    return _cached_maps(ws.models.conv5_cache(), conv5_views(ws))


def scratch_finetune(ws: Workspace) -> list[Path]:
    """Checkpoints, the head and trunk, and the cached outputs of the conv fine-tuning start."""
    from .features import cached_map_name
    views = ws.data.dataset(ws.finetune_split).with_flipped()
    return [ws.layout.finetune_dir] + [d / cached_map_name(r) for d in ws.models.conv_start_dirs() for r in views]


def scratch_conv5_tuned(ws: Workspace) -> list[Path]:
    return _cached_maps(ws.models.conv5_cache(tuned=True), tuned_views(ws)) if ws.layout.tuned_trunk.is_file() else []


def scratch_svm_pool5(ws: Workspace) -> list[Path]:
    return [ws.layout.svm("pool5"), *ws.layout.norms("pool5")]


def scratch_svm(ws: Workspace) -> list[Path]:
    return [ws.layout.svm("fc7"), *ws.layout.norms("fc7")]


def scratch_bbox_reg(ws: Workspace) -> list[Path]:
    return [ws.layout.bbox_reg.parent, *ws.layout.norms("pool5")]


def scratch_test(ws: Workspace) -> list[Path]:
    return [ws.layout.detections(ws.cfg.dataset.test_split)]


def scratch_eval(ws: Workspace) -> list[Path]:
    return [ws.layout.eval_dir]


# ---------------------------------------------------------------------------------------- the table
def _always(ws: Workspace) -> bool:
    return True


def _train_split(ws: Workspace) -> list[str]:
    return [ws.cfg.dataset.train_split]


def _test_split(ws: Workspace) -> list[str]:
    return [ws.cfg.dataset.test_split]


@dataclass(frozen=True)
class Stage:
    """One row of the pipeline.

    ``run(ws, progress)`` does the work and returns its outputs; ``reads``: the stages whose outputs it
    reads; ``key(ws)``: its own key parts (config values and data fingerprints; the keys of ``reads`` are
    added by :func:`stage_key`); ``used(ws)``: whether this config runs it; ``scratch(ws)``: what
    ``--force`` deletes; ``splits(ws)``: the data splits it reads, when not all (a stage that works per
    split, proposals and conv5, keys each split apart as ``split:<name>``, and a reader's key takes only
    the splits it reads: a replaced test image does not retrain); ``manifest``: False for the dataset
    stage, which always runs (it is cheap, and generating an embedded dataset is idempotent);
    ``sharded``: under torchrun every rank runs it on its share of the work (``ws.dist``: images;
    fine-tuning's micro-batches; SVMs' and box regressors' classes) and rank 0 merges, where other
    stages run on rank 0 alone (:mod:`spp_det.distributed`); ``doc``: one line for ``spp-det --help``.
    """

    name: str
    run: Callable[[Workspace, bool], list[Path]]
    doc: str
    reads: tuple[str, ...] = ()
    key: Callable[[Workspace], dict] = lambda ws: {}
    used: Callable[[Workspace], bool] = _always
    scratch: Callable[[Workspace], list[Path]] = lambda ws: []
    splits: Optional[Callable[[Workspace], list[str]]] = None
    manifest: bool = True
    sharded: bool = False


STAGES: tuple[Stage, ...] = (
    Stage("dataset", stage_dataset, "read and check every split (an embedded dataset is generated first)",
          manifest=False),
    Stage("pretrain", stage_pretrain, "SPP classification pre-training of the backbone (the pretrain section)",
          (), key_pretrain, lambda ws: ws.cfg.pretrain is not None, scratch_pretrain),
    Stage("proposals", stage_proposals, "selective search boxes of every split",
          (), key_proposals, _always, scratch_proposals, sharded=True),
    Stage("conv5", stage_conv5, "conv5 maps of every image view at every scale, cached",
          ("pretrain",), key_conv5, frozen_maps_used, scratch_conv5, sharded=True),
    Stage("finetune", stage_finetune, "fine-tune fc6/fc7/fc8 (and the last conv layers if set) on pooled windows",
          ("proposals", "conv5"), key_finetune, _always, scratch_finetune,
          lambda ws: [s for s in (ws.finetune_split, ws.cfg.finetune.val_split) if s], sharded=True),
    Stage("conv5_tuned", stage_conv5_tuned, "conv5 maps of the conv-fine-tuned trunk",
          ("finetune",), key_conv5_tuned, lambda ws: ws.models.conv_tuned, scratch_conv5_tuned, sharded=True),
    Stage("svm_pool5", stage_svm_pool5, "per-class SVMs on pooled conv5 (no fine-tuning), hard negatives mined",
          ("proposals", "conv5"), key_svm_pool5, lambda ws: ws.cfg.svm.pool5_baseline, scratch_svm_pool5,
          _train_split, sharded=True),
    Stage("svm", stage_svm, "per-class SVMs on fine-tuned fc7, hard negatives mined",
          ("proposals", "conv5", "finetune", "conv5_tuned"), key_svm, _always, scratch_svm, _train_split,
          sharded=True),
    Stage("bbox_reg", stage_bbox_reg, "per-class bounding-box regressors on pool5 features",
          ("proposals", "conv5", "conv5_tuned"), key_bbox_reg, lambda ws: ws.cfg.bbox_reg.enabled,
          scratch_bbox_reg, _train_split, sharded=True),
    Stage("test", stage_test, "detect on the test split (every variant; comp4 files)",
          ("proposals", "conv5", "finetune", "conv5_tuned", "svm_pool5", "svm", "bbox_reg"), key_test, _always,
          scratch_test, _test_split, sharded=True),
    Stage("eval", stage_eval, "VOC mAP and COCO AP of every variant's detections",
          ("test",), key_eval, _always, scratch_eval, _test_split),
)
STAGE = {s.name: s for s in STAGES}
STAGE_NAMES = tuple(STAGE)


def get_stage(name: str) -> Stage:
    if name not in STAGE:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGE_NAMES)}")
    return STAGE[name]


def downstream(name: str, ws: Optional[Workspace] = None) -> list[str]:
    """``name`` and every stage that reads it, directly or not, in table order (with ``ws``: through the
    stages its config uses; an unused stage passes nothing on, its key being constant)."""
    hit = {get_stage(name).name}
    for s in STAGES:
        if any(r in hit for r in s.reads) and (ws is None or s.used(ws)):
            hit.add(s.name)
    return [s.name for s in STAGES if s.name in hit]


# ---------------------------------------------------------------------------------------- keys and manifests
def key_parts(ws: Workspace, name: str) -> dict[str, str]:
    """Hash of each part of a stage's key: ``own:<part>`` for its own, ``reads:<stage>`` for each stage
    it reads (that stage's key restricted to the splits this one reads, :attr:`Stage.splits`)."""
    st = get_stage(name)
    if not st.used(ws):
        return {"unused": name}
    parts = {f"own:{k}": stable_hash(v) for k, v in st.key(ws).items()}
    splits = st.splits(ws) if st.splits else None
    parts.update({f"reads:{r}": stage_key(ws, r, splits) for r in st.reads})
    return parts


def stage_key(ws: Workspace, name: str, splits: Optional[list[str]] = None) -> str:
    """The stage's key: a hash of :func:`key_parts`; with ``splits``, of the parts that concern them
    (a per-split part ``own:split:<s>`` of another split is left out)."""
    parts = key_parts(ws, name)
    if splits is not None:
        parts = {k: v for k, v in parts.items() if not k.startswith("own:split:") or k[10:] in splits}
    return stable_hash(parts)


def manifest_path(ws: Workspace, name: str) -> Path:
    return ws.layout.manifest(name)


def stale_reason(ws: Workspace, name: str) -> Optional[str]:
    """Why a stage is not done (None if done): no manifest, changed key parts, or missing outputs."""
    if not get_stage(name).used(ws):
        return None
    p = manifest_path(ws, name)
    if not p.is_file():
        return "not run yet"
    m = load_json(p)
    parts = key_parts(ws, name)
    if m.get("hash") != stable_hash(parts):
        old = m.get("parts")
        if not isinstance(old, dict):
            return "made by an older version of spp-det"
        changed = sorted(k for k in set(parts) | set(old) if parts.get(k) != old.get(k))
        return "changed since its last run: " + ", ".join(changed)
    missing = [o for o in m.get("outputs", []) if not (ws.root / o).exists()]
    return f"output {missing[0]} is missing" if missing else None


def stage_done(ws: Workspace, name: str) -> bool:
    return stale_reason(ws, name) is None


def mark_done(ws: Workspace, name: str, outputs: list[Path | str], info: Optional[dict] = None) -> None:
    """Record a finished stage; outputs are stored relative to the work directory (relocatable)."""
    root = ws.root.resolve()
    rel = [str(Path(o).resolve().relative_to(root)) if Path(o).resolve().is_relative_to(root)
           else str(Path(o).resolve()) for o in outputs]
    parts = key_parts(ws, name)
    save_json({"stage": name, "hash": stable_hash(parts), "parts": parts, "outputs": rel, "info": info or {}},
              manifest_path(ws, name))


def manifest_info(ws: Workspace, name: str) -> dict:
    p = manifest_path(ws, name)
    return load_json(p).get("info", {}) if p.is_file() else {}


def remove_paths(paths: list[Path]) -> int:
    """Delete files and directory trees that exist; returns how many went."""
    n = 0
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        n += 1
    return n


def force(ws: Workspace, name: str) -> list[str]:
    """Make ``name`` and everything downstream of it recompute from scratch: delete their manifests,
    outputs, partial outputs and caches (:attr:`Stage.scratch`). Returns the stages reset."""
    reset = []
    for s in downstream(name, ws):
        st = STAGE[s]
        if not st.manifest:
            continue
        n = remove_paths([manifest_path(ws, s)] + st.scratch(ws))
        log.info("--force %s: %s reset (%d files or folders deleted)", name, s, n)
        reset.append(s)
    return reset
