#!/usr/bin/env python
"""Stage: fine-tune fc6/fc7/fc8 on pooled conv5 windows (resumable from its checkpoint).

Usage: python tools/finetune.py --config configs/voc07_zf5.yaml [--set key=value ...] [--force]
"""
import sys

from spp_det.cli import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("finetune", __doc__.splitlines()[0]))
