"""Errors of the training package: bad or missing data, bad options. CLIs print them without a traceback."""

from __future__ import annotations

from formats.errors import RuntimeToolkitError


class TrainError(RuntimeToolkitError):
    """Base class of user-facing training errors (a RuntimeToolkitError, so every CLI's boundary knows it)."""


class DataError(TrainError):
    """A data file is missing, short, corrupt or malformed; the message names it and the fix."""
