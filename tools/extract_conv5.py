#!/usr/bin/env python
"""Stage: conv5 maps of every image view at every scale, cached.

Usage: python tools/extract_conv5.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det conv5 ...` (spp_det/cli/commands.py); `python tools/extract_conv5.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("conv5"))
