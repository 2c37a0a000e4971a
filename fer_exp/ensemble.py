"""``python -m fer_exp.ensemble``: the command lives in :mod:`fer_exp.cli.ensemble`."""

import sys

from fer_exp.cli.ensemble import main

if __name__ == "__main__":
    sys.exit(main())
