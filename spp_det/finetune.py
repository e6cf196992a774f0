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

SGD with momentum and weight decay.  The schedule comes from the resolved
recipe (:data:`spp_det.config.FINETUNE_RECIPES`, :attr:`ModelFactory.finetune_cfg`):
its length in iterations, or in ``epochs`` = passes over the foreground
windows (``ceil(epochs * foreground windows / (batch_size * fg_fraction))``
iterations); the learning rate rises linearly over ``warmup_iterations``, then
follows ``lr_policy`` (``step``: x ``gamma`` at each of ``lr_steps``;
``cosine``: half a cosine from ``base_lr`` to 0 at the last iteration).  A
checkpoint (weights, optimiser state, iteration, RNG state) is written
atomically every ``snapshot_every`` iterations, at the end, and between
snapshots whenever ``checkpoint_minutes`` have passed since the last write
(with the training loss summed so far); a killed run resumes from it, to the
same result.  If ``val_split`` is set, each snapshot's loss on a fixed
sample of that split's windows picks ``best.pt``; otherwise ``best.pt`` is the
last snapshot.  The test split is never used (the config refuses it).

Conv fine-tuning (``conv_layers`` > 0, beyond the paper; Fast R-CNN's
image-centric sampling): iteration ``it`` takes ``images_per_batch`` image
views (a slice of epoch ``it // per_epoch``'s permutation of the views) and
``batch_size / images_per_batch`` windows of each (``fg_fraction`` foreground
when there are enough, the rest background), drawn with ``rng([seed, 29, it])``
like the image's scale; each image runs through the frozen start of the trunk,
then the trainable last ``conv_layers`` modules (:class:`ConvTuner`; BatchNorm
frozen; the frozen start's outputs are computed once per view and scale and
cached like conv5 maps, :meth:`ModelFactory.conv_start_cache`), and its windows are
pyramid-pooled with ``spp_pool(method="roipool")``, which back-propagates.  The
fine-tuned trunk is saved as ``trunk.pt``.

Micro-batches and torchrun (``micro_batches`` = M > 1): each iteration's mini-batch is cut into M
parts (``np.array_split`` of its windows, or of its images with conv fine-tuning); part ``m``'s
dropout masks come from ``torch.manual_seed`` of ``(seed, it, m)``, an empty part adds nothing, and
the gradient is the sum of the parts' mean-loss gradients over M. With N processes and M a multiple
of N, rank ``r`` computes parts ``r, r + N, ...`` and DistributedDataParallel sums the ranks'
gradients; as scaling by a power of two is exact and two floats add the same in either order, two
processes with M = 2 give bit for bit what one process with M = 2 gives.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from .boxes import box_iou, flip_boxes
from .config import Config, FinetuneConfig
from .data.source import DataSource
from .data.voc import ImageRecord
from .devices import rng_state, set_rng_state
from .distributed import Dist
from .features import Conv5Cache, InputSource, WindowSource
from .head import SPPHead
from .io_utils import save_json, save_torch
from .model_factory import ModelFactory
from .multiscale import random_scale_indices
from .spp import spp_pool
from .window_features import windows_of

log = logging.getLogger(__name__)


@dataclass
class ImageWindows:
    """Usable windows of one image view.

    Conventions: the view's window list is :func:`~spp_det.window_features.windows_of`'s, its GT boxes
    (``gt``, ``(G, 4)`` float32, mirrored with a flipped ``record``) followed by its proposals; the view
    keeps ``rows`` ``(M,)`` int32 of that list and their ``labels`` ``(M,)`` int16 (0 = background, c + 1 =
    class c). ``proposals`` is the *unflipped* ``(N, 4)`` array the :class:`DataSource` holds, shared
    (not copied) by an image and its mirror; :meth:`boxes` mirrors on the fly. 6 bytes a window instead
    of a float32 box and an int64 label's 24: COCO train2017 with flips, at most 2,000 windows a view,
    needs at most 2.8 GB instead of 11 (docs/BENCHMARKS.md, "Scaling"), beside the proposals (3.9 GB).
    """

    record: ImageRecord
    gt: np.ndarray
    proposals: np.ndarray
    rows: np.ndarray
    labels: np.ndarray

    def boxes(self, idx: Optional[np.ndarray] = None) -> np.ndarray:
        """float32 internal boxes ``(K, 4)`` of windows ``idx`` (all if None): exactly the rows of
        ``windows_of(record, boxes_for(record))`` they stand for."""
        rows = self.rows if idx is None else self.rows[idx]
        out = np.empty((len(rows), 4), np.float32)
        is_gt = rows < len(self.gt)
        out[is_gt] = self.gt[rows[is_gt]]
        props = self.proposals[rows[~is_gt] - len(self.gt)]
        out[~is_gt] = flip_boxes(props, self.record.width) if self.record.flipped else props
        return out

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def fg(self) -> np.ndarray:
        return np.nonzero(self.labels > 0)[0]

    @property
    def bg(self) -> np.ndarray:
        return np.nonzero(self.labels == 0)[0]


def label_windows(record: ImageRecord, proposals: np.ndarray, cfg: Config) -> ImageWindows:
    """GT + proposals of one record, labelled fg/bg by best IoU (unused windows dropped).

    ``proposals``: the record's proposals as the data source holds them, unflipped for a flipped record.
    """
    ft = cfg.finetune
    gt_boxes, gt_labels = record.gt_for_training(cfg.dataset.use_difficult)
    view_props = flip_boxes(proposals, record.width) if record.flipped else proposals
    boxes, num_gt = windows_of(record, view_props, cfg.dataset.use_difficult)
    labels = np.full(len(boxes), -1, np.int64)
    if len(gt_boxes):  # else every IoU is 0 < bg_low: no window is used
        iou = box_iou(boxes, gt_boxes)
        best = iou.argmax(1)
        best_iou = iou[np.arange(len(boxes)), best]
        labels[best_iou >= ft.fg_threshold] = gt_labels[best[best_iou >= ft.fg_threshold]] + 1
        labels[(best_iou >= ft.bg_low) & (best_iou < ft.bg_high)] = 0
    rows = np.nonzero(labels >= 0)[0]
    return ImageWindows(record, boxes[:num_gt].copy(), proposals, rows.astype(np.int32), labels[rows].astype(np.int16))


def build_window_db(data: DataSource, split: str, flipped: bool, cfg: Config) -> list[ImageWindows]:
    """Labelled windows of every view of ``split`` (with its mirrors if ``flipped``)."""
    if len(cfg.dataset.classes) >= np.iinfo(np.int16).max:
        raise ValueError(f"config: dataset.classes has {len(cfg.dataset.classes)} classes; fine-tuning "
                         "stores labels as int16: at most 32,766")
    records = data.dataset(split).with_flipped() if flipped else list(data.dataset(split).records)
    db = [label_windows(r, data.proposals_of(r, split), cfg) for r in records]
    nfg = sum(len(d.fg) for d in db)
    if nfg == 0:
        raise ValueError(f"fine-tuning split {split!r} has no foreground windows (no GT objects?)")
    return db


@dataclass
class FinetuneJob:
    """Everything fine-tuning uses, gathered from the config by :func:`finetune_job` (the stage table
    calls it): the initialised ``head``; the resolved schedule ``cfg``; the labelled windows of the
    training views (``train``) and the pooled validation sample (``val``, or None); the window source
    and its per-image inputs; ``seed``, ``scales``, ``device``; the checkpoint ``key`` (a checkpoint
    with another key is not resumed); where the results go; and, for conv fine-tuning, the ``tuner``
    and the cache of its frozen start's outputs (``starts``); ``dist``: the processes that share each
    mini-batch (module docstring; one by default)."""

    head: SPPHead
    cfg: FinetuneConfig
    train: list[ImageWindows]
    val: Optional[tuple[torch.Tensor, torch.Tensor]]
    pooler: WindowSource
    inputs: InputSource
    seed: int
    scales: list[int]
    device: torch.device
    key: str
    out_dir: Path
    log_path: Path
    head_path: Path
    trunk_path: Path
    tuner: Optional["ConvTuner"] = None
    starts: Optional[Conv5Cache] = None
    dist: Dist = Dist()
    log_writer: Optional["FinetuneLog"] = None


class FinetuneLog:
    """Writes fine-tuning's history after each snapshot (rank 0): a CSV table (``csv_path``), its picture
    (``plot_path``, :func:`spp_det.plots.finetune_curves`) and, where the ``tensorboard`` package is
    installed, TensorBoard scalars ``finetune/<column>`` under ``tb_dir`` (a resumed run purges the
    events a killed one wrote past its checkpoint)."""

    def __init__(self, csv_path: Path, plot_path: Path, tb_dir: Optional[Path], title: str):
        self.csv_path, self.plot_path, self.tb_dir, self.title = csv_path, plot_path, tb_dir, title
        self._tb = None

    def __call__(self, history: list[dict], best: Optional[dict]) -> None:
        from .io_utils import save_text
        from .plots import finetune_curves
        cols = [k for k in ("iter", "train_loss", "lr", "val_loss", "val_acc") if any(k in h for h in history)]
        rows = [",".join(cols)] + [",".join(str(h[k]) if k in h else "" for k in cols) for h in history]
        save_text("\n".join(rows) + "\n", self.csv_path)
        finetune_curves(history, self.plot_path, self.title, best["iter"] if best else None)
        self._tensorboard(history[-1])

    def _tensorboard(self, entry: dict) -> None:
        if self.tb_dir is None:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                self.tb_dir = None
                return
            self._tb = SummaryWriter(str(self.tb_dir), purge_step=entry["iter"])
        for k, v in entry.items():
            if k != "iter":
                self._tb.add_scalar(f"finetune/{k}", v, entry["iter"])
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

    def clear(self) -> None:
        """Delete what an earlier run wrote (a run from scratch, or none at all, must not show its curves)."""
        import shutil
        for p in (self.csv_path, self.plot_path):
            p.unlink(missing_ok=True)
        if self.tb_dir is not None and self.tb_dir.is_dir():
            shutil.rmtree(self.tb_dir)


def sample_chunk(db: Sequence[ImageWindows], chunk: int, ft: FinetuneConfig, seed: int,
                 num_scales: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Batches of chunk ``chunk``: list of (image index, window index, label, scale index) per window.

    With several ``model.scales`` each window gets a uniformly random scale
    (the paper's multi-scale fine-tuning), drawn for the whole chunk from its
    own seeded stream so that a resumed run pools exactly the same features.
    """
    n = len(db)
    per_epoch = math.ceil(n / ft.images_per_chunk)
    epoch, pos = divmod(chunk, per_epoch)
    perm = np.random.default_rng([seed, 7, epoch]).permutation(n)
    images = perm[pos * ft.images_per_chunk:(pos + 1) * ft.images_per_chunk]
    rng = np.random.default_rng([seed, 11, chunk])
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
    scale_rng = np.random.default_rng([seed, 23, chunk])
    batches = []
    for b in range(nb):
        parts = [fg_s[b * n_fg:(b + 1) * n_fg], bg_s[b * n_bg:(b + 1) * n_bg]]
        sel = np.concatenate([p for p in parts if len(p)]) if any(len(p) for p in parts) else np.zeros((0, 2), np.int64)
        labels = np.array([db[i].labels[j] for i, j in sel], np.int64)
        batches.append((sel[:, 0], sel[:, 1], labels,
                        random_scale_indices(len(sel), num_scales, scale_rng)))
    return batches


def pool_selection(pooler: WindowSource, cache: InputSource, db: Sequence[ImageWindows], img_idx: np.ndarray,
                   win_idx: np.ndarray, scale_idx: Optional[np.ndarray] = None) -> torch.Tensor:
    """Pooled features ``(K, D)`` for windows (img_idx[k], win_idx[k]) — each image's maps loaded once.

    ``scale_idx`` ``(K,)``: the scale each window is pooled at (else the test-time rule).
    """
    out = torch.empty((len(img_idx), pooler.dim), dtype=torch.float32)
    for i in np.unique(img_idx):
        rows = np.nonzero(img_idx == i)[0]
        rec = db[i].record
        boxes, hw = db[i].boxes(win_idx[rows]), (rec.height, rec.width)
        if isinstance(cache, Conv5Cache):  # read only the scales these windows are pooled at
            idx = pooler.scale_indices(boxes, hw) if scale_idx is None else scale_idx[rows]
            fmap = cache.load(rec, set(np.unique(idx).tolist()))
            out[torch.from_numpy(rows)] = pooler.pool(fmap, boxes, hw, idx).cpu()
        else:  # R-CNN mode: the pooler's trunk runs on its device
            out[torch.from_numpy(rows)] = pooler.pool(cache.load(rec), boxes, hw,
                                                      None if scale_idx is None else scale_idx[rows]).cpu()
    return out


class ConvTuner:
    """A copy of the backbone's trunk split into a frozen start and its last ``layers`` parametrised
    modules, which train (BatchNorm layers stay frozen: statistics and affine parameters)."""

    def __init__(self, backbone, layers: int):
        self.trunk = copy.deepcopy(backbone.trunk)
        self.preprocess = backbone.preprocess
        children = list(self.trunk.children())
        with_params = [i for i, m in enumerate(children) if next(m.parameters(), None) is not None]
        if layers > len(with_params):
            raise ValueError(f"config: finetune.conv_layers is {layers} but the {backbone.name} trunk has "
                             f"{len(with_params)} parametrised modules")
        self.cut = with_params[-layers]
        self.start, self.tail = nn.Sequential(*children[:self.cut]), nn.Sequential(*children[self.cut:])
        self.params = []
        for m in self.tail.modules():
            bn = isinstance(m, nn.modules.batchnorm._BatchNorm)
            for p in m.parameters(recurse=False):
                p.requires_grad_(not bn)
                if not bn:
                    self.params.append(p)

    def train(self) -> None:
        self.start.eval()
        self.tail.train()
        for m in self.tail.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()

    def to(self, device) -> "ConvTuner":
        self.trunk.to(device)
        return self

    @torch.no_grad()
    def start_map(self, image_bgr: np.ndarray, device="cpu") -> torch.Tensor:
        """Output ``(C', H', W')`` of the frozen start for an already-resized image (what
        :meth:`spp_det.model_factory.ModelFactory.conv_start_cache` stores; so the tuner is also that
        cache's "backbone")."""
        return self.start(self.preprocess.batch(image_bgr, device))[0]

    conv5 = start_map  # the interface Conv5Cache.build computes with

    def tail_map(self, start_map: torch.Tensor) -> torch.Tensor:
        """Conv map ``(C, H', W')`` from the start's output, differentiable in the tail's weights."""
        return self.tail(start_map[None].contiguous(memory_format=torch.channels_last))[0]


def sample_images(db: Sequence[ImageWindows], it: int, ft: FinetuneConfig, seed: int,
                  num_scales: int) -> list[tuple[int, np.ndarray, np.ndarray, int]]:
    """Iteration ``it`` of image-centric sampling: ``[(view index, window indices, labels, scale index)]``."""
    n, k = len(db), ft.images_per_batch
    epoch, pos = divmod(it, math.ceil(n / k))
    images = np.random.default_rng([seed, 7, epoch]).permutation(n)[pos * k:(pos + 1) * k]
    rng = np.random.default_rng([seed, 29, it])
    per_image = ft.batch_size // k
    out = []
    for i in images:
        fg, bg = db[i].fg, db[i].bg
        n_fg = min(len(fg), int(round(per_image * ft.fg_fraction)))
        n_bg = per_image - n_fg if len(bg) else 0
        pick = np.concatenate([rng.choice(fg, n_fg, replace=False) if n_fg else np.zeros(0, np.int64),
                               rng.choice(bg, n_bg, replace=len(bg) < n_bg) if n_bg else np.zeros(0, np.int64)])
        scale = int(rng.integers(num_scales)) if num_scales > 1 else 0
        if len(pick):
            out.append((int(i), pick.astype(np.int64), db[i].labels[pick].astype(np.int64), scale))
    return out


def lr_at(it: int, ft: FinetuneConfig, total: int) -> float:
    """Learning rate of iteration ``it`` (0-based) of a ``total``-iteration run (module docstring)."""
    if it < ft.warmup_iterations:
        return ft.base_lr * (it + 1) / ft.warmup_iterations
    if ft.lr_policy == "cosine":
        start = min(ft.warmup_iterations, total - 1)
        return ft.base_lr * 0.5 * (1.0 + math.cos(math.pi * (it - start) / max(1, total - start)))
    return ft.base_lr * ft.gamma ** sum(it >= s for s in ft.lr_steps)


def run_length(ft: FinetuneConfig, num_fg: int) -> int:
    """Iterations of the run: ``iterations``, or ``epochs`` passes over ``num_fg`` foreground windows."""
    if ft.epochs is None:
        return int(ft.iterations)
    return max(1, math.ceil(ft.epochs * num_fg / max(1, round(ft.batch_size * ft.fg_fraction))))


def build_head(models: ModelFactory, num_classes: int, seed: int) -> SPPHead:
    """fc6/fc7/fc8 for ``num_classes`` object classes on ``models``' window features, seeded with ``seed``
    (fc6/fc7 from the backbone's pretrained classifier where it has one)."""
    m, bb = models.model_cfg, models.backbone
    dim = models.pooler().dim  # may build the backbone, which draws random numbers: do it before seeding
    torch.manual_seed(seed)
    head = SPPHead(dim, num_classes, m.fc_dim, m.dropout, models.finetune_raw.fc8_std)
    if head.init_from(bb.fc_init, m.spp_levels, bb.out_channels):
        log.info("fc6/fc7 initialised from the pretrained %s classifier", bb.name)
    return head


def validation_set(data: DataSource, models: ModelFactory, cfg: Config) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """Pooled features ``(K, dim)`` and labels ``(K,)`` of a seeded sample of ``finetune.val_split``'s windows
    (8 fg + 24 bg per image of its first ``val_images``), or None without a val split."""
    ft = cfg.finetune
    if not ft.val_split:
        return None
    db = build_window_db(data, ft.val_split, False, cfg)[: ft.val_images]
    rng = np.random.default_rng([cfg.seed, 13])
    sel_i, sel_j = [], []
    for i, d in enumerate(db):
        for pool, k in ((d.fg, 8), (d.bg, 24)):
            if len(pool):
                pick = rng.choice(pool, size=min(k, len(pool)), replace=False)
                sel_i += [i] * len(pick)
                sel_j += list(pick)
    img_idx, win_idx = np.asarray(sel_i), np.asarray(sel_j)
    x = pool_selection(models.pooler(), models.window_inputs(), db, img_idx, win_idx)
    y = torch.from_numpy(np.array([db[i].labels[j] for i, j in zip(img_idx, win_idx)], np.int64))
    return x, y


@torch.no_grad()
def _evaluate(head: SPPHead, val: tuple[torch.Tensor, torch.Tensor], device: torch.device) -> dict:
    head.eval()
    x, y = val
    logits = torch.cat([head(x[i:i + 1024].to(device)).cpu() for i in range(0, len(x), 1024)])
    head.train()
    return {"loss": float(F.cross_entropy(logits, y)), "acc": float((logits.argmax(1) == y).float().mean())}


def _parts(n: int, parts: int) -> list[np.ndarray]:
    """Row indices of the ``parts`` micro-batches of an ``n``-row mini-batch (``np.array_split``)."""
    return np.array_split(np.arange(n), parts)


def _window_batches(job: FinetuneJob, start: int, parts: Sequence[int]):
    """Every iteration's micro-batches ``parts`` from ``start`` on, as ``[(features (b, D), labels (b,))]``,
    pooled from the conv5 cache (only the windows of those parts)."""
    db, ft, it = job.train, job.cfg, start
    while True:
        chunk, skip = divmod(it, ft.batches_per_chunk)
        batches = sample_chunk(db, chunk, ft, job.seed, len(job.scales))[skip:]
        splits = [_parts(len(b[2]), ft.micro_batches) for b in batches]
        sel = [(b[0][s[m]], b[1][s[m]], b[2][s[m]], b[3][s[m]]) for b, s in zip(batches, splits) for m in parts]
        feats = pool_selection(job.pooler, job.inputs, db, *(np.concatenate([s[k] for s in sel]) for k in (0, 1, 3)))
        offset, out = 0, []
        for _, _, labels, _ in sel:
            out.append((feats[offset:offset + len(labels)], labels))
            offset += len(labels)
            if len(out) == len(parts):
                yield out
                out = []
                it += 1


def _image_batches(job: FinetuneJob, start: int, parts: Sequence[int]):
    """Every iteration's micro-batches ``parts`` from ``start`` on (image-centric, conv fine-tuning), as
    ``[(features, labels)]``; ``features`` is a function computing them with gradients into the tuner's
    tail from the cached outputs of its frozen start (``job.starts``)."""
    db, pooler, device, tuner, starts, it = job.train, job.pooler, job.device, job.tuner, job.starts, start
    while True:
        picked = sample_images(db, it, job.cfg, job.seed, len(job.scales))
        out = []
        for m in parts:
            sub = [picked[j] for j in _parts(len(picked), job.cfg.micro_batches)[m]]

            def features(sub=sub) -> torch.Tensor:
                batch = []
                for i, win, _, k in sub:
                    rec, scale = db[i].record, job.scales[k]
                    fmap = tuner.tail_map(starts.load(rec, {k})[k].to(device))
                    cells = pooler.cells(db[i].boxes(win), (rec.height, rec.width), tuple(fmap.shape[1:]), scale)
                    batch.append(spp_pool(fmap, cells, pooler.levels, method="roipool"))
                return torch.cat(batch)

            out.append((features, np.concatenate([p[2] for p in sub]) if sub else np.zeros(0, np.int64)))
        yield out
        it += 1


class _Trained(nn.Module):
    """What DistributedDataParallel wraps: the head, and the tuner's trainable tail (its parameters are
    among this module's so that their gradients are summed too), applied to one micro-batch's features."""

    def __init__(self, head: SPPHead, tail: Optional[nn.Module]):
        super().__init__()
        self.head, self.tail = head, tail

    def forward(self, feats) -> torch.Tensor:
        return self.head(feats() if callable(feats) else feats)


def _part_seed(seed: int, it: int, part: int) -> int:
    """The dropout seed of micro-batch ``part`` of iteration ``it``."""
    return int(np.random.SeedSequence([seed, 31, it, part]).generate_state(1)[0])


def _clear_log(job: FinetuneJob) -> None:
    job.log_path.unlink(missing_ok=True)
    if job.log_writer is not None:
        job.log_writer.clear()


def finetune(job: FinetuneJob, progress: bool = True) -> Path:
    """Run (or resume) fine-tuning; returns the path of ``best.pt`` (the head's state dict)."""
    ft, head, device, tuner = job.cfg, job.head, job.device, job.tuner
    ckpt_path, best_path, log_path = job.out_dir / "ckpt.pt", job.head_path, job.log_path
    if not ft.enabled or ft.iterations == 0:
        if job.dist.main:
            save_torch(head.state_dict(), best_path)
            _clear_log(job)
        return best_path
    db = job.train
    num_fg = sum(len(d.fg) for d in db)
    total = run_length(ft, num_fg)
    log.info("fine-tuning (recipe %s%s) on %d image views: %d fg / %d bg windows; %d iterations = %.2f passes "
             "over the fg windows", ft.recipe, f", last {ft.conv_layers} conv modules too" if tuner else "",
             len(db), num_fg, sum(len(d.bg) for d in db), total,
             total * round(ft.batch_size * ft.fg_fraction) / max(1, num_fg))
    named = list(head.named_parameters()) + ([(f"conv.{i}", p) for i, p in enumerate(tuner.params)] if tuner else [])
    params = [{"params": [p for _, p in named if p.dim() > 1], "weight_decay": ft.weight_decay},
              {"params": [p for _, p in named if p.dim() <= 1], "weight_decay": 0.0}]  # biases
    opt = torch.optim.SGD(params, lr=ft.base_lr, momentum=ft.momentum)
    it, history, best, loss_acc, n_acc = 0, [], None, 0.0, 0
    torch.manual_seed(job.seed + 1)  # dropout masks: reproducible whatever ran before
    if ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if state.get("hash") == job.key:
            head.load_state_dict(state["head"])
            if tuner is not None:
                tuner.trunk.load_state_dict(state["trunk"])
            opt.load_state_dict(state["opt"])
            it, history, best = state["iter"], state["history"], state["best"]
            set_rng_state(state["torch_rng"], device)
            # a checkpoint between snapshots holds the training loss summed so far over every rank's parts
            loss_acc, n_acc = (state.get("loss_acc", 0.0) if job.dist.main else 0.0), state.get("n_acc", 0)
            log.info("resuming fine-tuning at iteration %d", it)
    if it == 0 and job.dist.main:
        _clear_log(job)
    val, d, M = job.val, job.dist, ft.micro_batches
    parts = d.shard(range(M))  # this rank's micro-batches (all of them in one process)
    head.train()
    if tuner is not None:
        tuner.train()
        job.starts.build(d.shard([r.record for r in db]), device, progress)
        d.barrier()  # every rank's share of the start's outputs is cached
        batches = _image_batches(job, it, parts)
    else:
        batches = _window_batches(job, it, parts)
    net = _Trained(head, tuner.tail if tuner is not None else None)
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=tuner is not None)  # (an empty micro-batch leaves the tail unused)
    bar = tqdm(total=total, initial=it, desc="fine-tune", unit="it", disable=not progress)
    t0 = last_write = time.perf_counter()
    start_it = it

    def checkpoint(partial_loss: float = 0.0) -> None:
        save_torch({"hash": job.key, "head": head.state_dict(), "opt": opt.state_dict(),
                    "trunk": tuner.trunk.state_dict() if tuner else None, "iter": it, "history": history,
                    "best": best, "torch_rng": rng_state(device), "loss_acc": partial_loss, "n_acc": n_acc},
                   ckpt_path)

    while it < total:
        micro = next(batches)
        for g in opt.param_groups:
            g["lr"] = lr_at(it, ft, total)
        opt.zero_grad(set_to_none=True)
        for j, (feats, labels) in enumerate(micro):
            sync = d.world == 1 or j == len(micro) - 1  # DDP sums gradients after a rank's last micro-batch
            with contextlib.nullcontext() if sync else net.no_sync():
                if M > 1:
                    torch.manual_seed(_part_seed(job.seed, it, parts[j]))
                y = torch.from_numpy(labels).to(device)
                x = feats if callable(feats) else feats.to(device)
                if len(y) == 0:  # nothing to learn from; the part still joins the gradient sum
                    x = torch.zeros((0, job.pooler.dim), device=device)
                logits = net(x)
                loss = F.cross_entropy(logits, y) if len(y) else logits.sum() * 0.0
                (loss / len(micro)).backward()  # (/ 1 is exact: one part is the plain batch)
                loss_acc += loss.item()
        opt.step()
        n_acc += 1
        it += 1
        bar.update(1)
        if it % ft.snapshot_every and it != total:  # between snapshots: a checkpoint when one is due
            due = time.perf_counter() - last_write >= 60 * ft.checkpoint_minutes
            # rank 0's clock decides, for every rank (the loss sum below is collective): one scalar gloo
            # all-reduce per iteration, 345 us on 2 CPU processes (a session script, 2,000 calls) against a
            # 161 ms iteration of the demo's data-parallel fine-tuning there
            if d.world > 1:
                due = d.sum(float(due and d.main)) > 0
            if due:
                partial = d.sum(loss_acc)
                if d.main:
                    checkpoint(partial)
                last_write = time.perf_counter()
            continue
        last_write = time.perf_counter()
        train_loss = d.sum(loss_acc) / max(1, n_acc * M)  # every rank's parts
        loss_acc, n_acc = 0.0, 0
        if not d.main:
            continue
        entry = {"iter": it, "train_loss": train_loss, "lr": lr_at(it - 1, ft, total)}
        if val is not None:
            entry.update({f"val_{k}": v for k, v in _evaluate(head, val, device).items()})
        history.append(entry)
        bar.set_postfix(loss=f"{entry['train_loss']:.3f}")
        if val is None or best is None or entry["val_loss"] < best["val_loss"]:
            best = entry
            if tuner is not None:  # (no snapshot choice with conv fine-tuning: best = last)
                save_torch({k: v.cpu() for k, v in tuner.trunk.state_dict().items()}, job.trunk_path)
            save_torch({k: v.cpu() for k, v in head.state_dict().items()}, best_path)
        checkpoint()
        save_json({"history": history, "best": best}, log_path)
        if job.log_writer is not None:
            job.log_writer(history, best)
    bar.close()
    if job.log_writer is not None:
        job.log_writer.close()
    dt = time.perf_counter() - t0
    if it > start_it:
        log.info("fine-tuning: %d iterations in %.1f s (%.3f s/it); best snapshot %s", it - start_it, dt,
                 dt / (it - start_it), best)
    return best_path


def load_head(models: ModelFactory, num_classes: int, seed: int, path: Path) -> SPPHead:
    """The fine-tuned head saved at ``path`` (``<workdir>/finetune/best.pt``), in eval mode."""
    head = build_head(models, num_classes, seed)
    head.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return head.eval()
