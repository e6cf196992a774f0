#!/usr/bin/env python
"""Stage: detect on the test split and write comp4 files.

Usage: python tools/test_net.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det test ...` (spp_det/cli/commands.py); `python tools/test_net.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("test"))
