"""``python -m fer_exp.predict``: the command lives in :mod:`fer_exp.cli.predict`."""

import sys

from fer_exp.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
