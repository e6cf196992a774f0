#!/usr/bin/env python
"""Stage: selective-search proposals for every split the config uses (cached per split, resumable).

Usage: python tools/compute_proposals.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("proposals", __doc__.splitlines()[0]))
