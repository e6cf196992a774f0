#!/usr/bin/env python
"""Run every stage of an experiment in order, skipping stages already complete for its config.

Usage: python tools/run_pipeline.py --config configs/demo.yaml [--stages proposals,conv5] [--force svm]
       torchrun --nproc-per-node 2 tools/run_pipeline.py --config configs/demo.yaml   (spp_det/distributed.py)

The same as `spp-det run ...` (spp_det/cli/commands.py); `python tools/run_pipeline.py --help` for the arguments.
"""
import sys

from spp_det.cli import tool_main

if __name__ == "__main__":
    sys.exit(tool_main("run"))
