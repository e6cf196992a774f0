"""A dataset's splits and their region proposals, with the content keys of both.

Conventions
-----------
* Records: :class:`spp_det.data.voc.ImageRecord` (one image view; ``flipped`` marks a mirror).
* Boxes: internal convention of :mod:`spp_det.boxes` (float ``(N, 4)`` ``x1, y1, x2, y2``,
  0-based inclusive, original-image pixels); a flipped record's proposals are mirrored.
* Keys: hex strings that change exactly when what they describe changes: a split's image bytes
  (:meth:`DataSource.images_key`), its parsed annotations and class list
  (:meth:`DataSource.annotations_key`), its proposals (:meth:`DataSource.proposals_key`: the images
  and the proposal method's settings, stored in the proposals file and checked when it is read).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..config import Config, DatasetConfig, ProposalsConfig
from ..io_utils import file_digest, stable_hash
from .coco import COCODataset
from .voc import DatasetError, DetectionDataset, ImageRecord, VOCDataset


class DataSource:
    """Datasets per split (VOC layout or COCO json, per ``dataset.format``) and their proposals.

    ``proposals_path(split)`` says where a split's proposals file lives
    (:meth:`spp_det.layout.Layout.proposals`). Datasets, keys and proposals are read once and memoised.
    """

    def __init__(self, dataset: DatasetConfig, proposals: ProposalsConfig, proposals_path: Callable[[str], Path]):
        self.dataset_cfg = dataset
        self.proposals_cfg = proposals
        self.proposals_path = proposals_path
        self._datasets: dict[str, DetectionDataset] = {}
        self._proposals: dict[str, dict[str, np.ndarray]] = {}
        self._keys: dict[tuple[str, str], str] = {}

    @classmethod
    def from_config(cls, cfg: Config, proposals_path: Callable[[str], Path]) -> "DataSource":
        return cls(cfg.dataset, cfg.proposals, proposals_path)

    @property
    def classes(self) -> list[str]:
        return list(self.dataset_cfg.classes)

    def dataset(self, split: str) -> DetectionDataset:
        """The validated records of ``split``."""
        if split not in self._datasets:
            d = self.dataset_cfg
            if d.format == "coco":
                if split not in d.coco_files:
                    raise DatasetError(f"dataset.coco_files has no json for split {split!r} "
                                       f"(has: {', '.join(d.coco_files) or 'none'})")
                self._datasets[split] = COCODataset(d.coco_files[split], d.root, d.classes, split,
                                                    d.coco_skip_unknown)
            else:
                self._datasets[split] = VOCDataset(d.root, split, d.classes)
        return self._datasets[split]

    # ------------------------------------------------------------------ content keys
    def images_key(self, split: str) -> str:
        """Content fingerprint of a split's image files (:mod:`spp_det.data.fingerprint`)."""
        if ("images", split) not in self._keys:
            from .fingerprint import images_fingerprint
            self._keys["images", split] = images_fingerprint(self.dataset(split).records)
        return self._keys["images", split]

    def annotations_key(self, split: str) -> str:
        """Content fingerprint of a split's parsed annotations and the class list."""
        if ("annotations", split) not in self._keys:
            from .fingerprint import annotations_fingerprint
            self._keys["annotations", split] = annotations_fingerprint(self.dataset(split).records, self.classes)
        return self._keys["annotations", split]

    def proposals_key(self, split: str) -> str:
        """Key of a split's proposals (stored in the file and checked on load): its images and the method."""
        p = self.proposals_cfg
        key = {"images": self.images_key(split), "method": p.method}
        if p.method == "mat":
            mat = p.mat_files.get(split)
            key["mat"] = file_digest(mat) if mat and Path(mat).is_file() else mat
        else:  # every search setting; the two added later only when they change the search, so that
            # proposals made before them keep their key
            search = self.search_params().to_dict()
            if search["defer_iou"] is None:
                del search["defer_iou"]
            if search["mode"] != "rcnn" or search["ranking"] == "rcnn":  # OpenCV's modes ignore it
                del search["ranking"]
            key.update(search)
        return stable_hash(key)

    # ------------------------------------------------------------------ proposals
    def search_params(self):
        """Selective-search settings of this config (:class:`proposals.selective_search.SearchParams`: its
        fields are ``proposals.*`` keys of the same names)."""
        import dataclasses

        from proposals.selective_search import SearchParams
        p = self.proposals_cfg
        return SearchParams(**{f.name: getattr(p, f.name) for f in dataclasses.fields(SearchParams)})

    def proposals(self, split: str) -> dict[str, np.ndarray]:
        """Image id -> proposals ``(N, 4)`` of ``split`` (an error if the file's key is not this config's)."""
        if split not in self._proposals:
            from proposals.cache import load_proposals
            self._proposals[split] = load_proposals(self.proposals_path(split), self.proposals_key(split))
        return self._proposals[split]

    def proposals_of(self, record: ImageRecord, split: str) -> np.ndarray:
        """The held proposals of a record's image, internal ``(N, 4)``, *not* mirrored for a flipped record."""
        props = self.proposals(split).get(record.image_id)
        if props is None:
            raise KeyError(f"no proposals for image {record.image_id} in {self.proposals_path(split)}")
        return props

    def boxes_for(self, record: ImageRecord, split: str) -> np.ndarray:
        """Proposals of a record (mirrored for a flipped record), internal boxes ``(N, 4)``."""
        props = self.proposals_of(record, split)
        if record.flipped:
            from ..boxes import flip_boxes
            return flip_boxes(props, record.width)
        return props
