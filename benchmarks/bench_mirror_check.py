#!/usr/bin/env python
"""The mirror check (``finetune.use_flipped: check``, spp_det/mirror_check.py) on each family's split.

Usage: python benchmarks/bench_mirror_check.py [--configs configs/demo.yaml configs/family_silhouettes.yaml
       configs/family_photos.yaml configs/family_glyphs.yaml] [--phase dev|test] [--out runs/heldout]

Runs the dataset, proposals and conv5 stages of each config the way ``bench_heldout.py`` does (``--phase
dev``: the ``train`` split, with proposals and maps shared under ``<out>/dev/<config name>``; ``test``:
``trainval``), then the check on the fine-tuning split, and prints per family the held-out accuracy of
objects and of their mirrors, their ratio, the decision, per-class accuracies and the seconds. The glyphs
family must be written first (``benchmarks/make_glyphs_voc.py``). Results: docs/BENCHMARKS.md, "Mirrored
views: the check".
"""
import argparse
from pathlib import Path

from bench_heldout import DEFAULT_CONFIGS, SPLITS  # the families and phases of the held-out runs

from spp_det.cli import run_main, setup_logging

CONFIGS = DEFAULT_CONFIGS + ["configs/family_glyphs.yaml"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=CONFIGS)
    p.add_argument("--phase", choices=sorted(SPLITS), default="dev")
    p.add_argument("--out", default="runs/heldout")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        from spp_det.config import load_config
        from spp_det.io_utils import save_text
        from spp_det.pipeline import run_pipeline
        from spp_det.stages import mirror_check

        train, test = SPLITS[args.phase]
        lines = [f"mirror check on the {train} split ({args.phase})", "",
                 "| family | objects | held-out objects | their mirrors | ratio | mirrors used | per class "
                 "(objects / mirrors, %) | seconds |", "|---|---|---|---|---|---|---|---|"]
        for c in args.configs:
            name = load_config(c).name
            fam = Path(args.out) / args.phase / name
            cfg = load_config(c, [f"dataset.train_split={train}", f"dataset.test_split={test}",
                                  f"workdir={fam / 'mirror_check'}", f"proposals.cache_dir={fam / 'proposals'}",
                                  f"features.conv5_root={fam / 'conv5'}", "finetune.use_flipped=check"])
            ws = run_pipeline(cfg, stages=["dataset", "proposals", "conv5"], progress=not args.no_progress)
            r = mirror_check(ws)
            per = ", ".join(f"{k} {100 * a:.0f}/{100 * m:.0f}" for k, (a, m, _) in r.per_class.items())
            lines.append(f"| {name} | {r.objects} | {100 * r.original:.1f} | {100 * r.mirrored:.1f} | "
                         f"{r.ratio:.3f} | {'yes' if r.use_mirrors else 'no'} | {per} | {r.seconds:.1f} |")
        text = "\n".join(lines)
        print(text)
        save_text(text + "\n", Path(args.out) / args.phase / "mirror_check.md")

    return run_main(go)


if __name__ == "__main__":
    raise SystemExit(main())
