#!/usr/bin/env python
"""Stage: detect on the test split and write VOC comp4 result files per variant.

Usage: python tools/test_net.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("test", __doc__.splitlines()[0]))
