"""Where fer_exp keeps files between runs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$FER_EXP_CACHE``, else ``$XDG_CACHE_HOME/fer_exp``, else ``~/.cache/fer_exp``."""
    if os.environ.get("FER_EXP_CACHE"):
        return Path(os.environ["FER_EXP_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "fer_exp"
