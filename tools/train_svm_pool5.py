#!/usr/bin/env python
"""Stage: per-class SVMs on pooled conv5 (no fine-tuning), hard negatives mined.

Usage: python tools/train_svm_pool5.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det svm_pool5 ...` (spp_det/cli/commands.py); `python tools/train_svm_pool5.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("svm_pool5"))
