#!/usr/bin/env python
"""Stage: selective search boxes of every split.

Usage: python tools/compute_proposals.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det proposals ...` (spp_det/cli/commands.py); `python tools/compute_proposals.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("proposals"))
