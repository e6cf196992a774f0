#!/usr/bin/env python
"""Side-by-side mAP (VOC) and COCO AP of finished experiments, one column per work directory.

Usage: python tools/compare_runs.py runs/demo runs/demo_5scale [--split test]

The same as `spp-det compare ...` (spp_det/cli/commands.py); `python tools/compare_runs.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("compare"))
