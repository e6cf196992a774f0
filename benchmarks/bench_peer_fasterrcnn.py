#!/usr/bin/env python
"""SPP-net against a peer: torchvision's Faster R-CNN on the same splits, backbone, weights and scale.

Usage: python benchmarks/bench_peer_fasterrcnn.py --config configs/demo.yaml [--set key=value ...]
       [--out runs/peer/demo] [--epochs 13] [--time-images 10]

Trains the peer on the experiment's ``dataset.train_split`` (resumable per epoch), tests it on
``dataset.test_split``, evaluates it with our VOC code and prints its mAP, training time and
per-image time next to the experiment's own (read from its work directory, which must hold a
finished run of the same config; per-image time measured here by ``spp_det.timing`` on the first
``--time-images`` test images, selective search included).  Writes ``<out>/summary.json`` and
``<out>/comparison.txt``.  The peer (spp_det/peer_fasterrcnn.py) fine-tunes the conv layers too.
"""
import argparse
import json
import platform
import sys
from pathlib import Path

from spp_det.cli import load_from_args, run_main, setup_logging
from spp_det.stages import manifest_info, mirror_check, stage_done

TRAIN_STAGES = ("conv5", "finetune", "svm", "bbox_reg")  # proposals are reported apart


def mirrors_used(cfg, progress: bool = True) -> bool:
    """Whether our fine-tuning trains on mirrored views: ``finetune.use_flipped`` (the recipe's when null);
    for ``check``, the outcome our finished fine-tuning recorded, else the check run now (after the
    stages it reads)."""
    from spp_det.pipeline import run_pipeline
    from spp_det.workspace import Workspace

    ws = Workspace(cfg)
    flip = ws.models.finetune_cfg.use_flipped
    if flip != "check":
        return bool(flip)
    if stage_done(ws, "finetune") and ws.layout.mirror_check.is_file():
        return bool(json.loads(ws.layout.mirror_check.read_text())["use_mirrors"])
    return mirror_check(run_pipeline(cfg, stages=["dataset", "proposals", "conv5"], progress=progress)).use_mirrors


def ours(cfg, time_images: int, progress: bool = True) -> dict:
    """The experiment's test mAP, training-stage seconds and per-image seconds (None where not run)."""
    from spp_det import timing
    from spp_det.variants import main_variant
    from spp_det.workspace import Workspace

    ws = Workspace(cfg)
    split = cfg.dataset.test_split
    res = {"workdir": str(ws.root)}
    v = main_variant(cfg)
    if v is not None:
        f = ws.layout.eval_result(split, v)
        if f.is_file() and stage_done(ws, "eval"):
            ev = json.loads(f.read_text())
            res.update(variant=v, mAP=ev["mAP"], coco_AP=ev.get("coco", {}).get("AP"))
    if "mAP" not in res:
        return res
    res["train_seconds"] = sum(manifest_info(ws, s).get("seconds") or 0.0 for s in TRAIN_STAGES)
    res["proposal_seconds"] = manifest_info(ws, "proposals").get("seconds")
    files = [str(r.path) for r in ws.data.dataset(split).records[:time_images]]
    method = timing.Method(f"SPP {len(ws.models.scales)}-scale", "spp", ws.models.scales)
    summary, _ = timing.run_timing(files, [method], timing.models_from_workspace(ws), ws.data.search_params(), False,
                                    progress)
    s = summary[method.name]
    res["seconds_per_image"] = s["total"] + s["proposals"]
    res["proposal_seconds_per_image"] = s["proposals"]
    return res


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--workdir", help="override the config's workdir (where our finished run is read)")
    p.add_argument("--out", help="peer output folder (default runs/peer/<config name>)")
    p.add_argument("--epochs", type=int, default=13)
    p.add_argument("--lr", type=float, default=0.0025)
    p.add_argument("--time-images", type=int, default=10)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        import torch

        from spp_det.io_utils import save_text
        from spp_det.peer_fasterrcnn import PeerConfig, run_peer

        cfg = load_from_args(args)
        out = Path(args.out or f"runs/peer/{cfg.name}")
        steps = [round(args.epochs * 9 / 13), round(args.epochs * 12 / 13)]
        # the peer sees the views ours fine-tunes on (mirrored or not)
        peer = run_peer(cfg, PeerConfig(epochs=args.epochs, base_lr=args.lr, lr_steps=steps,
                                        flip=mirrors_used(cfg, not args.no_progress)), out, not args.no_progress)
        mine = ours(cfg, args.time_images, not args.no_progress)
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
        if peer.get("device", "cpu") != "cpu":
            machine += f"; peer on {peer['device']} ({torch.cuda.get_device_name(peer['device'])})"
        lines = [f"{cfg.name}: train {cfg.dataset.train_split} ({peer['train_images']} images) -> "
                 f"test {cfg.dataset.test_split} ({peer['test_images']} images), {cfg.backbone.name}, "
                 f"scale {cfg.model.scales}; {machine}",
                 f"  {'method':<44} {'VOC07 mAP':>9} {'COCO AP':>7} {'train (s)':>10} {'s/image':>8}"]
        if "mAP" in mine:
            lines.append(f"  {'SPP-net (ours, ' + mine['variant'] + ')':<44} {100 * mine['mAP']:9.2f} "
                         f"{pct(mine['coco_AP']):>7} {mine['train_seconds']:10.0f} {mine['seconds_per_image']:8.2f}"
                         f"   (+ proposals {mine['proposal_seconds']:.0f} s for the dataset; "
                         f"{mine['proposal_seconds_per_image']:.2f} s/image of the s/image)")
            lines.append("  (ours: stage seconds as its manifests recorded them; a stage that found maps or "
                         "boxes already cached counts only what it computed)")
        else:
            lines.append(f"  (no finished run of this config in {mine['workdir']}: run tools/run_pipeline.py first)")
        lines.append(f"  {'Faster R-CNN (torchvision, conv fine-tuned)':<44} {100 * peer['mAP']:9.2f} "
                     f"{pct(peer['coco']['AP']):>7} {peer['train_seconds']:10.0f} {peer['test_seconds_per_image']:8.2f}"
                     f"   ({args.epochs} epochs, {peer['iterations']} iterations of {PeerConfig.batch_images} images)")
        text = "\n".join(lines)
        print(text)
        save_text(text + "\n", out / "comparison.txt")
        (out / "ours.json").write_text(json.dumps(mine, indent=2) + "\n")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
