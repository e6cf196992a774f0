#!/usr/bin/env python
"""SPP classification pre-training: conv + SPP + fc6/fc7/fc8, single- or multi-size; top-1/top-5 error.

Two ways to run it:

  # the pretrain stage of an experiment (generated crops unless pretrain.data is set); its model.pt
  # becomes the backbone of the config when backbone.weights is "pretrain"
  python tools/pretrain_cls.py --config configs/demo_zf5.yaml [--set pretrain.sizes=[224]] [--force]

  # any ImageNet-style folder DATA/train/<class>/*.jpg (+ DATA/val/<class>/*.jpg)
  python tools/pretrain_cls.py --data DATA --out runs/cls [--sizes 224 180] [--epochs 30] [--eval center full multiview]

The output directory holds model.pt (load it with backbone.weights: <path>/model.pt), eval.json and log.json.
"""
import argparse
import sys

from spp_det.cli import run_main, setup_logging, stage_main
from spp_det.config import PretrainConfig


def folder_main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder with train/<class>/*.jpg and optionally val/<class>/*.jpg")
    p.add_argument("--out", required=True, help="output directory")
    d = PretrainConfig()  # the defaults live in spp_det/config.py only
    p.add_argument("--backbone", default="zf5")
    p.add_argument("--sizes", type=int, nargs="+", default=d.sizes, help="224 180 = multi-size; 224 = single")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.base_lr)
    p.add_argument("--optimizer", choices=["sgd", "adam"], default=d.optimizer)
    p.add_argument("--resize", type=int, default=d.resize, help="shorter side before the random crop")
    p.add_argument("--crop", type=int, default=d.crop)
    p.add_argument("--multiview-scales", type=int, nargs="+", default=d.multiview_scales)
    p.add_argument("--eval-images", type=int, default=d.eval_images,
                   help="evaluate on this many evenly spaced val images")
    p.add_argument("--lr-steps", type=int, nargs="*", default=d.lr_steps, help="epochs at which lr is divided by 10")
    p.add_argument("--fc-dim", type=int, default=d.fc_dim)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--eval", nargs="+", default=d.eval_modes, dest="eval_modes")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    setup_logging(args.verbose)

    def go() -> None:
        from pathlib import Path

        from spp_det.pretrain import format_results, pretrain
        cfg = PretrainConfig(sizes=args.sizes, epochs=args.epochs, batch_size=args.batch_size, base_lr=args.lr,
                             optimizer=args.optimizer, resize=args.resize, crop=args.crop, lr_steps=args.lr_steps,
                             fc_dim=args.fc_dim, seed=args.seed, eval_modes=args.eval_modes,
                             multiview_scales=args.multiview_scales, eval_images=args.eval_images)
        val = Path(args.data) / "val"
        res = pretrain(Path(args.data) / "train", val if val.is_dir() else None, args.out, cfg, args.backbone,
                       progress=not args.no_progress)
        print(format_results(res, cfg.sizes), flush=True)

    return run_main(go)


if __name__ == "__main__":
    if "--config" in sys.argv:
        sys.exit(stage_main("pretrain", __doc__.splitlines()[0]))
    sys.exit(folder_main())
