#!/usr/bin/env python
"""Per-image time of each detection part: SPP-net 1 scale, SPP-net 5 scales, R-CNN mode.

Usage: python tools/time_detection.py [--images DIR] [--backbone zf5] [--config configs/demo.yaml] [--rcnn-windows 500] [--out runs/timing]

The same as `spp-det time ...` (spp_det/cli/commands.py); `python tools/time_detection.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("time"))
