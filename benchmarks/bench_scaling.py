#!/usr/bin/env python
"""How each stage's time, peak memory and disk grow with the number of images (issue 12).

Usage: python benchmarks/bench_scaling.py [--sizes 250 500 1000 2000] [--out runs/scaling]
       [--plot docs/scaling.png] [--md runs/scaling/scaling.md] [--set key=value ...]

The demo's pipeline (``configs/demo.yaml``) on generated VOC-format data of each size (half trainval,
half test, as VOC 2007) with smaller settings so that all sizes finish in well under an hour on 2
cores (:data:`BENCH_SETTINGS`: smaller images, one 320 scale, at most 500 proposals, 300 fine-tuning
iterations whatever the size). Every stage runs in a process of its own (``tools/run_pipeline.py
--stages <stage>``) so that its peak resident memory is its own: ``os.wait4``'s ``ru_maxrss``, the
largest single process of the stage (a stage's worker processes, selective search's, are counted
apart, not added). Time is the stage's own (``timings.json``; process start and imports not
included); disk is what the work directory and the data folder grew by.

Then per stage a least-squares line ``a + b * images`` for time and for peak memory, the growth
exponent of time (slope of log time against log images between the two largest sizes), and the
extrapolation of both lines to VOC 2007 (9,963 images) and COCO train2017 + val2017 (123,287) at
these settings. Results are kept in ``<out>/results.json`` (a rerun measures only the sizes it lacks).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# what makes 2,000 images fit a 2-core hour: stated in docs/BENCHMARKS.md with the results
BENCH_SETTINGS = ["dataset.generate.min_side=240", "dataset.generate.max_side=320", "proposals.max_boxes=500",
                  "model.scales=[320]", "finetune.iterations=300", "finetune.snapshot_every=100",
                  "norm.images=100"]
TARGETS = {"VOC 2007": 9963, "COCO train+val 2017": 123287}


def dir_bytes(*dirs: Path) -> int:
    return sum(p.stat().st_size for d in dirs if d.exists() for p in d.rglob("*") if p.is_file())


def run_stage(config: str, overrides: list[str], workdir: Path, stage: str) -> dict:
    """Run one stage in a new process: its own seconds, the peak RSS (MB) of its largest process."""
    cmd = [sys.executable, str(ROOT / "tools" / "run_pipeline.py"), "--config", config, "--workdir", str(workdir),
           "--stages", stage, "--no-progress"] + [a for o in overrides for a in ("--set", o)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed ({' '.join(cmd)}):\n{out[-3000:]}")
    timing = next(t for t in json.loads((workdir / "timings.json").read_text()) if t["stage"] == stage)
    return {"seconds": timing["seconds"], "wall": time.perf_counter() - t0, "rss_mb": usage.ru_maxrss / 1024}


def measure(size: int, args) -> dict:
    from spp_det.stages import STAGES
    out = Path(args.out)
    workdir, data = out / f"n{size}" / "work", out / f"n{size}" / "data"
    overrides = BENCH_SETTINGS + [f"dataset.root={data / 'VOCdevkit' / 'VOC2007'}",
                                  f"dataset.generate.num_trainval={size // 2}",
                                  f"dataset.generate.num_test={size - size // 2}"] + args.overrides
    rows, before = {}, dir_bytes(workdir, data)
    for st in STAGES:
        r = run_stage(args.config, overrides, workdir, st.name)
        after = dir_bytes(workdir, data)
        r["disk_mb"], before = (after - before) / 2 ** 20, after
        rows[st.name] = r
        print(f"  {size:>5} images  {st.name:<11} {r['seconds'] or 0:8.1f} s  {r['rss_mb']:8.0f} MB  "
              f"{r['disk_mb']:9.1f} MB disk", flush=True)
    svm = workdir / "svm" / "fc7.pt"
    extra = {}
    if svm.is_file():
        import torch
        info = torch.load(svm, weights_only=False)["info"]
        extra["svm_fc7_cached_negatives"] = int(sum(v.get("neg_cached", 0) for v in info.values()))
    return {"images": size, "stages": rows, **extra}


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``a + b x``."""
    import numpy as np
    if len(xs) < 2:
        return float(ys[0]), 0.0
    b, a = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(a), float(b)


def report(results: list[dict]) -> str:
    import math
    sizes = [r["images"] for r in results]
    stages = [s for s in results[0]["stages"] if all(s in r["stages"] for r in results)]
    head = " | ".join(f"{n:,}" for n in sizes)
    lines = [f"Time (s) per stage at {head} images; growth exponent between the two largest; least-squares "
             "line; extrapolated to " + ", ".join(f"{k} ({v:,})" for k, v in TARGETS.items()) + ":", "",
             f"| stage | {head} | exponent | s per 1,000 images | " + " | ".join(TARGETS) + " |",
             "|---" * (len(sizes) + 4 + len(TARGETS)) + "|"]
    for s in stages:
        t = [r["stages"][s]["seconds"] or 0.0 for r in results]
        a, b = fit(sizes, t)
        exp = (math.log(max(t[-1], 1e-3) / max(t[-2], 1e-3)) / math.log(sizes[-1] / sizes[-2])
               if len(sizes) > 1 else float("nan"))
        lines.append(f"| {s} | " + " | ".join(f"{x:.1f}" for x in t) + f" | {exp:.2f} | {1000 * b:.1f} | "
                     + " | ".join(f"{(a + b * n) / 3600:.1f} h" for n in TARGETS.values()) + " |")
    lines += ["", f"Peak RSS (MB, largest process of the stage) at {head} images; least-squares line; "
              "extrapolated:", "",
              f"| stage | {head} | MB per 1,000 images | " + " | ".join(TARGETS) + " |",
              "|---" * (len(sizes) + 3 + len(TARGETS)) + "|"]
    for s in stages:
        m = [r["stages"][s]["rss_mb"] for r in results]
        a, b = fit(sizes, m)
        lines.append(f"| {s} | " + " | ".join(f"{x:.0f}" for x in m) + f" | {1000 * b:.0f} | "
                     + " | ".join(f"{(a + b * n) / 1024:.1f} GB" for n in TARGETS.values()) + " |")
    lines += ["", f"Disk (MB) each stage added at {head} images:", "",
              f"| stage | {head} | MB per 1,000 images |", "|---" * (len(sizes) + 2) + "|"]
    for s in stages:
        d = [r["stages"][s]["disk_mb"] for r in results]
        lines.append(f"| {s} | " + " | ".join(f"{x:.1f}" for x in d) + f" | {1000 * fit(sizes, d)[1]:.1f} |")
    if all("svm_fc7_cached_negatives" in r for r in results):
        lines += ["", "fc7 SVMs' cached hard negatives at the end (all classes): "
                  + ", ".join(f"{r['svm_fc7_cached_negatives']:,}" for r in results)]
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = [r["images"] for r in results]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    ran = [s for s in results[0]["stages"] if max(r["stages"][s]["seconds"] or 0.0 for r in results) >= 0.5]
    for k, s in enumerate(ran):  # stages this config runs (not the unused ones), one colour each in both
        style = {"marker": "o", "label": s, "color": plt.cm.tab10(k % 10)}
        ax_t.plot(sizes, [r["stages"][s]["seconds"] for r in results], **style)
        ax_m.plot(sizes, [r["stages"][s]["rss_mb"] / 1024 for r in results], **style)
    ax_t.set(xscale="log", yscale="log", xlabel="images (half trainval, half test)", ylabel="stage time (s)",
             title="time per stage")
    ax_m.set(xscale="log", xlabel="images", ylabel="peak RSS of the stage's largest process (GB)",
             title="peak memory per stage")
    ax_m.axhline(8, color="grey", linestyle="--", linewidth=1)
    ax_m.text(sizes[0], 8.05, "8 GB target", color="grey", fontsize=8, va="bottom")
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=8, loc="center right")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("spp-det stage scaling (bench_scaling.py settings, 2 CPU cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--out", default="runs/scaling")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--plot", default="docs/scaling.png")
    p.add_argument("--md", default=None, help="also write the tables here (default <out>/scaling.md)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = out / "results.json"
    done = {r["images"]: r for r in json.loads(store.read_text())} if store.is_file() else {}
    for n in sorted(args.sizes):
        if n not in done:
            done[n] = measure(n, args)
            store.write_text(json.dumps([done[k] for k in sorted(done)], indent=1))
    results = [done[n] for n in sorted(args.sizes)]
    text = report(results)
    print(text)
    Path(args.md or out / "scaling.md").write_text(text + "\n")
    if len(results) > 1:
        plot(results, Path(args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
