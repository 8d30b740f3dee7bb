"""Logging for the whole toolkit: library modules log to ``logging.getLogger(__name__)``; only a CLI configures.

``configure_cli_logging`` is called by the CLI error boundary (``formats.cli.error_boundary``): it gives each of
our top packages' loggers one handler that writes plain messages to the current ``sys.stderr`` (INFO by default;
``EDGE_LOG_LEVEL=DEBUG|INFO|WARNING|ERROR``, which ``edge -v`` and ``edge --quiet`` set) and stops them
propagating. The root logger is never touched, so an application that embeds the toolkit (and does not call a CLI's
``main``) keeps its own logging setup; third-party records go wherever that setup (or Python's last-resort handler)
sends them.

``quiet_logs`` silences chatty libraries for the length of a ``with`` block and restores them afterwards; it also
drops the records such a library logs through the module-level ``logging.warning`` (onnxruntime.quantization
does), which reach the root logger, with a filter removed on exit rather than by raising the root's level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator

# Our top packages, each with its own logger tree (the `edge` command included).
PACKAGES = ("runtime", "train", "export", "calibration", "engine", "benchmarks", "edge")
LEVEL_ENV = "EDGE_LOG_LEVEL"


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (the CLI boundary swaps it; pytest too)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property always follows sys.stderr
        pass


def configure_cli_logging(level: int | str | None = None) -> None:
    """INFO (or ``level``, or ``$EDGE_LOG_LEVEL``) and above from our packages to stderr as bare messages.

    Idempotent: a second call only updates the level, so nested CLIs (the demo runs ``runtime.infer``'s main)
    never print a line twice."""
    chosen = level if level is not None else os.environ.get(LEVEL_ENV, "INFO").upper()
    numeric = logging.getLevelName(chosen) if isinstance(chosen, str) else chosen
    if not isinstance(numeric, int):  # an unknown name in the environment: the default, not a crash
        numeric = logging.INFO
    for name in PACKAGES:
        logger = logging.getLogger(name)
        logger.setLevel(numeric)
        logger.propagate = False  # a root handler (basicConfig, often added by a library) would print it twice
        if not any(isinstance(h, _CurrentStderr) for h in logger.handlers):
            handler = _CurrentStderr()
            handler.setFormatter(logging.Formatter("%(message)s"))
            logger.addHandler(handler)


class _DropBelow(logging.Filter):
    """Drops records below ``level`` that were logged from inside one of ``packages`` (by source path)."""

    def __init__(self, level: int, packages: tuple[str, ...]) -> None:
        super().__init__()
        self.level = level
        self.parts = tuple(os.sep + p.replace(".", os.sep) + os.sep for p in packages)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level or not any(p in record.pathname for p in self.parts)


@contextlib.contextmanager
def quiet_logs(*names: str, level: int = logging.ERROR) -> Iterator[None]:
    """Inside the block, the loggers ``names`` (and modules of those packages logging through the root logger)
    emit only records at ``level`` or above. Levels and filters are restored on exit, even on error."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    root_filter = _DropBelow(level, names)
    root = logging.getLogger()
    root.addFilter(root_filter)
    try:
        yield
    finally:
        root.removeFilter(root_filter)
        for lg, old in zip(loggers, levels):
            lg.setLevel(old)
