#!/usr/bin/env python
"""Per-image time of each detection part: SPP-net 1 scale, SPP-net 5 scales, R-CNN mode (same backbone).

Default: ZF-5 with the paper's shapes and random weights (time does not depend on them), 4096-d fc,
20 classes, on the 13 real VOC 2007 photos; or ``--config`` for a trained experiment's models.
Prints a table shaped like the paper's Table 10 (conv, fc, total, speed-up vs R-CNN) and writes
``timing.json``, ``timing.txt`` and ``timing.png`` (stacked bars) under ``--out``.

Usage: python tools/time_detection.py [--images ../shared/data/voc2007-test-real13/JPEGImages]
       [--backbone zf5] [--config configs/demo.yaml] [--rcnn-windows 500] [--device auto] [--out runs/timing]
"""
import argparse
import platform
import sys
from pathlib import Path

from spp_det.cli import run_main, setup_logging
from spp_det.config import ProposalsConfig

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
DEFAULT_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "voc2007-test-real13" / "JPEGImages"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", default=str(DEFAULT_IMAGES), help="a folder of images")
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
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        import torch

        from spp_det import timing
        from spp_det.devices import resolve_device
        from spp_det.head import test_time_fc
        from spp_det.io_utils import save_json, save_text

        if args.threads:
            torch.set_num_threads(args.threads)
        src = Path(args.images)
        if not src.is_dir():
            raise FileNotFoundError(f"{src}: not a folder of images")
        files = sorted(f for f in src.iterdir() if f.suffix.lower() in EXTS)[: args.limit]
        if not files:
            raise ValueError(f"{src}: no images ({', '.join(sorted(EXTS))})")
        if args.config:
            from spp_det.config import load_config
            from spp_det.workspace import Workspace
            over = [] if args.device == "auto" else [f"features.device={args.device}"]
            if args.fc_svd:
                over.append(f"test.fc_svd=[{args.fc_svd[0]}, {args.fc_svd[1]}]")
            over.append(f"test.fc_dtype={args.fc_dtype}")
            over.append(f"features.conv_dtype={args.conv_dtype}")
            ws = Workspace(load_config(args.config, over))
            models, search, calibrate = timing.models_from_workspace(ws), ws.data.search_params(), False
            label = f"{ws.cfg.name} ({ws.cfg.backbone.name}, trained)"
        else:
            from proposals.selective_search import SearchParams
            from spp_det.models import build_backbone
            dev = resolve_device(args.device)
            models = timing.paper_shaped_models(build_backbone(args.backbone, args.weights, args.conv_dtype),
                                                args.classes, args.fc_dim, device=dev)
            models.detector.head = test_time_fc(models.detector.head, args.fc_svd, args.fc_dtype).to(dev)
            search, calibrate = SearchParams(mode=args.proposals), True
            label = f"{args.backbone}, fc {args.fc_dim}, {args.classes} classes, random weights"
        names = {"spp1": timing.Method(f"SPP {len(args.scales)}-scale", "spp", args.scales),
                 "spp5": timing.Method(f"SPP {len(args.scales5)}-scale", "spp", args.scales5),
                 "rcnn": timing.Method("R-CNN", "rcnn", rcnn_windows=args.rcnn_windows)}
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
        save_json({"title": title, "summary": summary, "args": vars(args), **raw}, out / "timing.json")
        save_text(table + "\n", out / "timing.txt")
        timing.bar_chart(summary, str(out / "timing.png"), title)
        print(f"wrote {out / 'timing.json'}, {out / 'timing.txt'}, {out / 'timing.png'}")

    return run_main(go)


if __name__ == "__main__":
    sys.exit(main())
