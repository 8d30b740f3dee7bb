"""Where the data lives: ``--data-dir``, else ``$EDGE_DATA_DIR``, else ``./data``."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "EDGE_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env) if env else DEFAULT_DATA_DIR
