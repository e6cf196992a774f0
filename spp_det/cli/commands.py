"""The subcommands of ``spp-det``: :data:`COMMANDS`, in the order ``spp-det --help`` lists them.

Each is a :class:`Command`: a name, the one line ``--help`` shows, a function adding its arguments to an
argparse parser and a function running it on the parsed arguments. The work itself is in the library;
these only translate arguments. Pipeline stages get a command each, generated from the stage table
(:data:`spp_det.stages.STAGES`, where each stage's line lives).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .. import imagenet_windows
from . import add_config_args, add_output_args, find_config, load_from_args, progress_of

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def real_photos() -> Path:
    """The 13 genuine VOC 2007 test photos in ``shared/`` beside a clone (of this package's source, else of
    the working directory); elsewhere give ``--photos`` / ``--images``."""
    rel = Path("shared") / "data" / "voc2007-test-real13" / "JPEGImages"
    for root in (Path(__file__).resolve().parents[3], Path.cwd().resolve().parent):
        if (root / rel).is_dir():
            return root / rel
    return Path("..") / rel


REAL_PHOTOS = real_photos()


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]
    description: Optional[str] = None


def _image_files(src: Path, split: Optional[str] = None, limit: Optional[int] = None) -> list[Path]:
    """Images of a file, a folder, or (``split``) a VOC root's split."""
    if split:
        from ..data.voc import read_split
        files = [src / "JPEGImages" / f"{i}.jpg" for i in read_split(src, split)]
    elif src.is_file():
        files = [src]
    elif src.is_dir():
        files = sorted(f for f in src.iterdir() if f.suffix.lower() in EXTS)
    else:
        raise FileNotFoundError(f"{src}: no such file or folder")
    files = files[:limit] if limit else files
    if not files:
        raise FileNotFoundError(f"{src}: no images found ({', '.join(sorted(EXTS))})")
    return files


# ----------------------------------------------------------------------------------------------- run

def _add_run(p):
    from ..stages import STAGE_NAMES
    add_config_args(p)
    p.add_argument("--stages", help=f"comma-separated subset of: {','.join(STAGE_NAMES)}")
    p.add_argument("--force", default="", help="comma-separated stages to recompute from scratch (partial outputs "
                   "and caches deleted), with every stage downstream of them")
    add_output_args(p)


def _stage_list(text: Optional[str]) -> list[str]:
    from ..stages import get_stage
    names = [s for s in (text or "").split(",") if s]
    for s in names:
        get_stage(s)  # unknown names fail before any work
    return names


def _run(args):
    from ..distributed import Dist
    from ..pipeline import run_pipeline
    run_pipeline(load_from_args(args), _stage_list(args.stages) or None, progress=progress_of(args),
                 force=_stage_list(args.force), dist=Dist.from_env(), quiet=args.quiet)


# -------------------------------------------------------------------------------------------- stages

def _add_stage(p):
    add_config_args(p)
    p.add_argument("--force", action="store_true",
                   help="recompute from scratch (its partial outputs and caches deleted) and reset every stage "
                        "downstream of it, so they recompute too")
    add_output_args(p)


def _run_stage(stage: str, args) -> None:
    from ..config import save_config
    from ..pipeline import open_workdir, run_stage
    from ..workspace import Workspace
    cfg = load_from_args(args)
    ws = Workspace(cfg)
    progress = progress_of(args)
    with open_workdir(ws):
        save_config(cfg, ws.layout.config)
        # the embedded dataset is made on first use, and every split is read and checked before any work
        if stage != "dataset":
            run_stage(ws, "dataset", progress=progress, quiet=args.quiet)
        run_stage(ws, stage, progress=progress, force=args.force, quiet=args.quiet)


def _stage_command(stage) -> Command:
    return Command(stage.name, f"stage: {stage.doc}", _add_stage, lambda args: _run_stage(stage.name, args))


# ---------------------------------------------------------------------------------------------- eval

def _add_eval(p):
    add_config_args(p, required=False)
    p.add_argument("--force", action="store_true", help="with --config: re-evaluate from scratch")
    g = p.add_argument_group("comp4 files of any detector (instead of --config)")
    g.add_argument("--results", help="directory of comp4_det_<split>_<cls>.txt files (or results/VOC2007/Main/ "
                   "below it): lines 'image_id score x1 y1 x2 y2', 1-based boxes")
    g.add_argument("--voc-root", help="dataset root with Annotations/ and ImageSets/Main/")
    g.add_argument("--split", default="test")
    g.add_argument("--classes", help="comma-separated class list (default: the 20 VOC classes)")
    g.add_argument("--metric", choices=["voc07", "voc10"], default="voc07",
                   help="voc07: 11-point (default); voc10: area under the precision envelope")
    g.add_argument("--out", help="write {'mAP': m, 'ap': {cls: ap}, 'npos': {cls: n}} here (JSON)")
    add_output_args(p)


def _eval(args):
    if args.config:
        if args.results or args.voc_root:
            raise ValueError("give --config (an experiment's eval stage) or --results with --voc-root, not both")
        return _run_stage("eval", args)
    if not (args.results and args.voc_root):
        raise ValueError("give --config, or --results and --voc-root")
    from ..config import VOC_CLASSES
    from ..data.voc import VOCDataset
    from ..evaluation.voc import evaluate_comp4_dir, format_ap_table
    from ..io_utils import save_json
    classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
    ds = VOCDataset(args.voc_root, args.split, classes, require_images=False)  # Annotations + ImageSets only
    res = evaluate_comp4_dir(args.results, ds.records, classes, args.split, args.metric == "voc07")
    print(format_ap_table(res, f"AP on {args.split} ({len(ds)} images):"))
    if args.out:
        save_json({"mAP": res["mAP"], "ap": res["ap"], "npos": res["npos"]}, args.out)


EVAL_DESCRIPTION = """\
Evaluate detections with the official VOC devkit rules (and COCO AP for an experiment).

  spp-det eval --config C                      the eval stage of experiment C
  spp-det eval --results DIR --voc-root ROOT   comp4 files of any detector against ROOT's annotations

A class with no test object is reported as such and left out of the mean (null in --out); a missing
or empty results directory, or a non-finite score, is an error."""


# -------------------------------------------------------------------------------------- detect, demo

def _add_detect(p):
    p.add_argument("--workdir", help="a trained experiment's work directory")
    p.add_argument("--config", help="or the experiment's config (its workdir)")
    p.add_argument("--images", required=True, help="an image file, a folder of images, or a VOC root with --split")
    p.add_argument("--split", help="treat --images as a VOC root and use this split's images")
    p.add_argument("--limit", type=int, help="at most this many images")
    p.add_argument("--out", required=True, help="folder for the images with boxes drawn")
    p.add_argument("--min-score", type=float, default=0.0, help="draw detections scoring above this")
    p.add_argument("--device")
    add_output_args(p)


def _workdir_of(args) -> str:
    if bool(args.workdir) == bool(args.config):
        raise ValueError("give --workdir or --config (one of them)")
    if args.workdir:
        return args.workdir
    from ..config import load_config
    return load_config(find_config(args.config)).workdir


def _workspace_of(args):
    """The experiment of ``--workdir`` (its saved config.yaml) or ``--config``."""
    from ..config import load_config
    from ..layout import Layout
    from ..workspace import Workspace
    root = Path(_workdir_of(args))
    saved = Layout(root).config
    if not saved.is_file():
        raise FileNotFoundError(f"{saved}: not found (has an experiment run in {root}?)")
    return Workspace(load_config(saved, [f"workdir={root}"]))


def _detect(args):
    files = _image_files(Path(args.images), args.split, args.limit)
    from ..api import detect_folder
    detect_folder(_workdir_of(args), files, Path(args.out), args.min_score, args.device, args.quiet)


def _add_demo(p):
    add_config_args(p, required=False)
    p.set_defaults(config="demo")
    p.add_argument("--photos", default=str(REAL_PHOTOS),
                   help="real photos to run on at the end (default: the 13 VOC 2007 test photos in ../shared)")
    p.add_argument("--test-images", type=int, default=8, help="test images drawn with their detections")
    add_output_args(p)


def _demo(args):
    from ..api import detect_folder
    from ..distributed import Dist
    from ..pipeline import run_pipeline
    cfg = load_from_args(args)
    ws = run_pipeline(cfg, progress=progress_of(args), dist=Dist.from_env(), quiet=args.quiet)
    if not ws.dist.main:
        return
    root = Path(cfg.dataset.root)
    detect_folder(str(ws.root), _image_files(root, cfg.dataset.test_split, args.test_images),
                  ws.layout.demo_dir("test_images"), quiet=args.quiet)
    photos = Path(args.photos)
    if photos.is_dir():
        files = _image_files(photos)
        print(f"The detector on real photos (it knows only {', '.join(ws.data.classes)}):")
        detect_folder(str(ws.root), files, ws.layout.demo_dir("images"), quiet=args.quiet)
        from ..imagenet_windows import label_folder
        print("What SPP pooling finds in them with the backbone's own ImageNet classifier:")
        label_folder(files, ws.layout.demo_dir("imagenet"), ws.data.search_params(), quiet=args.quiet)
    else:
        print(f"({photos} not found: skipping the real-photo demo; give --photos DIR)")
    from ..report import write_report
    print(f"report (open it in a browser): {write_report(ws)}")


# -------------------------------------------------------------------------------------------- browse

def _add_browse(p):
    add_config_args(p)
    p.add_argument("--split", help="the split to look at (default: the config's test split)")
    p.add_argument("--images", type=int, default=16, help="evenly spaced images to draw (0: all)")
    p.add_argument("--proposals", type=int, default=0, metavar="N",
                   help="also draw the first N proposals of each image (from the proposals stage's file if it "
                        "exists, else computed for these images)")
    p.add_argument("--out", help="output folder (default: <workdir>/browse/<split>)")
    add_output_args(p)


def _browse(args):
    from ..browse import browse, split_summary
    from ..pipeline import open_workdir, run_stage
    from ..workspace import Workspace
    cfg = load_from_args(args)
    ws = Workspace(cfg)
    split = args.split or cfg.dataset.test_split
    out = Path(args.out) if args.out else ws.layout.browse_dir(split)
    with open_workdir(ws):  # an embedded dataset is generated, and every split checked, first
        run_stage(ws, "dataset", progress=progress_of(args), quiet=True)
    drawn = browse(ws.data, split, out, args.images, args.proposals, progress_of(args))
    print(split_summary(ws.data.dataset(split).records, ws.data.classes, split))
    print(f"{len(drawn)} images with their ground truth{' and proposals' if args.proposals else ''}: {out}/")


# -------------------------------------------------------------------------------------------- report

def _add_report(p):
    p.add_argument("--workdir", help="an experiment's work directory")
    p.add_argument("--config", help="or the experiment's config (its workdir)")
    p.add_argument("--images", type=int, default=12, help="test images in the grid")
    p.add_argument("--min-score", type=float, default=0.0, help="show detections scoring at least this")
    p.add_argument("--top", type=int, default=10, help="at most this many detections per image")
    add_output_args(p)


def _report(args):
    from ..report import write_report
    path = write_report(_workspace_of(args), args.images, args.min_score, args.top)
    print(f"report: {path}")


# ---------------------------------------------------------------------------------------------- time

def _add_time(p):
    from ..config import ProposalsConfig
    p.add_argument("--images", default=str(REAL_PHOTOS), help="a folder of images (default: the 13 real VOC photos)")
    p.add_argument("--limit", type=int, help="at most this many images")
    p.add_argument("--config", help="time a trained experiment's models instead of random paper-shaped ones")
    p.add_argument("--backbone", default="zf5", help="paper-shaped models: backbone (zf5, lite0, alexnet, vgg16)")
    p.add_argument("--weights", default=None, help="paper-shaped models: backbone weights (default random)")
    p.add_argument("--fc-dim", type=int, default=4096)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--scales", type=int, nargs="+", default=[688], help="SPP 1-scale")
    p.add_argument("--scales5", type=int, nargs="+", default=[480, 576, 688, 864, 1200], help="SPP 5-scale")
    p.add_argument("--methods", default="spp1,spp5,rcnn", help="comma list of spp1, spp5, rcnn")
    p.add_argument("--rcnn-windows", type=int, help="time R-CNN on this many random windows per image and scale "
                   "every part up to all windows (default: all windows)")
    p.add_argument("--fc-svd", type=int, nargs=2, metavar=("R6", "R7"), help="truncated SVD of fc6/fc7")
    p.add_argument("--fc-dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--conv-dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="the dtype SPP's conv maps are computed in (features.conv_dtype)")
    p.add_argument("--device", default="auto")
    p.add_argument("--proposals", default=ProposalsConfig().mode, choices=["fast", "quality", "rcnn"],
                   help="paper-shaped models: selective search mode (default: proposals.mode's default; "
                   "rcnn needs no opencv-contrib)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", default="runs/timing")
    add_output_args(p)


def _time(args):
    import platform

    import torch

    from .. import timing
    from ..devices import resolve_device
    from ..head import test_time_fc
    from ..io_utils import save_json, save_text
    if args.threads:
        torch.set_num_threads(args.threads)
    src = Path(args.images)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: not a folder of images")
    files = _image_files(src, limit=args.limit)
    if args.config:
        from ..config import load_config
        from ..workspace import Workspace
        over = [] if args.device == "auto" else [f"features.device={args.device}"]
        if args.fc_svd:
            over.append(f"test.fc_svd=[{args.fc_svd[0]}, {args.fc_svd[1]}]")
        over.append(f"test.fc_dtype={args.fc_dtype}")
        over.append(f"features.conv_dtype={args.conv_dtype}")
        ws = Workspace(load_config(find_config(args.config), over))
        models, search, calibrate = timing.models_from_workspace(ws), ws.data.search_params(), False
        label = f"{ws.cfg.name} ({ws.cfg.backbone.name}, trained)"
    else:
        from proposals.selective_search import SearchParams

        from ..models import build_backbone
        dev = resolve_device(args.device)
        models = timing.paper_shaped_models(build_backbone(args.backbone, args.weights, args.conv_dtype),
                                            args.classes, args.fc_dim, device=dev)
        models.detector.head = test_time_fc(models.detector.head, args.fc_svd, args.fc_dtype).to(dev)
        search, calibrate = SearchParams(mode=args.proposals), True
        label = f"{args.backbone}, fc {args.fc_dim}, {args.classes} classes, random weights"
    names = {"spp1": timing.Method(f"SPP {len(args.scales)}-scale", "spp", args.scales),
             "spp5": timing.Method(f"SPP {len(args.scales5)}-scale", "spp", args.scales5),
             "rcnn": timing.Method("R-CNN", "rcnn", rcnn_windows=args.rcnn_windows)}
    unknown = [m for m in args.methods.split(",") if m not in names]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {', '.join(names)}")
    methods = [names[m] for m in args.methods.split(",")]
    summary, raw = timing.run_timing([str(f) for f in files], methods, models, search, calibrate)
    dev = models.device
    machine = (torch.cuda.get_device_name(dev) if dev.type == "cuda"
               else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads")
    fc = "" if not (args.fc_svd or args.fc_dtype != "float32") else f", fc svd {args.fc_svd} {args.fc_dtype}"
    fc += "" if args.conv_dtype == "float32" else f", conv {args.conv_dtype}"
    title = (f"Per-image time, {len(files)} images from {src} ({label}{fc}; {machine}; "
             f"{summary[methods[0].name]['windows_per_image']:.0f} windows/image"
             + (f"; R-CNN timed on {args.rcnn_windows} windows/image, scaled" if args.rcnn_windows else "") + ")")
    table = timing.format_table(summary, title)
    print(table)
    out = Path(args.out)
    save_json({"title": title, "summary": summary, "args": {k: v for k, v in vars(args).items() if k[0] != "_"},
               **raw}, out / "timing.json")
    save_text(table + "\n", out / "timing.txt")
    timing.bar_chart(summary, str(out / "timing.png"), title)
    print(f"wrote {out / 'timing.json'}, {out / 'timing.txt'}, {out / 'timing.png'}")


TIME_DESCRIPTION = """\
Per-image time of each detection part: SPP-net 1 scale, SPP-net 5 scales, R-CNN mode (same backbone).

Default: ZF-5 with the paper's shapes and random weights (time does not depend on them), 4096-d fc,
20 classes, on the 13 real VOC 2007 photos; or --config for a trained experiment's models. Prints a
table shaped like the paper's Table 10 (conv, fc, total, speed-up against R-CNN) and writes
timing.json, timing.txt and timing.png (stacked bars) under --out."""


# ---------------------------------------------------------------------------------- imagenet-windows

def _add_imagenet_windows(p):
    p.add_argument("--images", required=True, help="an image file or a folder of images")
    p.add_argument("--out", required=True, help="folder for the images with labelled windows")
    p.add_argument("--variant", type=int, default=0, choices=[0, 1, 2], help="EfficientNet-Lite variant")
    p.add_argument("--top", type=int, default=imagenet_windows.TOP, help="windows drawn per image")
    p.add_argument("--min-prob", type=float, default=imagenet_windows.MIN_PROB,
                   help="least ImageNet class probability drawn")
    add_output_args(p)


def _imagenet_windows(args):
    imagenet_windows.label_folder(_image_files(Path(args.images)), args.out,
                                  scorer=imagenet_windows.ImageNetWindowScorer(args.variant), top=args.top,
                                  min_prob=args.min_prob, quiet=args.quiet)


# ------------------------------------------------------------------------------------------- combine

def _add_combine(p):
    p.add_argument("--configs", nargs="+", required=True, help="experiment YAMLs or shipped names (at least two)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--variant", help="variant of each model to combine (default: fc7_bbox if trained, else fc7)")
    p.add_argument("--mode", default="union", help="union: the paper's, every model's scored "
                   "windows united before NMS; average: each window's scores and box deltas averaged over the "
                   "models (not in the paper; needs the same proposals)")
    add_output_args(p)


def _combine(args):
    from ..combine import format_combination, run_combination
    from ..config import load_config
    from ..stages import stage_done
    from ..workspace import Workspace
    wss = [Workspace(load_config(find_config(c))) for c in args.configs]
    for ws in wss:
        if not stage_done(ws, "test"):
            raise ValueError(f"{ws.root}: its pipeline has not finished for this config "
                             "(run spp-det run --config ... first)")
    summary = run_combination(wss, args.out, args.variant, progress=progress_of(args), mode=args.mode)
    print(format_combination(summary, [k for k in summary if k not in ("combined", "_info")]))


# ------------------------------------------------------------------------------------------- compare

def _add_compare(p):
    p.add_argument("workdirs", nargs="+", help="work directories of finished experiments")
    p.add_argument("--split", default="test")


def _compare(args):
    import json

    from ..layout import Layout
    from ..variants import VARIANTS
    cols = []
    for w in args.workdirs:
        files = {v.name: Layout(Path(w)).eval_result(args.split, v.name) for v in VARIANTS}
        if not any(f.is_file() for f in files.values()):
            raise FileNotFoundError(f"{w}/eval: no {args.split}_*.json (run the eval stage first)")
        cols.append({v: json.loads(f.read_text()) for v, f in files.items() if f.is_file()})
    names = [Path(w).name for w in args.workdirs]
    print(f"{'mAP (VOC) / COCO AP on ' + args.split:<40}" + "".join(f"{n:>22}" for n in names))
    for v in VARIANTS:
        cells = []
        for c in cols:
            r = c.get(v.name)
            if r is None:
                cells.append("-")
                continue
            ap = r.get("coco", {}).get("AP")
            cells.append(f"{100 * r['mAP']:.2f}" + ("" if ap is None else f" / {100 * ap:.2f}"))
        print(f"{v.title:<40}" + "".join(f"{c:>22}" for c in cells))


# ------------------------------------------------------------------------------------------ pretrain

def _add_pretrain(p):
    from ..config import PretrainConfig
    add_config_args(p, required=False)
    p.add_argument("--force", action="store_true", help="with --config: recompute from scratch")
    d = PretrainConfig()  # the defaults live in spp_det/config.py only
    g = p.add_argument_group("an ImageNet-style folder (instead of --config)")
    g.add_argument("--data", help="folder with train/<class>/*.jpg and optionally val/<class>/*.jpg")
    g.add_argument("--out", help="output directory")
    g.add_argument("--backbone", default="zf5")
    g.add_argument("--sizes", type=int, nargs="+", default=d.sizes, help="224 180 = multi-size; 224 = single")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.base_lr)
    g.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    g.add_argument("--resize", type=int, default=d.resize, help="shorter side before the random crop")
    g.add_argument("--crop", type=int, default=d.crop)
    g.add_argument("--multiview-scales", type=int, nargs="+", default=d.multiview_scales)
    g.add_argument("--eval-images", type=int, default=d.eval_images,
                   help="evaluate on this many evenly spaced val images")
    g.add_argument("--lr-steps", type=int, nargs="*", default=d.lr_steps, help="epochs at which lr is divided by 10")
    g.add_argument("--fc-dim", type=int, default=d.fc_dim)
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--eval", nargs="+", default=d.eval_modes, dest="eval_modes")
    add_output_args(p)


def _pretrain(args):
    if args.config:
        if args.data:
            raise ValueError("give --config (the experiment's pretrain stage) or --data with --out, not both")
        return _run_stage("pretrain", args)
    if not (args.data and args.out):
        raise ValueError("give --config, or --data and --out")
    from ..config import PretrainConfig
    from ..pretrain import format_results, pretrain
    cfg = PretrainConfig(sizes=args.sizes, epochs=args.epochs, batch_size=args.batch_size, base_lr=args.lr,
                         optimizer=args.optimizer, resize=args.resize, crop=args.crop, lr_steps=args.lr_steps,
                         fc_dim=args.fc_dim, seed=args.seed, eval_modes=args.eval_modes,
                         multiview_scales=args.multiview_scales, eval_images=args.eval_images)
    val = Path(args.data) / "val"
    res = pretrain(Path(args.data) / "train", val if val.is_dir() else None, args.out, cfg, args.backbone,
                   progress=progress_of(args))
    print(format_results(res, cfg.sizes), flush=True)


PRETRAIN_DESCRIPTION = """\
SPP classification pre-training: conv + SPP + fc6/fc7/fc8, single- or multi-size; top-1/top-5 error.

  spp-det pretrain --config configs/demo_zf5.yaml   the pretrain stage of an experiment (generated crops
                                                    unless pretrain.data is set); its model.pt becomes the
                                                    backbone when backbone.weights is "pretrain"
  spp-det pretrain --data DATA --out runs/cls       any folder DATA/train/<class>/*.jpg (+ DATA/val/...)

The output directory holds model.pt (load it with backbone.weights: <path>/model.pt), eval.json, log.json."""


# ------------------------------------------------------------------------------------ eval-proposals

def _add_eval_proposals(p):
    p.add_argument("--config", help="an experiment (its proposals of --split, default the test split)")
    p.add_argument("--voc-root")
    p.add_argument("--split")
    p.add_argument("--proposals", nargs="+", help="proposal .npz (ours) or R-CNN .mat files")
    p.add_argument("--labels", help="comma-separated names of the proposal files (default: file names)")
    p.add_argument("--classes")
    p.add_argument("--counts", help="comma-separated numbers of proposals (default: proposals.recall.DEFAULT_COUNTS)")
    p.add_argument("--plot", help="write the curves of recall and ABO against the number of proposals here (PNG)")


def _eval_proposals(args):
    from proposals.cache import load_proposals
    from proposals.rcnn_mat import load_rcnn_mat
    from proposals.recall import format_recall_table, plot_recall, proposal_recall

    from ..config import VOC_CLASSES, load_config
    from ..data.voc import VOCDataset
    if args.config:
        from ..workspace import Workspace
        cfg = load_config(find_config(args.config))
        root, classes = cfg.dataset.root, cfg.dataset.classes
        split = args.split or cfg.dataset.test_split
        paths = args.proposals or [Workspace(cfg).data.proposals_path(split)]
    else:
        if not (args.voc_root and args.split and args.proposals):
            raise ValueError("give --config, or --voc-root, --split and --proposals")
        root, split, paths = args.voc_root, args.split, args.proposals
        classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
    labels = args.labels.split(",") if args.labels else [Path(x).name for x in paths]
    if len(labels) != len(paths):
        raise ValueError(f"--labels has {len(labels)} names for {len(paths)} proposal files")
    ds = VOCDataset(root, split, classes)
    from proposals.recall import DEFAULT_COUNTS
    counts = [int(c) for c in args.counts.split(",")] if args.counts else list(DEFAULT_COUNTS)
    results = {}
    for label, path in zip(labels, paths):
        props = load_rcnn_mat(path) if str(path).endswith(".mat") else load_proposals(path)
        results[label] = proposal_recall(ds.records, props, counts)
        print(f"Proposal recall on {root} / {split} ({len(ds)} images, {path}):")
        print(format_recall_table(results[label]))
    if args.plot:
        plot_recall(results, args.plot, f"{root} / {split}")
        print(f"plot: {args.plot}")


# ----------------------------------------------------------------------------------- data utilities

def _add_generate(p):
    from ..config import GenerateConfig
    d = GenerateConfig()  # the defaults live in spp_det/config.py only
    p.add_argument("--root", default="data/generated/VOCdevkit/VOC2007")
    p.add_argument("--family", default=d.family, help="shapes (the demo's), silhouettes or photos "
                   "(spp_det/data/scenes.py)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-trainval", type=int, default=d.num_trainval)
    p.add_argument("--num-test", type=int, default=d.num_test)
    p.add_argument("--min-side", type=int, default=d.min_side)
    p.add_argument("--max-side", type=int, default=d.max_side)


def _generate(args):
    from ..data.synthetic import family_classes, make_synthetic_voc
    root = make_synthetic_voc(args.root, args.seed, args.num_trainval, args.num_test, args.min_side, args.max_side,
                              family=args.family)
    print(f"dataset ready at {root} (classes: {', '.join(family_classes(args.family))})")


def _add_voc_to_coco(p):
    p.add_argument("--voc-root", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--classes", help="comma-separated class list (default: the 20 VOC classes)")
    p.add_argument("--out", required=True)


def _voc_to_coco(args):
    from ..config import VOC_CLASSES
    from ..data.voc import VOCDataset
    from ..evaluation.coco import records_to_coco
    from ..io_utils import save_json
    classes = args.classes.split(",") if args.classes else list(VOC_CLASSES)
    ds = VOCDataset(args.voc_root, args.split, classes)
    gt = records_to_coco(ds.records, classes)
    save_json(gt, args.out)
    print(f"{args.out}: {len(gt['images'])} images, {len(gt['annotations'])} objects")


def _commands() -> tuple[Command, ...]:
    from ..stages import STAGES
    first = (
        Command("run", "every stage of an experiment in order, skipping those already done", _add_run, _run,
                "Every stage of an experiment in order, skipping stages already complete for its config and data.\n\n"
                "  spp-det run --config demo\n"
                "  torchrun --nproc-per-node 2 -m spp_det run --config C   (several processes: spp_det/distributed.py)"),
        Command("demo", "the embedded demo: generate data, run every stage, draw detections on test and real photos",
                _add_demo, _demo),
    )
    stages = tuple(_stage_command(s) for s in STAGES if s.name not in ("eval", "pretrain"))
    rest = (
        Command("eval", "VOC (devkit rules) and COCO AP: an experiment's eval stage, or any detector's comp4 files",
                _add_eval, _eval, EVAL_DESCRIPTION),
        Command("pretrain", "SPP classification pre-training: an experiment's stage, or any class-per-folder set",
                _add_pretrain, _pretrain, PRETRAIN_DESCRIPTION),
        Command("browse", "draw a split's images with ground truth (and proposals) and count its objects: "
                "the first look at a dataset", _add_browse, _browse),
        Command("report", "one self-contained HTML page of an experiment: results, curves, test images, times",
                _add_report, _report),
        Command("detect", "detect objects in images with a trained experiment and draw the boxes",
                _add_detect, _detect),
        Command("imagenet-windows", "label selective-search windows of any photos with the backbone's own "
                "ImageNet classifier, SPP-pooled", _add_imagenet_windows, _imagenet_windows),
        Command("time", "per-image time of each part: SPP 1-scale, SPP 5-scale, R-CNN (the paper's Table 10)",
                _add_time, _time, TIME_DESCRIPTION),
        Command("combine", "combine trained experiments: every test window scored by each, union (or average), NMS",
                _add_combine, _combine),
        Command("compare", "side-by-side mAP and COCO AP of finished experiments", _add_compare, _compare),
        Command("eval-proposals", "proposal recall at IoU 0.5 / 0.7 and ABO against the number of proposals",
                _add_eval_proposals, _eval_proposals),
        Command("generate", "write a generated VOC-format dataset (the demo's shapes, or another family)",
                _add_generate, _generate),
        Command("voc-to-coco", "write a VOC-format split as a COCO instances json", _add_voc_to_coco, _voc_to_coco),
    )
    return first + stages + rest


COMMANDS: tuple[Command, ...] = _commands()
