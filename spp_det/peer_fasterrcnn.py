"""A peer to measure SPP-net against: torchvision's Faster R-CNN on the same splits and backbone.

Same data (an experiment's ``dataset`` section: train on ``train_split``,
test on ``test_split``, difficult objects not trained on, as ours), same
backbone and ImageNet weights (a Lite trunk cut at stride 16, or any backbone
of :mod:`spp_det.models` with ``backbone.weights``), same input scale (shorter
side ``model.scales[0]``), evaluated by the same VOC code
(:func:`spp_det.evaluation.voc.evaluate` on comp4 files written by
:func:`spp_det.inference.write_detections`).

What differs is the method: a region proposal network and RoI-Align head
(``torchvision.models.detection.FasterRCNN``) trained end to end *with the conv
layers* from ``trainable_from`` on (BatchNorm frozen), image-centric batches,
horizontal flips (each image with probability 1/2; ``flip=False`` where ours fine-tunes
without mirrored views, ``finetune.use_flipped`` false or its check saying no, so both see
the same views), SGD with linear
warm-up and two learning-rate steps.

Conventions: our boxes are 0-based inclusive pixels ``x1, y1, x2, y2``;
torchvision's are continuous coordinates, so a box goes in as
``(x1, y1, x2 + 1, y2 + 1)`` and comes out with 1 subtracted from ``x2, y2``.
Training resumes from the last finished epoch (``<out>/ckpt.pt``).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .config import Config
from .data.voc import ImageRecord
from .detect import Detections
from .io_utils import save_json, save_torch, stable_hash
from .models import build_backbone

log = logging.getLogger(__name__)


@dataclass
class PeerConfig:
    epochs: int = 13
    batch_images: int = 2
    base_lr: float = 0.0025  # torchvision's detection reference: 0.02 for 16 images, scaled to 2
    lr_steps: list[int] = field(default_factory=lambda: [9, 12])  # epochs after which lr *= 0.1
    warmup_iters: int = 200
    momentum: float = 0.9
    weight_decay: float = 1e-4
    # trunk modules before this index stay frozen: Lite's stem, stage 0 and stage 1 (stride <= 4), as
    # torchvision freezes ResNet's conv1 and layer1 by default
    trainable_from: int = 6
    anchor_sizes: list[int] = field(default_factory=lambda: [32, 64, 128, 256, 512])
    score_thresh: float = 0.001
    detections_per_img: int = 100
    seed: int = 0
    flip: bool = True  # mirror each training image with probability 1/2


def build_peer(cfg: Config, peer: PeerConfig) -> torch.nn.Module:
    """Faster R-CNN over the experiment's backbone trunk (its conv map is the single feature level)."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    bb = build_backbone(cfg.backbone.name, cfg.backbone.weights)
    trunk = bb.trunk.to(memory_format=torch.contiguous_format)
    for i, m in enumerate(trunk.children()):
        for p in m.parameters():
            p.requires_grad_(i >= peer.trainable_from)
    for m in trunk.modules():  # frozen BatchNorm: statistics and affine parameters stay ImageNet's
        if isinstance(m, torch.nn.BatchNorm2d):
            for p in m.parameters():
                p.requires_grad_(False)
    trunk.out_channels = bb.out_channels
    pre = bb.preprocess  # pixels 0..255 -> (x - mean) / std; torchvision takes 0..1 RGB and normalises itself
    if pre.order != "rgb":
        raise ValueError(f"the peer feeds RGB images; backbone {bb.name!r} expects {pre.order}")
    anchors = AnchorGenerator(sizes=(tuple(peer.anchor_sizes),), aspect_ratios=((0.5, 1.0, 2.0),))
    model = FasterRCNN(trunk, num_classes=len(cfg.dataset.classes) + 1, rpn_anchor_generator=anchors,
                       box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2),
                       min_size=cfg.model.scales[0], max_size=10 * cfg.model.scales[0],
                       image_mean=[m / 255 for m in pre.mean], image_std=[s / 255 for s in pre.std],
                       box_score_thresh=peer.score_thresh, box_detections_per_img=peer.detections_per_img)
    return model


def _freeze_bn(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()


def _to_input(record: ImageRecord, flip: bool) -> tuple[torch.Tensor, dict]:
    img = record.load()[:, :, ::-1]  # BGR -> RGB
    boxes, labels = record.gt_for_training(False)
    boxes = boxes.astype(np.float32).copy()
    if flip:
        img = img[:, ::-1]
        boxes[:, [0, 2]] = record.width - 1 - boxes[:, [2, 0]]
    x = torch.from_numpy(np.ascontiguousarray(img).transpose(2, 0, 1).copy()).float().div_(255)
    t = torch.from_numpy(boxes).reshape(-1, 4)
    t[:, 2:] += 1.0  # inclusive pixels -> continuous coordinates
    return x, {"boxes": t, "labels": torch.from_numpy(labels.astype(np.int64) + 1)}


def train_peer(model: torch.nn.Module, records: Sequence[ImageRecord], peer: PeerConfig, out_dir: Path,
               key: str, progress: bool = True) -> dict:
    """Train (or resume) on the model's device; returns ``{"seconds", "iterations", "history"}``."""
    dev = next(model.parameters()).device
    ckpt = out_dir / "ckpt.pt"
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=peer.base_lr, momentum=peer.momentum, weight_decay=peer.weight_decay)
    per_epoch = math.ceil(len(records) / peer.batch_images)
    state = {"epoch": 0, "seconds": 0.0, "history": []}
    if ckpt.is_file():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)
        if saved.get("key") == key:
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            state = saved["state"]
            log.info("peer: resuming after epoch %d", state["epoch"])
    for epoch in range(state["epoch"], peer.epochs):
        model.train()
        _freeze_bn(model)
        rng = np.random.default_rng([peer.seed, epoch])
        order, flips = rng.permutation(len(records)), rng.random(len(records)) < (0.5 if peer.flip else 0.0)
        torch.manual_seed(peer.seed * 1000 + epoch)
        t0, losses = time.perf_counter(), []
        bar = tqdm(range(per_epoch), desc=f"peer epoch {epoch + 1}/{peer.epochs}", disable=not progress, leave=False)
        for b in bar:
            it = epoch * per_epoch + b
            lr = peer.base_lr * 0.1 ** sum(epoch >= s for s in peer.lr_steps)
            if it < peer.warmup_iters:
                lr *= 0.001 + 0.999 * it / peer.warmup_iters
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[b * peer.batch_images:(b + 1) * peer.batch_images]
            xs, ts = zip(*(_to_input(records[i], bool(flips[i])) for i in idx))
            xs = [x.to(dev) for x in xs]
            ts = [{k: v.to(dev) for k, v in t.items()} for t in ts]
            loss = sum(model(xs, ts).values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        state["seconds"] += time.perf_counter() - t0
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "lr": lr})
        log.info("peer epoch %d: loss %.3f (%.0f s so far)", epoch + 1, np.mean(losses), state["seconds"])
        save_torch({"key": key, "model": model.state_dict(), "opt": opt.state_dict(), "state": state}, ckpt)
    return {"seconds": state["seconds"], "iterations": peer.epochs * per_epoch, "history": state["history"]}


@torch.no_grad()
def detect_peer(model: torch.nn.Module, records: Sequence[ImageRecord],
                progress: bool = True) -> tuple[list[tuple[str, Detections]], float]:
    """Detections of every record (internal boxes, class indices) and the mean seconds per image."""
    model.eval()
    dev = next(model.parameters()).device
    out, t = [], 0.0
    for r in tqdm(records, desc="peer test", unit="img", disable=not progress, leave=False):
        x, _ = _to_input(r, False)
        t0 = time.perf_counter()
        pred = {k: v.cpu() for k, v in model([x.to(dev)])[0].items()}  # .cpu() waits for the GPU
        t += time.perf_counter() - t0
        boxes = pred["boxes"].numpy().astype(np.float32)
        boxes[:, 2:] -= 1.0
        out.append((r.image_id, Detections(boxes, pred["scores"].numpy().astype(np.float32),
                                           pred["labels"].numpy().astype(np.int64) - 1)))
    return out, t / max(1, len(records))


def run_peer(cfg: Config, peer: PeerConfig, out_dir: str | Path, progress: bool = True) -> dict:
    """Train the peer on the experiment's train split, test it, evaluate with our VOC code; writes
    ``<out>/summary.json`` and returns it."""
    from .evaluation.coco import evaluate_comp4_voc_coco
    from .inference import write_detections
    from .workspace import Workspace

    out = Path(out_dir)
    ws = Workspace(cfg)
    train = ws.data.dataset(cfg.dataset.train_split).records
    test = ws.data.dataset(cfg.dataset.test_split).records
    train_split = cfg.dataset.train_split
    data = {"images": ws.data.images_key(train_split), "annotations": ws.data.annotations_key(train_split)}
    key = stable_hash({"peer": asdict(peer), "data": data,
                       "backbone": cfg.backbone.name, "weights": ws.models.weights_key(), "scale": cfg.model.scales[0]})
    torch.manual_seed(peer.seed)
    model = build_peer(cfg, peer).to(ws.models.device)
    trained = train_peer(model, train, peer, out, key, progress)
    per_image, sec = detect_peer(model, test, progress)
    split = cfg.dataset.test_split
    write_detections(out / "detections", split, ws.data.classes, per_image)
    res, _ = evaluate_comp4_voc_coco(out / "detections", test, ws.data.classes, split, cfg.eval.use_07_metric)
    summary = {"mAP": res["mAP"], "ap": res["ap"], "coco": res["coco"], "train_seconds": trained["seconds"],
               "iterations": trained["iterations"], "test_seconds_per_image": sec, "history": trained["history"],
               "peer": asdict(peer), "train_images": len(train), "test_images": len(test),
               "dataset": cfg.dataset.root, "splits": [cfg.dataset.train_split, split], "device": str(ws.models.device)}
    save_json(summary, out / "summary.json")
    return summary
