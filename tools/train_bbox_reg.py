#!/usr/bin/env python
"""Stage: per-class bounding-box regressors.

Usage: python tools/train_bbox_reg.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det bbox_reg ...` (spp_det/cli/commands.py); `python tools/train_bbox_reg.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("bbox_reg"))
