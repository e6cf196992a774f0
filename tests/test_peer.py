"""The Faster R-CNN peer's box conventions: what goes into torchvision and what comes back."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spp_det.data.voc import ImageRecord
from spp_det.peer_fasterrcnn import _to_input, detect_peer


def _record(tmp_path: Path, box: tuple[int, int, int, int], hw=(40, 57)) -> ImageRecord:
    """A PNG (lossless) with one pure-red rectangle covering the inclusive pixels ``box``."""
    img = np.zeros((*hw, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2 + 1, x1:x2 + 1] = (0, 0, 255)  # BGR red
    path = tmp_path / "im.png"
    cv2.imwrite(str(path), img)
    return ImageRecord("im", path, hw[1], hw[0], np.array([box], np.float32), np.array([3]),
                       np.zeros(1, bool), np.zeros(1, bool))


@pytest.mark.parametrize("flip", [False, True])
def test_input_box_covers_exactly_the_object_pixels(tmp_path, flip):
    rec = _record(tmp_path, (5, 7, 20, 30))
    x, target = _to_input(rec, flip)
    assert x.shape == (3, 40, 57) and x.dtype == torch.float32 and float(x.max()) == 1.0
    red = (x[0] == 1.0) & (x[1] == 0) & (x[2] == 0)  # RGB order, 0..1
    ys, xs = np.nonzero(red.numpy())
    # torchvision's continuous box covers pixel columns x1 <= i < x2: brute force from the mask
    expected = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert target["boxes"].tolist() == [expected]
    assert target["labels"].tolist() == [4]  # class 3 -> 4 (0 is torchvision's background)


class _FixedOutput(torch.nn.Module):
    """Stands in for a trained Faster R-CNN: returns one continuous-coordinate box per image."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, images):
        return [{"boxes": torch.tensor([[5.0, 7.0, 21.0, 31.0]]), "scores": torch.tensor([0.9]),
                 "labels": torch.tensor([4])} for _ in images]


def test_output_boxes_return_to_inclusive_pixels(tmp_path):
    rec = _record(tmp_path, (5, 7, 20, 30))
    [(image_id, dets)], _ = detect_peer(_FixedOutput(), [rec], progress=False)
    assert image_id == "im"
    np.testing.assert_array_equal(dets.boxes, rec.boxes)  # round trip: in and out agree
    assert dets.labels.tolist() == [3] and dets.scores.tolist() == pytest.approx([0.9])


class _LossOnly(torch.nn.Module):
    """Stands in for Faster R-CNN in training: a loss that does not depend on the images."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def forward(self, images, targets):
        return {"loss": (self.w ** 2).sum()}


@pytest.mark.parametrize("flip", [False, True])
def test_training_mirrors_images_only_when_asked(tmp_path, monkeypatch, flip):
    # the peer must see the views ours fine-tunes on: with finetune.use_flipped false (chiral classes,
    # e.g. characters) it may never train on a mirrored image
    import spp_det.peer_fasterrcnn as peer_mod

    seen = []
    real = peer_mod._to_input
    monkeypatch.setattr(peer_mod, "_to_input", lambda rec, f: (seen.append(f), real(rec, f))[1])
    rec = _record(tmp_path, (5, 7, 20, 30))
    cfg = peer_mod.PeerConfig(epochs=4, batch_images=1, warmup_iters=0, flip=flip)
    peer_mod.train_peer(_LossOnly(), [rec] * 10, cfg, tmp_path / "peer", "key", progress=False)
    assert len(seen) == 40
    if flip:
        assert 10 <= sum(seen) <= 30  # each view mirrored with probability 1/2
    else:
        assert not any(seen)
