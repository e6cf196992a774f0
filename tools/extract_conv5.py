#!/usr/bin/env python
"""Stage: conv5 of every image (and its mirror for fine-tuning) at the config's scale, cached as fp16.

Usage: python tools/extract_conv5.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("conv5", __doc__.splitlines()[0]))
