"""One page per experiment: ``spp-det report --workdir W`` writes ``W/report.html``.

The page shows the stage-wise results (the paper's Table 9, with COCO AP) as a table and as bars,
per-class AP and precision-recall curves, a grid of test images with their ground truth and the final
detector's detections (true positives, false positives and detections of difficult objects coloured
apart, by the devkit's matching), fine-tuning's curves, hard-negative mining, proposal recall, the
time of each stage and the resolved config.

Conventions: it reads only the work directory (``config.yaml``, the manifests, ``eval/``,
``detections/``, ``finetune/log.json``, the SVMs' ``info``) and the test split's images and
annotations; pictures a stage should have drawn but an older run lacks are drawn first, from the same
saved data (:mod:`spp_det.plots`). The page is self-contained (every picture embedded as a data URI,
so it can be mailed or archived alone) and written atomically. It shows only what the stages made
under the current config (:func:`spp_det.stages.stage_done`): a section whose stage is not done for it
says so, rather than show an earlier config's files.
"""
from __future__ import annotations

import base64
import datetime
import html
import logging
from pathlib import Path
from typing import Optional

import numpy as np

from .drawing import labelled_box
from .io_utils import load_json, save_text
from .stages import stage_done
from .variants import VARIANT, VARIANTS
from .workspace import Workspace

log = logging.getLogger(__name__)

# BGR colours of the test-image grid (named in the page's legend)
GT_COLOUR, DIFFICULT_COLOUR = (255, 255, 255), (160, 160, 160)
STATUS_COLOUR = {1: (60, 200, 60), 0: (40, 40, 230), -1: (0, 165, 255)}  # TP green, FP red, difficult orange
STATUS_NAME = {1: "true positive", 0: "false positive", -1: "on a difficult object (ignored)"}

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1180px; color: #222; }
h1 { font-size: 22px; } h2 { font-size: 17px; border-bottom: 1px solid #ccc; padding-bottom: 3px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; } th { background: #f3f3f3; }
td:first-child, th:first-child, td.text { text-align: left; }
img.plot { max-width: 100%; border: 1px solid #eee; margin: 4px 0; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 10px; }
.grid figure { margin: 0; } .grid img { width: 100%; border: 1px solid #ccc; }
figcaption { font-size: 11px; color: #555; } .note { color: #777; font-size: 13px; }
.swatch { display: inline-block; width: 12px; height: 12px; border: 1px solid #999; vertical-align: middle; margin: 0 3px 0 10px; }
pre { background: #f7f7f7; padding: 8px; font-size: 12px; overflow-x: auto; }
"""


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _img(path: Path, alt: str, missing: str = "") -> str:
    if not path.is_file():
        why = missing or f"{path.name} is missing"
        return f'<p class="note">({html.escape(alt)}: not drawn; {html.escape(why)})</p>'
    return f'<img class="plot" alt="{html.escape(alt)}" src="{_png(path)}">'


def _table(header: list[str], rows: list[list]) -> str:
    """Numbers right-aligned, text left-aligned."""
    def cell(c) -> str:
        text = str(c)
        numeric = text.replace(".", "", 1).replace("-", "", 1).isdigit() or text == "-"
        return f'<td{"" if numeric else " class=text"}>{html.escape(text)}</td>'
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(x: Optional[float]) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.2f}"


SVM_STAGE = {"pool5": "svm_pool5", "fc7": "svm"}


def _finetune_log(ws: Workspace) -> bool:
    return stage_done(ws, "finetune") and ws.layout.finetune_log.is_file()


def _results(ws: Workspace, split: str) -> dict:
    """Variant -> its eval JSON, in table order (variants the eval stage scored for this config)."""
    if not stage_done(ws, "eval"):
        return {}
    out = {}
    for v in VARIANTS:
        p = ws.layout.eval_result(split, v.name)
        if v.used(ws.cfg) and p.is_file():
            out[v.name] = load_json(p)
    return out


def draw_missing_pictures(ws: Workspace, split: str) -> None:
    """Draw the pictures the stages draw (:mod:`spp_det.layout`) where a finished run lacks them."""
    from .stages import draw_eval_plots
    lay = ws.layout
    if stage_done(ws, "eval"):
        variants = list(_results(ws, split))
        wanted = [lay.pr_plot(split, v) for v in variants] + [lay.stagewise_plot(split), lay.recall_plot(split)]
        if not all(p.is_file() for p in wanted):
            from .evaluation.coco import evaluate_comp4_voc_coco
            records = ws.data.dataset(split).records
            results = {v: evaluate_comp4_voc_coco(lay.detections(split, v), records, ws.data.classes, split,
                                                  ws.cfg.eval.use_07_metric)[0] for v in variants}
            draw_eval_plots(ws, split, results)
    if _finetune_log(ws) and not lay.finetune_plot.is_file():
        from .plots import finetune_curves
        saved = load_json(lay.finetune_log)
        if saved.get("history"):
            finetune_curves(saved["history"], lay.finetune_plot, f"fine-tuning of {ws.cfg.name}",
                            (saved.get("best") or {}).get("iter"))
    for kind in ("pool5", "fc7"):
        if stage_done(ws, SVM_STAGE[kind]) and not lay.mining_plot(kind).is_file():
            from .linear import LinearModels
            from .plots import mining_progress
            info = LinearModels.load(lay.svm(kind)).info
            if any(d.get("mining") for d in info.values()):  # runs before mining was recorded have none
                mining_progress(info, lay.mining_plot(kind), f"{ws.cfg.name}: hard-negative mining of the {kind} SVMs")


def _detections_by_image(ws: Workspace, split: str, variant: str) -> dict[str, list[tuple]]:
    """image id -> [(class index, score, internal box, status)] of ``variant``'s comp4 files, ``status`` by the
    devkit's matching of the whole split (:func:`spp_det.evaluation.voc.eval_class`)."""
    from .evaluation.voc import eval_class, gt_by_class, load_comp4_dir
    records = ws.data.dataset(split).records
    dets = load_comp4_dir(ws.layout.detections(split, variant), records, ws.data.classes, split)
    gts = gt_by_class(records, len(ws.data.classes))
    out: dict[str, list[tuple]] = {}
    for c, d in enumerate(dets):
        status = eval_class(d, gts[c], 0.5, ws.cfg.eval.use_07_metric)["status"]
        for image_id, score, box, st in zip(d.image_ids, d.scores, d.boxes, status):
            out.setdefault(image_id, []).append((c, float(score), box, int(st)))
    return out


def draw_test_image(image_bgr: np.ndarray, record, dets: list[tuple], classes: list[str], min_score: float,
                    top: int, width: int = 360) -> np.ndarray:
    """The image with its ground truth (white; difficult grey) and its ``top`` detections scoring at least
    ``min_score`` (coloured by status, :data:`STATUS_COLOUR`), scaled to ``width`` pixels."""
    import cv2
    f = width / image_bgr.shape[1]
    img = cv2.resize(image_bgr, (width, max(1, int(round(image_bgr.shape[0] * f)))), interpolation=cv2.INTER_AREA)
    for b, diff in zip(record.boxes, record.difficult):
        labelled_box(img, b, DIFFICULT_COLOUR if diff else GT_COLOUR, thickness=1, scale=f)
    shown = sorted((d for d in dets if d[1] >= min_score), key=lambda d: -d[1])[:top]
    for c, score, b, st in reversed(shown):  # best drawn last, on top
        labelled_box(img, b, STATUS_COLOUR[st], f"{classes[c]} {score:.2f}", font_scale=0.4, scale=f)
    return img


def _image_grid(ws: Workspace, split: str, variant: str, n: int, min_score: float, top: int) -> str:
    import cv2
    records = ws.data.dataset(split).records
    by_image = _detections_by_image(ws, split, variant)
    pick = np.unique(np.linspace(0, len(records) - 1, min(n, len(records))).round().astype(int))
    cells = []
    for i in pick:
        r = records[i]
        dets = by_image.get(r.image_id, [])
        img = draw_test_image(r.load(), r, dets, ws.data.classes, min_score, top)
        ok, jpg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        shown = [d for d in dets if d[1] >= min_score]
        counts = {s: sum(d[3] == s for d in sorted(shown, key=lambda d: -d[1])[:top]) for s in (1, 0, -1)}
        cap = (f"{html.escape(r.image_id)}: {len(r.boxes)} objects; {counts[1]} TP, {counts[0]} FP"
               + (f", {counts[-1]} on difficult" if counts[-1] else "") + f" (of {len(dets)} detections)")
        cells.append(f'<figure><img alt="{html.escape(r.image_id)}" src="data:image/jpeg;base64,'
                     f'{base64.b64encode(jpg.tobytes()).decode()}"><figcaption>{cap}</figcaption></figure>')
    legend = "".join(f'<span class="swatch" style="background: rgb{tuple(reversed(col))}"></span>{name}'
                     for col, name in [(GT_COLOUR, "ground truth"), (DIFFICULT_COLOUR, "difficult ground truth")]
                     + [(STATUS_COLOUR[s], STATUS_NAME[s]) for s in (1, 0, -1)])
    return (f'<p>{legend}</p><p class="note">{len(pick)} of {len(records)} {split} images, evenly spaced; the '
            f'{top} best detections of {html.escape(VARIANT[variant].title)} scoring at least {min_score:g} '
            f'per image, matched as the devkit matches them (IoU >= 0.5, one detection per object).</p>'
            f'<div class="grid">{"".join(cells)}</div>')


def write_report(ws: Workspace, images: int = 12, min_score: float = 0.0, top: int = 10) -> Path:
    """Write ``<workdir>/report.html`` (module docstring); returns its path. ``images``: test images in the
    grid; ``min_score`` and ``top``: which detections each shows."""
    from .stages import STAGES, manifest_info
    lay, cfg = ws.layout, ws.cfg
    split = cfg.dataset.test_split
    draw_missing_pictures(ws, split)
    results = _results(ws, split)
    parts = [f"<h1>spp-det report: {html.escape(cfg.name)}</h1>",
             f'<p class="note">work directory {html.escape(str(lay.root.resolve()))}; written '
             f'{datetime.datetime.now().strftime("%Y-%m-%d %H:%M")}. Backbone {html.escape(cfg.backbone.name)}, '
             f'scales {cfg.model.scales}, SPP levels {cfg.model.spp_levels}, dataset '
             f'{html.escape(cfg.dataset.root)} (train {html.escape(cfg.dataset.train_split)}, test '
             f'{html.escape(split)}), {len(ws.data.classes)} classes.</p>']

    parts.append(f"<h2>Stage-wise results on {html.escape(split)} (cf. the paper's Table 9)</h2>")
    if results:
        main = list(results)[-1]
        parts.append(_table(["detector", "VOC mAP", "COCO AP", "AP50", "AP75"],
                            [[VARIANT[v].title, _pct(r["mAP"]), _pct(r.get("coco", {}).get("AP")),
                              _pct(r.get("coco", {}).get("AP50")), _pct(r.get("coco", {}).get("AP75"))]
                             for v, r in results.items()]))
        parts.append(_img(lay.stagewise_plot(split), "stage-wise bars"))
        r = results[main]
        parts.append(f"<h2>Per class: {html.escape(VARIANT[main].title)} ({html.escape(r.get('metric', ''))})</h2>")
        parts.append(_table(["class", "AP"] + [VARIANT[v].name for v in results if v != main] + ["test objects"],
                            [[c, _pct(r["ap"][c])] + [_pct(results[v]["ap"][c]) for v in results if v != main]
                             + [r["npos"][c]] for c in ws.data.classes]))
        parts.append(_img(lay.pr_plot(split, main), "precision-recall curves"))
        for v in results:
            if v != main:
                parts.append(f"<details><summary>precision-recall curves of {html.escape(VARIANT[v].title)}"
                             f"</summary>{_img(lay.pr_plot(split, v), 'precision-recall curves')}</details>")
        parts.append("<h2>Test images: ground truth and detections</h2>")
        parts.append(_image_grid(ws, split, main, images, min_score, top))
    else:
        parts.append('<p class="note">No evaluation yet: run <code>spp-det run</code> (or the eval stage).</p>')

    parts.append("<h2>Training</h2>")
    if _finetune_log(ws):
        best = load_json(lay.finetune_log).get("best") or {}
        kept = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in best.items())
        parts.append(f'<p class="note">Kept snapshot: {html.escape(kept or "none")}. The log as a table: '
                     f'{html.escape(str(lay.finetune_csv))}.</p>')
        parts.append(_img(lay.finetune_plot, "fine-tuning curves"))
    else:
        parts.append('<p class="note">No fine-tuning log for this config (not run yet, or fine-tuning is off).</p>')
    for kind in ("pool5", "fc7"):
        if stage_done(ws, SVM_STAGE[kind]):
            parts.append(_img(lay.mining_plot(kind), f"hard-negative mining of the {kind} SVMs",
                              "these SVMs were trained before mining was recorded; `spp-det "
                              f"{SVM_STAGE[kind]} --force` retrains them"))

    parts.append(f"<h2>Proposals of {html.escape(split)}</h2>")
    parts.append(_img(lay.recall_plot(split), "proposal recall") if stage_done(ws, "eval")
                 else '<p class="note">Not evaluated yet.</p>')

    parts.append("<h2>Stage times (last run of each)</h2>")
    rows = []
    for s in STAGES:
        if s.manifest and s.used(ws):
            sec = manifest_info(ws, s.name).get("seconds")
            rows.append([s.name, "-" if sec is None else f"{sec:.1f}", "done" if stage_done(ws, s.name) else "not done",
                         s.doc])
    parts.append(_table(["stage", "seconds", "state", "what it does"], rows))

    parts.append("<h2>Config</h2>")
    cfg_text = lay.config.read_text() if lay.config.is_file() else "(no config.yaml in the work directory)"
    parts.append(f"<details><summary>{html.escape(str(lay.config))}</summary><pre>{html.escape(cfg_text)}</pre></details>")

    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>spp-det: {html.escape(cfg.name)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>\n")
    save_text(page, lay.report)
    return lay.report
