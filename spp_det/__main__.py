"""``python -m spp_det COMMAND ...`` = ``spp-det COMMAND ...`` (:mod:`spp_det.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
