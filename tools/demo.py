#!/usr/bin/env python
"""Detect objects in a folder of images with a trained experiment and save them with boxes drawn.

Usage: python tools/demo.py --workdir runs/demo --images ../shared/data/voc2007-test-real13/JPEGImages --out runs/demo/demo_images

The same as `spp-det detect ...` (spp_det/cli/commands.py); `python tools/demo.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("detect"))
