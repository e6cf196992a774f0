#!/usr/bin/env python
"""The stage-wise table (pool5 SVMs, fine-tuned fc7, + box regression) on several dataset families.

Usage: python benchmarks/bench_heldout.py [--configs configs/demo.yaml configs/family_silhouettes.yaml
       configs/family_photos.yaml] [--phase dev|test] [--name base] [--set key=value ...] [--no-pool5]
       [--combine-with OTHER [--combine-mode union|average]] [--start-from OTHER]

``--phase dev`` trains on each dataset's ``train`` split and evaluates on ``val`` (where defaults are
chosen); ``--phase test`` trains on ``trainval`` and evaluates on ``test`` (reported once). Every
config runs the whole pipeline under ``<out>/<phase>/<config name>/<name>`` with proposals and conv5
maps shared by all runs of that family and phase; ``--set`` applies to every config (a variant of the
defaults). Prints one row per family (VOC07 mAP, COCO AP in brackets) with the deltas the defaults
must meet (fine-tuned fc7 >= pool5 + 2.0, box regression >= +1.0), and writes
``<out>/<phase>/<name>.md`` and ``.json``.

``--combine-with OTHER`` also combines each family's model with that of the finished variant OTHER
(its overrides read from ``OTHER.json``; paper section 4.3, ``spp_det.combine``: every test window
scored by both, union, per-class NMS; with ``--combine-mode average`` their scores and box deltas
averaged on each window instead) and adds a table of both models and their combination.

``--start-from OTHER`` starts each family's new work directory from a copy of the finished variant
OTHER's trained models and manifests (fine-tuning, SVMs, box regressors, feature norms): the stage
keys then rerun only what the overrides change, e.g. the test stage for a test-time option
(``--name vote --start-from rcnn --set test.box_voting=0.5``).
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

from spp_det.cli import run_main, setup_logging
from spp_det.stages import manifest_info, stage_done

DEFAULT_CONFIGS = ["configs/demo.yaml", "configs/family_silhouettes.yaml", "configs/family_photos.yaml"]
SPLITS = {"dev": ("train", "val"), "test": ("trainval", "test")}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS)
    p.add_argument("--phase", choices=sorted(SPLITS), default="dev")
    p.add_argument("--name", default="base", help="name of this variant (its work directories and table)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-pool5", action="store_true", help="skip the pool5 SVM baseline (the recipe does not "
                   "change it: compare with a run that has it)")
    p.add_argument("--combine-with", metavar="OTHER", help="a finished variant of the same phase to combine "
                   "each family's model with (e.g. --name lite1 --set backbone.name=lite1 --combine-with final)")
    p.add_argument("--combine-mode", default="union", help="how --combine-with combines: union (the paper's) "
                   "or average (scores and deltas averaged on shared windows; spp_det.combine)")
    p.add_argument("--start-from", metavar="OTHER", help="a finished variant of the same phase whose trained "
                   "models and manifests a new work directory starts from (only changed stages rerun)")
    p.add_argument("--out", default="runs/heldout")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args()
    setup_logging()

    def go() -> None:
        from spp_det.combine import run_combination
        from spp_det.config import load_config
        from spp_det.io_utils import save_json, save_text
        from spp_det.pipeline import run_pipeline
        from spp_det.variants import VARIANTS
        from spp_det.workspace import Workspace

        train, test = SPLITS[args.phase]
        out = Path(args.out) / args.phase
        other = json.loads((out / f"{args.combine_with}.json").read_text()) if args.combine_with else None

        def overrides(fam: Path, name: str, no_pool5: bool, extra: list) -> list:
            return [f"dataset.train_split={train}", f"dataset.test_split={test}", f"workdir={fam / name}",
                    f"proposals.cache_dir={fam / 'proposals'}", f"features.conv5_root={fam / 'conv5'}",
                    f"svm.pool5_baseline={'false' if no_pool5 else 'true'}"] + extra

        rows = {}
        for c in args.configs:
            name = load_config(c).name
            fam = out / name
            if args.start_from and not (fam / args.name).exists():
                start_from(fam / args.start_from, fam / args.name)
            ws = run_pipeline(load_config(c, overrides(fam, args.name, args.no_pool5, args.overrides)),
                              progress=not args.no_progress)
            res = {}
            for v in (v.name for v in VARIANTS):
                f = ws.layout.eval_result(test, v)
                if f.is_file() and (v != "pool5" or not args.no_pool5):
                    found = json.loads(f.read_text())
                    res[v] = found["mAP"] * 100
                    res.setdefault("coco_ap", {})[v] = found["coco"]["AP"] * 100
            res["seconds"] = {s: manifest_info(ws, s).get("seconds") for s in ("conv5", "finetune", "svm", "test")}
            if other is not None:
                o = Workspace(load_config(c, overrides(fam, other["name"], other.get("no_pool5", False),
                                                       other["overrides"])))
                if not stage_done(o, "test"):
                    raise ValueError(f"{o.root}: variant {other['name']} has not finished for {c}")
                tag = "" if args.combine_mode == "union" else f"_{args.combine_mode}"
                summary = run_combination([o, ws], fam / f"{other['name']}+{args.name}{tag}",
                                          progress=not args.no_progress, mode=args.combine_mode)
                models = list(summary["_info"]["models"])  # [other, this], as passed
                res["combination"] = [100 * summary[k]["mAP"] for k in models + ["combined"]]
                res["combination_coco_ap"] = [100 * summary[k]["coco"]["AP"] for k in models + ["combined"]]
            rows[name] = res

        def cell(r, k):  # VOC07 mAP (COCO AP)
            return f"{r[k]:.2f} ({r['coco_ap'][k]:.2f})" if k in r else "-"

        lines = [f"{args.name} ({args.phase}: {train} -> {test}){' with ' + ' '.join(args.overrides) if args.overrides else ''}",
                 "", "VOC07 mAP (COCO AP):", "",
                 "| family | pool5 SVMs | fine-tuned fc7 | + bbox reg | fc7 - pool5 (>= 2.0) | bbox gain (>= 1.0) |",
                 "|---|---|---|---|---|---|"]
        for name, r in rows.items():
            d1 = f"{r['fc7'] - r['pool5']:+.2f}" if "pool5" in r and "fc7" in r else "-"
            d2 = f"{r['fc7_bbox'] - r['fc7']:+.2f}" if "fc7_bbox" in r and "fc7" in r else "-"
            lines.append(f"| {name} | {cell(r, 'pool5')} | {cell(r, 'fc7')} | {cell(r, 'fc7_bbox')} | {d1} | {d2} |")
        if other is not None:
            lines += ["", f"Model combination ({other['name']} + {args.name}, each model's main variant, "
                      f"{args.combine_mode}), VOC07 mAP (COCO AP):", "",
                      f"| family | {other['name']} | {args.name} | combined | gain over the better |",
                      "|---|---|---|---|---|"]
            for name, r in rows.items():
                (a, b, both), (ca, cb, cboth) = r["combination"], r["combination_coco_ap"]
                lines.append(f"| {name} | {a:.2f} ({ca:.2f}) | {b:.2f} ({cb:.2f}) | {both:.2f} ({cboth:.2f}) | "
                             f"{both - max(a, b):+.2f} ({cboth - max(ca, cb):+.2f}) |")
        text = "\n".join(lines)
        print(text)
        save_text(text + "\n", out / f"{args.name}.md")
        save_json({"name": args.name, "phase": args.phase, "overrides": args.overrides,
                   "no_pool5": args.no_pool5, "combine_with": args.combine_with,
                   "combine_mode": args.combine_mode, "rows": rows},
                  out / f"{args.name}.json")

    return run_main(go)


def start_from(src: Path, dst: Path) -> None:
    """Copy the trained models and stage manifests of work directory ``src`` into a new ``dst`` (not the
    detections, evaluation or caches)."""
    from spp_det.layout import Layout
    a, b = Layout(src), Layout(dst)
    if not a.manifest("test").is_file():
        raise ValueError(f"{src}: --start-from needs a finished variant there")
    for d in (a.manifest("test").parent, a.finetune_dir, a.svm("fc7").parent, a.bbox_reg.parent, a.norms_dir):
        if d.is_dir():
            shutil.copytree(d, b.root / d.relative_to(a.root))


if __name__ == "__main__":
    sys.exit(main())
