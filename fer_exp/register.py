"""``python -m fer_exp.register``: the command lives in :mod:`fer_exp.cli.register`."""

import sys

from fer_exp.cli.register import main

if __name__ == "__main__":
    sys.exit(main())
