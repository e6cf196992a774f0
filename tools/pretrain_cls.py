#!/usr/bin/env python
"""SPP classification pre-training: an experiment's stage, or any class-per-folder set.

Usage: python tools/pretrain_cls.py --config configs/demo_zf5.yaml
       python tools/pretrain_cls.py --data DATA --out runs/cls [--sizes 224 180]

The same as `spp-det pretrain ...` (spp_det/cli/commands.py); `python tools/pretrain_cls.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("pretrain"))
