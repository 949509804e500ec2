"""Where rampsearch keeps data it derives once per machine and can rebuild at any time."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RAMPSEARCH_CACHE"


def cache_dir() -> Path:
    """``$RAMPSEARCH_CACHE``, else ``$XDG_CACHE_HOME/rampsearch``, else ``~/.cache/rampsearch``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rampsearch"
