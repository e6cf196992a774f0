#!/usr/bin/env python
"""Combine trained experiments: score every test window with each, unite (or average: --mode average),
per-class NMS 0.3.

Usage: python tools/combine_models.py --configs configs/demo.yaml configs/demo_lite1.yaml --out runs/combined

The same as `spp-det combine ...` (spp_det/cli/commands.py); `python tools/combine_models.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("combine"))
