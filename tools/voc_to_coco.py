#!/usr/bin/env python
"""Write a VOC-format split as a COCO instances json (difficult objects become iscrowd = 1).

Usage: python tools/voc_to_coco.py --voc-root data/generated/VOCdevkit/VOC2007 --split test --classes a,b --out test.json

The same as `spp-det voc-to-coco ...` (spp_det/cli/commands.py); `python tools/voc_to_coco.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("voc-to-coco"))
