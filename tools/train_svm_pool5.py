#!/usr/bin/env python
"""Stage: per-class SVMs on pooled conv5 without fine-tuning (needs svm.pool5_baseline: true).

Usage: python tools/train_svm_pool5.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("svm_pool5", __doc__.splitlines()[0]))
