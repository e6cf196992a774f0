#!/usr/bin/env python
"""Stage: per-class linear SVMs with hard negative mining on fine-tuned fc7.

Usage: python tools/train_svm.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("svm", __doc__.splitlines()[0]))
