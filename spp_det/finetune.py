"""Fine-tuning fc6/fc7 (+ a new N+1-way fc8) on pooled features; conv stays frozen.

Data: every image of the fine-tuning split, plus its horizontal mirror
(``finetune.use_flipped``).  Windows are the GT boxes and the proposals; a
window is foreground (label = class of its best GT + 1) when its best IoU is
>= ``fg_threshold`` (0.5), background (label 0) when in ``[bg_low, bg_high)``
= [0.1, 0.5), unused below 0.1.  IoUs use the +1 pixel rule.

Mini-batches of 128 windows, 25 % foreground, are drawn from *chunks* of
``images_per_chunk`` images: a chunk's windows are sampled, only those windows
are pooled from the conv5 cache, and the chunk gives ``batches_per_chunk``
batches, each mixing windows of all its images; with several scales each
window is pooled at a random one of them (validation uses the test-time
rule).  Memory is bounded by one
chunk, whatever the dataset size.  Chunk ``c`` is a slice of epoch
``c // chunks_per_epoch``'s permutation, sampled with ``rng([seed, c])``, so a
resumed run sees exactly the batches an uninterrupted one would.

SGD with momentum and weight decay, step learning-rate schedule.  A
checkpoint (weights, optimiser state, iteration, RNG state) is written
atomically every ``snapshot_every`` iterations and at the end; a killed run
resumes from it.  If ``val_split`` is set, each snapshot's loss on a fixed
sample of that split's windows picks ``best.pt``; otherwise ``best.pt`` is the
last snapshot.  The test split is never used (the config refuses it).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .boxes import box_iou
from .config import Config
from .data.voc import ImageRecord
from .head import SPPHead
from .io_utils import save_json, save_torch
from .multiscale import random_scale_indices
from .window_features import windows_of
from .workspace import Workspace

log = logging.getLogger(__name__)


@dataclass
class ImageWindows:
    """Usable windows of one image view: boxes ``(M, 4)`` internal, labels ``(M,)`` (0 = bg)."""

    record: ImageRecord
    boxes: np.ndarray
    labels: np.ndarray

    @property
    def fg(self) -> np.ndarray:
        return np.nonzero(self.labels > 0)[0]

    @property
    def bg(self) -> np.ndarray:
        return np.nonzero(self.labels == 0)[0]


def label_windows(record: ImageRecord, proposals: np.ndarray, cfg: Config) -> ImageWindows:
    """GT + proposals of one record, labelled fg/bg by best IoU (unused windows dropped)."""
    ft = cfg.finetune
    gt_boxes, gt_labels = record.gt_for_training(cfg.dataset.use_difficult)
    boxes, _ = windows_of(record, proposals, cfg.dataset.use_difficult)
    if len(gt_boxes) == 0:
        return ImageWindows(record, boxes[:0], np.zeros(0, np.int64))  # every IoU is 0 < bg_low: unused
    iou = box_iou(boxes, gt_boxes)
    best = iou.argmax(1)
    best_iou = iou[np.arange(len(boxes)), best]
    labels = np.full(len(boxes), -1, np.int64)
    labels[best_iou >= ft.fg_threshold] = gt_labels[best[best_iou >= ft.fg_threshold]] + 1
    labels[(best_iou >= ft.bg_low) & (best_iou < ft.bg_high)] = 0
    keep = labels >= 0
    return ImageWindows(record, boxes[keep], labels[keep])


def build_window_db(ws: Workspace, split: str, flipped: bool) -> list[ImageWindows]:
    records = ws.dataset(split).with_flipped() if flipped else list(ws.dataset(split).records)
    db = [label_windows(r, ws.boxes_for(r, split), ws.cfg) for r in records]
    nfg = sum(len(d.fg) for d in db)
    if nfg == 0:
        raise ValueError(f"fine-tuning split {split!r} has no foreground windows (no GT objects?)")
    return db


def sample_chunk(db: Sequence[ImageWindows], chunk: int,
                 cfg: Config) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of chunk ``chunk``: list of (image index, window index, label, scale index) per window.

    With several ``model.scales`` each window gets a uniformly random scale
    (the paper's multi-scale fine-tuning), drawn for the whole chunk from its
    own seeded stream so that a resumed run pools exactly the same features.
    """
    ft = cfg.finetune
    n = len(db)
    per_epoch = math.ceil(n / ft.images_per_chunk)
    epoch, pos = divmod(chunk, per_epoch)
    perm = np.random.default_rng([cfg.seed, 7, epoch]).permutation(n)
    images = perm[pos * ft.images_per_chunk:(pos + 1) * ft.images_per_chunk]
    rng = np.random.default_rng([cfg.seed, 11, chunk])
    fg = [(i, j) for i in images for j in db[i].fg]
    bg = [(i, j) for i in images for j in db[i].bg]
    n_fg = int(round(ft.batch_size * ft.fg_fraction))
    n_bg = ft.batch_size - n_fg
    nb = ft.batches_per_chunk

    def draw(pool: list, k: int) -> np.ndarray:
        if not pool:
            return np.zeros((0, 2), np.int64)
        idx = rng.choice(len(pool), size=k, replace=len(pool) < k)
        return np.asarray(pool, np.int64)[idx]

    fg_s, bg_s = draw(fg, n_fg * nb), draw(bg, n_bg * nb)
    scale_rng = np.random.default_rng([cfg.seed, 23, chunk])
    batches = []
    for b in range(nb):
        parts = [fg_s[b * n_fg:(b + 1) * n_fg], bg_s[b * n_bg:(b + 1) * n_bg]]
        sel = np.concatenate([p for p in parts if len(p)]) if any(len(p) for p in parts) else np.zeros((0, 2), np.int64)
        labels = np.array([db[i].labels[j] for i, j in sel], np.int64)
        batches.append((sel[:, 0], sel[:, 1], labels,
                        random_scale_indices(len(sel), len(cfg.model.scales), scale_rng)))
    return batches


def pool_selection(ws: Workspace, db: Sequence[ImageWindows], img_idx: np.ndarray, win_idx: np.ndarray,
                   pooler=None, cache=None, scale_idx: Optional[np.ndarray] = None) -> torch.Tensor:
    """Pooled features ``(K, D)`` for windows (img_idx[k], win_idx[k]) — each image's maps loaded once.

    ``scale_idx`` ``(K,)``: the scale each window is pooled at (else the test-time rule).
    """
    pooler = pooler or ws.pooler()
    cache = cache or ws.window_inputs()
    out = torch.empty((len(img_idx), pooler.dim), dtype=torch.float32)
    for i in np.unique(img_idx):
        rows = np.nonzero(img_idx == i)[0]
        rec = db[i].record
        fmap = cache.load(rec)
        out[torch.from_numpy(rows)] = pooler.pool(fmap, db[i].boxes[win_idx[rows]], (rec.height, rec.width),
                                                  None if scale_idx is None else scale_idx[rows])
    return out


def lr_at(it: int, cfg: Config) -> float:
    ft = cfg.finetune
    return ft.base_lr * ft.gamma ** sum(it >= s for s in ft.lr_steps)


def build_head(ws: Workspace) -> SPPHead:
    cfg = ws.cfg
    dim = ws.pooler().dim  # may build the backbone, which draws random numbers: do it before seeding
    torch.manual_seed(cfg.seed)
    head = SPPHead(dim, len(ws.classes), cfg.model.fc_dim, cfg.model.dropout, cfg.finetune.fc8_std)
    if head.init_from(ws.backbone.fc_init, cfg.model.spp_levels, ws.backbone.out_channels):
        log.info("fc6/fc7 initialised from the pretrained %s classifier", ws.backbone.name)
    return head


def _val_set(ws: Workspace) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    ft = ws.cfg.finetune
    if not ft.val_split:
        return None
    db = build_window_db(ws, ft.val_split, flipped=False)[: ft.val_images]
    rng = np.random.default_rng([ws.cfg.seed, 13])
    sel_i, sel_j = [], []
    for i, d in enumerate(db):
        for pool, k in ((d.fg, 8), (d.bg, 24)):
            if len(pool):
                pick = rng.choice(pool, size=min(k, len(pool)), replace=False)
                sel_i += [i] * len(pick)
                sel_j += list(pick)
    img_idx, win_idx = np.asarray(sel_i), np.asarray(sel_j)
    x = pool_selection(ws, db, img_idx, win_idx)
    y = torch.from_numpy(np.array([db[i].labels[j] for i, j in zip(img_idx, win_idx)], np.int64))
    return x, y


@torch.no_grad()
def _evaluate(head: SPPHead, val: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> dict:
    head.eval()
    x, y = val
    logits = torch.cat([head(x[i:i + 1024].to(device)).cpu() for i in range(0, len(x), 1024)])
    head.train()
    return {"loss": float(F.cross_entropy(logits, y)), "acc": float((logits.argmax(1) == y).float().mean())}


def finetune(ws: Workspace, progress: bool = True) -> Path:
    """Run (or resume) fine-tuning; returns the path of ``best.pt`` (the head's state dict)."""
    cfg, ft = ws.cfg, ws.cfg.finetune
    out_dir = ws.root / "finetune"
    ckpt_path, best_path, log_path = out_dir / "ckpt.pt", out_dir / "best.pt", out_dir / "log.json"
    device = ws.device
    head = build_head(ws).to(device)
    if not ft.enabled or ft.iterations == 0:
        save_torch(head.state_dict(), best_path)
        return best_path
    params = [{"params": [p for n, p in head.named_parameters() if n.endswith("weight")], "weight_decay": ft.weight_decay},
              {"params": [p for n, p in head.named_parameters() if n.endswith("bias")], "weight_decay": 0.0}]
    opt = torch.optim.SGD(params, lr=ft.base_lr, momentum=ft.momentum)
    it, history, best = 0, [], None
    torch.manual_seed(cfg.seed + 1)  # dropout masks: reproducible whatever ran before
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("hash") == ws.stage_hash("finetune"):
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["opt"])
            it, history, best = state["iter"], state["history"], state["best"]
            torch.set_rng_state(state["torch_rng"])
            log.info("resuming fine-tuning at iteration %d", it)
    db = build_window_db(ws, ws.finetune_split, ft.use_flipped)
    log.info("fine-tuning on %d image views: %d fg / %d bg windows", len(db),
             sum(len(d.fg) for d in db), sum(len(d.bg) for d in db))
    val = _val_set(ws)
    pooler, cache = ws.pooler(), ws.window_inputs()
    head.train()
    bar = tqdm(total=ft.iterations, initial=it, desc="fine-tune", unit="it", disable=not progress)
    t0, loss_acc, n_acc = time.perf_counter(), 0.0, 0
    start_it = it
    while it < ft.iterations:
        chunk, skip = divmod(it, ft.batches_per_chunk)
        batches = sample_chunk(db, chunk, cfg)[skip:]
        all_i = np.concatenate([b[0] for b in batches])
        all_j = np.concatenate([b[1] for b in batches])
        all_s = np.concatenate([b[3] for b in batches])
        feats = pool_selection(ws, db, all_i, all_j, pooler, cache, all_s)
        offset = 0
        for _, _, labels, _ in batches:
            x = feats[offset:offset + len(labels)].to(device)
            y = torch.from_numpy(labels).to(device)
            offset += len(labels)
            for g in opt.param_groups:
                g["lr"] = lr_at(it, cfg)
            loss = F.cross_entropy(head(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_acc += loss.item()
            n_acc += 1
            it += 1
            bar.update(1)
            if it % ft.snapshot_every == 0 or it == ft.iterations:
                entry = {"iter": it, "train_loss": loss_acc / max(1, n_acc), "lr": lr_at(it - 1, cfg)}
                loss_acc, n_acc = 0.0, 0
                if val is not None:
                    entry.update({f"val_{k}": v for k, v in _evaluate(head, val, device).items()})
                history.append(entry)
                bar.set_postfix(loss=f"{entry['train_loss']:.3f}")
                if val is None or best is None or entry["val_loss"] < best["val_loss"]:
                    best = entry
                    save_torch({k: v.cpu() for k, v in head.state_dict().items()}, best_path)
                save_torch({"hash": ws.stage_hash("finetune"), "head": head.state_dict(), "opt": opt.state_dict(),
                            "iter": it, "history": history, "best": best, "torch_rng": torch.get_rng_state()},
                           ckpt_path)
                save_json({"history": history, "best": best}, log_path)
            if it >= ft.iterations:
                break
    bar.close()
    dt = time.perf_counter() - t0
    if it > start_it:
        log.info("fine-tuning: %d iterations in %.1f s (%.3f s/it); best snapshot %s", it - start_it, dt,
                 dt / (it - start_it), best)
    return best_path


def load_head(ws: Workspace, path: Optional[Path] = None) -> SPPHead:
    head = build_head(ws)
    head.load_state_dict(torch.load(path or ws.root / "finetune" / "best.pt", map_location="cpu", weights_only=True))
    return head.eval()
