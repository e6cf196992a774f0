"""Using a trained detector from Python.

>>> from spp_det.api import Detector
>>> det = Detector.from_workdir("runs/demo")
>>> result = det.detect("image.jpg")          # or a BGR uint8 array
>>> result.boxes, result.scores, result.labels, det.classes

Boxes are internal: float ``(K, 4)`` ``x1, y1, x2, y2``, 0-based inclusive
pixel indices of the input image.  The detector runs selective search with the
experiment's proposal settings, conv5 at each of the experiment's scales (or, for a
``mode: rcnn`` experiment, the network on every warped window), and the variant
with box regression when one was trained.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .config import load_config
from .data.images import load_image
from .detect import Detections
from .drawing import labelled_box
from .features import compute_conv5_pyramid
from .inference import TrainedModels
from .layout import Layout
from .workspace import Workspace


class Detector:
    def __init__(self, ws: Workspace):
        self.ws = ws
        self.models = TrainedModels.from_workspace(ws)
        self.classes = ws.data.classes
        self.backbone = ws.models.detection_backbone.to(ws.models.device)

    @classmethod
    def from_workdir(cls, workdir: str | Path, device: Optional[str] = None) -> "Detector":
        workdir = Path(workdir)
        cfg_path = Layout(workdir).config
        if not cfg_path.is_file():
            raise FileNotFoundError(f"{cfg_path}: not found; is {workdir} a trained experiment's work directory?")
        cfg = load_config(cfg_path, [f"features.device={device}"] if device else None)
        cfg.workdir = str(workdir)
        for f in (Layout(workdir).svm("fc7"), Layout(workdir).head):
            if not f.is_file():
                raise FileNotFoundError(f"{f}: missing; run the pipeline to the end first")
        return cls(Workspace(cfg))

    def proposals(self, image_bgr: np.ndarray) -> np.ndarray:
        from proposals.selective_search import selective_search
        return selective_search(image_bgr, self.ws.data.search_params())

    def detect(self, image: Union[str, Path, np.ndarray], boxes: Optional[np.ndarray] = None,
               variant: Optional[str] = None) -> Detections:
        """Detect objects in a path or BGR uint8 ``(H, W, 3)`` array; ``boxes`` overrides proposals."""
        img = load_image(image) if isinstance(image, (str, Path)) else np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"image must be BGR uint8 (H, W, 3), got {img.dtype} {img.shape}")
        windows = self.proposals(img) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
        # SPP mode: conv maps at every scale; R-CNN mode: the pooler warps windows of the image itself
        models = self.ws.models
        inputs = img if models.rcnn_mode else compute_conv5_pyramid(self.backbone, img, models.scales, models.device)
        res = self.models.detect(inputs, windows, img.shape[:2])
        return res[variant or self.models.main_variant]


def draw_detections(image_bgr: np.ndarray, dets: Detections, classes: list[str],
                    min_score: float = 0.0) -> np.ndarray:
    """A copy of the image with boxes scoring above ``min_score`` drawn and labelled."""
    out = image_bgr.copy()
    palette = [(int(37 * i) % 255, int(97 * i + 80) % 255, int(151 * i + 160) % 255) for i in range(len(classes))]
    for b, s, l in sorted(zip(dets.boxes, dets.scores, dets.labels), key=lambda t: t[1]):
        if s < min_score:
            continue
        labelled_box(out, b, palette[int(l)], f"{classes[int(l)]} {s:.2f}")
    return out


def detect_folder(workdir: str, files: list[Path], out: Path, min_score: float = 0.0,
                  device: Optional[str] = None, quiet: bool = False) -> None:
    """Detect with the experiment in ``workdir`` on ``files``; write ``<stem>_det.jpg`` with boxes to ``out``."""
    from .io_utils import save_image
    det = Detector.from_workdir(workdir, device)
    out.mkdir(parents=True, exist_ok=True)
    for f in files:
        t = time.perf_counter()
        img = load_image(f)
        d = det.detect(img)
        save_image(draw_detections(img, d, det.classes, min_score), out / f"{f.stem}_det.jpg")
        shown = [f"{det.classes[l]} {s:.2f}" for s, l in zip(d.scores, d.labels) if s >= min_score]
        if not quiet:
            print(f"{f.name}: {len(shown)} detections >= {min_score} in {time.perf_counter() - t:.2f} s"
                  f"{': ' + ', '.join(shown[:8]) if shown else ''}")
    print(f"images with boxes drawn: {out}/")
