#!/usr/bin/env python
"""Stage: fine-tune fc6/fc7/fc8 on pooled windows.

Usage: python tools/finetune.py --config configs/demo.yaml [--set key=value ...] [--force]

The same as `spp-det finetune ...` (spp_det/cli/commands.py); `python tools/finetune.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("finetune"))
