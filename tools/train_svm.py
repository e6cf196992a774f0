#!/usr/bin/env python
"""Stage: per-class linear SVMs with hard negative mining on fine-tuned fc7.

Usage: python tools/train_svm.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det svm ...` (spp_det/cli/commands.py); `python tools/train_svm.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("svm"))
