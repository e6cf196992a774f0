#!/usr/bin/env python
"""Generate a VOC2007-layout dataset: the demo's textured shapes, or another family.

Usage: python tools/make_synthetic_voc.py --root data/generated/VOCdevkit/VOC2007 [--family shapes|silhouettes|photos]

The same as `spp-det generate ...` (spp_det/cli/commands.py); `python tools/make_synthetic_voc.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("generate"))
