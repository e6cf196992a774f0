"""SPP classification pre-training (paper section 3): conv + SPP + fc6/fc7/fc8 on an image folder.

Data: an ImageNet-style folder ``<root>/<class>/*.jpg`` (classes = sorted
sub-folder names; hidden files ignored).  Training views: the image resized
to shorter side ``resize`` (256), a random ``crop`` (224) square, a random
horizontal flip, pre-processed like the backbone (ZF-5: BGR minus 128).

* **Single-size** training (``sizes: [224]``): every epoch at 224.
* **Multi-size** training (``sizes: [224, 180]``, the paper's): whole epochs
  alternate between the sizes; at 180 the same 224 region is resized to
  180 x 180 (same content, lower resolution).  The SPP output length does not
  depend on the input size, so all sizes share every weight.

Net: the backbone's conv trunk (random init, ``seed``) -> image-level SPP
(levels 1, 2, 3, 6: 50 bins, the same bins as the detector's window pooling)
-> fc6 -> ReLU -> dropout -> fc7 -> ReLU -> dropout -> fc8 (softmax loss).
SGD with momentum and weight decay (or Adam, ``optimizer``), step schedule; a checkpoint after every
epoch (atomic) lets a killed run resume; ``model.pt`` holds ``trunk.*``,
``fc6.*``, ``fc7.*`` and ``fc8.*``, which :func:`spp_det.models.build_zf5`
loads as a detection backbone plus fc6/fc7 initialisation.

Evaluation (top-1 / top-5 error over the validation folder):

* ``center``: shorter side 256, the centre 224 x 224 crop.
* ``full``: shorter side 256, the whole image (SPP takes any size).
* ``multiview``: for each scale in ``multiview_scales`` (224, 256, 300, 360,
  448, 560) the conv map of the whole resized image and of its mirror is
  computed once, and the 224 x 224 views (centre, 4 corners, 4 edge middles;
  identical windows counted once, so a 224 scale gives 3 x 2 = 6 views and the
  others 18: 96 in all) are pooled from it (:func:`multiview_windows`), plus
  the 2 full-image views (256, mirrored or not); softmax scores are averaged.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .config import PretrainConfig
from .data.images import load_image, resize_short_side
from .devices import rng_state, set_rng_state
from .io_utils import save_json, save_torch, stable_hash
from .models.zf5 import zf5_trunk
from .models.backbone import ZF_PREPROCESS, Preprocess
from .models.geometry import derive_geometry
from .spp import project_to_cells, spp_image, spp_pool

log = logging.getLogger(__name__)
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")


class ImageFolder:
    """``root/<class>/<image>``: ``items`` = [(path, class index)], ``classes`` = sorted folder names."""

    def __init__(self, root: str | Path, classes: Optional[Sequence[str]] = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: classification folder not found")
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        self.classes = list(classes) if classes is not None else found
        missing = [c for c in self.classes if c not in found]
        if missing:
            raise ValueError(f"{self.root}: no sub-folder for class(es) {missing}")
        self.items: list[tuple[Path, int]] = []
        for i, c in enumerate(self.classes):
            files = sorted(p for p in (self.root / c).iterdir()
                           if p.suffix.lower() in IMAGE_EXT and not p.name.startswith("."))
            if not files:
                raise ValueError(f"{self.root / c}: class {c!r} has no images ({', '.join(IMAGE_EXT)})")
            self.items += [(p, i) for p in files]
        if not self.classes:
            raise ValueError(f"{self.root}: no class sub-folders")

    def __len__(self) -> int:
        return len(self.items)


class SPPClassifier(nn.Module):
    """conv trunk -> image-level SPP -> fc6 -> fc7 -> fc8 (``num_classes``-way)."""

    def __init__(self, trunk: nn.Module, channels: int, num_classes: int, levels: Sequence[int] = (1, 2, 3, 6),
                 fc_dim: int = 4096, dropout: float = 0.5):
        super().__init__()
        self.trunk, self.levels = trunk, tuple(levels)
        self.fc6 = nn.Linear(channels * sum(n * n for n in levels), fc_dim)
        self.fc7 = nn.Linear(fc_dim, fc_dim)
        self.fc8 = nn.Linear(fc_dim, num_classes)
        self.drop = nn.Dropout(dropout)
        self.geometry = derive_geometry(trunk)

    def head(self, pooled: torch.Tensor) -> torch.Tensor:
        """fc6..fc8 logits of pooled vectors ``(N, C * 50)``."""
        x = self.drop(torch.relu(self.fc6(pooled)))
        return self.fc8(self.drop(torch.relu(self.fc7(x))))

    def conv(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.contiguous(memory_format=torch.channels_last))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)`` of images ``(B, 3, H, W)`` (any H, W)."""
        return self.head(spp_image(self.conv(x), self.levels))


def build_classifier(backbone: str, num_classes: int, cfg: PretrainConfig, levels: Sequence[int]) -> SPPClassifier:
    if backbone != "zf5":
        raise ValueError(f"SPP pre-training from scratch is implemented for zf5, not {backbone!r} "
                         "(the other backbones come with ImageNet weights)")
    torch.manual_seed(cfg.seed)
    model = SPPClassifier(zf5_trunk(), 256, num_classes, levels, cfg.fc_dim, cfg.dropout)
    model.trunk.to(memory_format=torch.channels_last)
    return model


# ------------------------------------------------------------------------------------------ views
def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return img[y:y + size, x:x + size]


def train_view(img: np.ndarray, cfg: PretrainConfig, size: int, rng: np.random.Generator) -> np.ndarray:
    """Random ``crop`` square of the image at shorter side ``resize``, random flip, resized to ``size``."""
    img = resize_short_side(img, cfg.resize)
    h, w = img.shape[:2]
    y, x = int(rng.integers(0, h - cfg.crop + 1)), int(rng.integers(0, w - cfg.crop + 1))
    v = img[y:y + cfg.crop, x:x + cfg.crop]
    if rng.random() < 0.5:
        v = v[:, ::-1]
    if size != cfg.crop:
        v = cv2.resize(np.ascontiguousarray(v), (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(v)


def multiview_windows(h: int, w: int, crop: int = 224) -> np.ndarray:
    """The 224 views of an ``h x w`` image: int64 ``(K, 4)`` internal boxes (0-based inclusive).

    Left/centre/right x in {0, (w - crop) // 2, w - crop}, likewise y; the 3 x 3
    combinations are the centre, the 4 corners and the 4 edge middles.
    Identical windows are kept once (K = 3 when the shorter side is ``crop``
    and the other is longer; 1 for a ``crop x crop`` image; else 9).
    """
    if min(h, w) < crop:
        raise ValueError(f"an {h}x{w} image is smaller than the {crop} view")
    xs = sorted({0, (w - crop) // 2, w - crop})
    ys = sorted({0, (h - crop) // 2, h - crop})
    return np.array([[x, y, x + crop - 1, y + crop - 1] for y in ys for x in xs], np.int64)


def _tensor(batch: list[np.ndarray], pre: Preprocess, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.stack([pre(v) for v in batch]).to(device)


@torch.no_grad()
def predict(model: SPPClassifier, img: np.ndarray, mode: str, cfg: PretrainConfig,
            pre: Preprocess = ZF_PREPROCESS) -> tuple[np.ndarray, int]:
    """Mean softmax ``(num_classes,)`` of one BGR image under ``mode`` and the number of views used
    (computed on the model's device)."""
    model.eval()
    dev = next(model.parameters()).device
    if mode == "center":
        x = _tensor([centre_crop(resize_short_side(img, cfg.resize), cfg.crop)], pre, dev)
        return F.softmax(model(x), 1)[0].cpu().numpy(), 1
    full = resize_short_side(img, cfg.resize)
    if mode == "full":
        return F.softmax(model(_tensor([full], pre, dev)), 1)[0].cpu().numpy(), 1
    if mode != "multiview":
        raise ValueError(f"unknown evaluation mode {mode!r} (center, full, multiview)")
    probs = [F.softmax(model(_tensor([full, np.ascontiguousarray(full[:, ::-1])], pre, dev)), 1)]
    for s in cfg.multiview_scales:
        im = resize_short_side(img, s)
        wins = multiview_windows(*im.shape[:2], cfg.crop)
        for flip in (False, True):
            v = np.ascontiguousarray(im[:, ::-1]) if flip else im
            fmap = model.conv(_tensor([v], pre, dev))[0].contiguous()
            cells = project_to_cells(wins, model.geometry, tuple(fmap.shape[1:]), "paper")
            probs.append(F.softmax(model.head(spp_pool(fmap, cells, model.levels)), 1))
    p = torch.cat(probs)
    return p.mean(0).cpu().numpy(), len(p)


def evaluate(model: SPPClassifier, folder: ImageFolder, mode: str, cfg: PretrainConfig,
             progress: bool = True) -> dict:
    """Top-1 / top-5 error (fractions) of ``mode`` on the images of ``folder`` (``cfg.eval_images`` of them)."""
    top1 = top5 = 0
    views = 0
    items = folder.items
    if cfg.eval_images and cfg.eval_images < len(items):  # evenly spaced: every class keeps its share
        items = [items[i] for i in np.linspace(0, len(items) - 1, cfg.eval_images).round().astype(int)]
    for path, label in tqdm(items, desc=f"eval {mode}", unit="img", disable=not progress, leave=False):
        p, n = predict(model, load_image(path), mode, cfg)
        order = np.argsort(-p, kind="stable")
        top1 += int(order[0] != label)
        top5 += int(label not in order[:5])
        views = n
    return {"top1_err": top1 / len(items), "top5_err": top5 / len(items), "images": len(items),
            "views_per_image": views}


# ------------------------------------------------------------------------------------------ training
def lr_at(epoch: int, cfg: PretrainConfig) -> float:
    return cfg.base_lr * cfg.gamma ** sum(epoch >= s for s in cfg.lr_steps)


def size_of_epoch(epoch: int, cfg: PretrainConfig) -> int:
    """Multi-size training: whole epochs cycle through ``cfg.sizes`` (224, 180, 224, ...)."""
    return int(cfg.sizes[epoch % len(cfg.sizes)])


def pretrain(train_dir: str | Path, val_dir: Optional[str | Path], out_dir: str | Path, cfg: PretrainConfig,
             backbone: str = "zf5", levels: Sequence[int] = (1, 2, 3, 6), progress: bool = True,
             data_key: str = "", device: torch.device | str = "cpu") -> dict:
    """Train (or resume) and evaluate; writes ``model.pt``, ``eval.json``, ``log.json`` under ``out_dir``.
    ``data_key``: a fingerprint of the training data's content (the pipeline passes its stage key), so
    that a checkpoint made from other data is not resumed.  ``device``: where the classifier trains and
    is evaluated (results agree across devices to float rounding, not bit for bit).

    Returns the evaluation dict ``{mode: {top1_err, top5_err, ...}}``.
    """
    out = Path(out_dir)
    train = ImageFolder(train_dir)
    val = ImageFolder(val_dir, train.classes) if val_dir else None
    eval_only = ("eval_modes", "eval_images", "multiview_scales")  # changing these re-evaluates, never retrains
    train_cfg = {k: v for k, v in asdict(cfg).items() if k not in eval_only}
    key = stable_hash({"cfg": train_cfg, "backbone": backbone, "levels": list(levels), "train": str(train_dir),
                       "n": len(train), "classes": train.classes, "data": data_key})
    device = torch.device(device)
    model = build_classifier(backbone, len(train.classes), cfg, levels).to(device)
    wd = [p for n, p in model.named_parameters() if n.endswith("weight")]
    nd = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    groups = [{"params": wd, "weight_decay": cfg.weight_decay}, {"params": nd, "weight_decay": 0.0}]
    opt = (torch.optim.SGD(groups, lr=cfg.base_lr, momentum=cfg.momentum) if cfg.optimizer == "sgd"
           else torch.optim.Adam(groups, lr=cfg.base_lr))
    ckpt_path = out / "ckpt.pt"
    epoch, history = 0, []
    torch.manual_seed(cfg.seed + 1)
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("hash") == key:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            epoch, history = state["epoch"], state["history"]
            set_rng_state(state["torch_rng"], device)
            log.info("resuming pre-training at epoch %d", epoch)
    pre = ZF_PREPROCESS
    t0 = time.perf_counter()
    while epoch < cfg.epochs:
        size = size_of_epoch(epoch, cfg)
        rng = np.random.default_rng([cfg.seed, 31, epoch])
        order = rng.permutation(len(train))
        for g in opt.param_groups:
            g["lr"] = lr_at(epoch, cfg)
        model.train()
        loss_sum = correct = seen = 0
        nb = math.ceil(len(order) / cfg.batch_size)
        bar = tqdm(range(nb), desc=f"pretrain epoch {epoch + 1}/{cfg.epochs} @{size}", unit="batch",
                   disable=not progress, leave=False)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = _tensor([train_view(load_image(train.items[i][0]), cfg, size, rng) for i in idx], pre, device)
            y = torch.tensor([train.items[i][1] for i in idx], device=device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}")
        epoch += 1
        entry = {"epoch": epoch, "size": size, "lr": lr_at(epoch - 1, cfg), "train_loss": loss_sum / seen,
                 "train_err": 1 - correct / seen, "seconds": time.perf_counter() - t0}
        history.append(entry)
        log.info("pre-training epoch %d (size %d): loss %.4f, train error %.3f", epoch, size, entry["train_loss"],
                 entry["train_err"])
        save_torch({"hash": key, "model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch,
                    "history": history, "torch_rng": rng_state(device)}, ckpt_path)
        save_json({"history": history}, out / "log.json")
    results = {}
    if val is not None:
        for mode in cfg.eval_modes:
            results[mode] = evaluate(model, val, mode, cfg, progress)
            log.info("pre-training eval %s: top-1 error %.4f, top-5 error %.4f", mode, results[mode]["top1_err"],
                     results[mode]["top5_err"])
    save_json({"results": results, "classes": train.classes, "sizes": list(cfg.sizes), "history": history},
              out / "eval.json")
    save_torch({k: v.contiguous().cpu() for k, v in model.state_dict().items()}, out / "model.pt")
    return results


def format_results(results: dict, sizes: Sequence[int]) -> str:
    """One line per evaluation mode: top-1 and top-5 error in percent."""
    kind = "multi-size " + "/".join(map(str, sizes)) if len(sizes) > 1 else f"single-size {sizes[0]}"
    lines = [f"SPP classification ({kind} training):"]
    for mode, r in results.items():
        lines.append(f"  {mode:<10} top-1 error {100 * r['top1_err']:6.2f} %   top-5 error {100 * r['top5_err']:6.2f} %"
                     f"   ({r['views_per_image']} view(s) per image, {r['images']} images)")
    return "\n".join(lines)
