"""``python -m fer_exp.compare``: the command lives in :mod:`fer_exp.cli.compare`."""

import sys

from fer_exp.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
