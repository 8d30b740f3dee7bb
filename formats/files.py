"""Opening an input file defensively: regular files only, and a message that says what is really wrong.

``open(path)`` on a FIFO blocks until a writer appears (forever, for a user who typed the wrong path), a
device file reads without end, and ``PermissionError`` surfaces later as "corrupt" or "re-export it". Here
the file is opened non-blocking and checked with ``fstat`` on the opened descriptor (no race between a
check and the open), so only a regular file is ever read.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from formats.errors import RuntimeToolkitError


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def not_regular(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it exists and is not a regular file ("a FIFO (named pipe)"); None otherwise. For readers
    that hand a path to a library (FFmpeg) which would block on a FIFO or read a device for ever."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None  # missing or unreadable: the library's own error names it
    return None if stat.S_ISREG(mode) else _kind(mode)


def open_regular(path: str | os.PathLike, what: str, error: type[RuntimeToolkitError]) -> BinaryIO:
    """Open ``path`` for binary reading, or raise ``error`` naming it, ``what`` was expected and the fix.

    ``what`` is e.g. "an image file" or "a model file". Symbolic links are followed (their target must be a
    regular file).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{path}: no such file; check the path") from None
    except PermissionError:
        raise error(
            f"{path}: permission denied; make it readable (chmod +r) or run as a user who can read it"
        ) from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected {what}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{path}: too many levels of symbolic links; point it at {what}") from None
        raise error(f"{path}: cannot open it ({exc.strerror or exc}); expected {what}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: is {_kind(mode)}, expected {what}; give the path of a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | os.PathLike, what: str, error: type[RuntimeToolkitError], limit: int) -> bytes:
    """The whole of a small input (a report, an index): a regular file of at most ``limit`` bytes, or ``error``."""
    with open_regular(path, what, error) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise error(f"{path}: larger than {limit} bytes; expected {what}")
    return data


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks (plans and data sets are large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
