#!/usr/bin/env python
"""Proposal recall at IoU 0.5 and 0.7 and average best overlap against the number of proposals.

Usage: python tools/eval_proposals.py --config configs/demo.yaml [--split test] [--plot recall.png]

The same as `spp-det eval-proposals ...` (spp_det/cli/commands.py); `python tools/eval_proposals.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("eval-proposals"))
