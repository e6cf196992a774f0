#!/usr/bin/env python
"""Stage: class-specific ridge box regressors on pooled conv5.

Usage: python tools/train_bbox_reg.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("bbox_reg", __doc__.splitlines()[0]))
