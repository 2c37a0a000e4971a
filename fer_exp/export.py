"""``python -m fer_exp.export``: the command lives in :mod:`fer_exp.cli.export`."""

import sys

from fer_exp.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
