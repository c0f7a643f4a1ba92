"""Where act keeps what it can rebuild (embeddings, compiled kernels): one folder per
user, ``$ACT_CACHE_DIR`` or ``~/.cache/act``, safe to delete at any time."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ACT_CACHE_DIR"


def cache_root() -> Path:
    """``$ACT_CACHE_DIR``, else (unset or empty, never the current folder)
    ``~/.cache/act``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "act")
