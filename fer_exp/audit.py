"""``python -m fer_exp.audit``: the command lives in :mod:`fer_exp.cli.audit`."""

import sys

from fer_exp.cli.audit import main

if __name__ == "__main__":
    sys.exit(main())
