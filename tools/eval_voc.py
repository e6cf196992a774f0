#!/usr/bin/env python
"""Evaluate VOC comp4 result files with the official devkit rules; print per-class AP and mAP.

Usage: python tools/eval_voc.py --voc-root data/VOCdevkit/VOC2007 --split test --results DIR [--out ap.json]
       python tools/eval_voc.py --config configs/demo.yaml   (an experiment's eval stage)

The same as `spp-det eval ...` (spp_det/cli/commands.py); `python tools/eval_voc.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("eval"))
