"""``python -m fer_exp.sync``: the command lives in :mod:`fer_exp.cli.sync`."""

import sys

from fer_exp.cli.sync import main

if __name__ == "__main__":
    sys.exit(main())
