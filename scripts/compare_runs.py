"""Same as ``python -m fer_exp.compare``: a comparison table and PNG of a sweep or experiment."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_exp.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
