"""Atomic file writes: a temp file in the target's folder, fsync, then ``os.replace``.

An interrupted write leaves the previous good file in place and no half-written one. A FIFO or character device
at the target (``/dev/null``, ``/dev/stdout``, a named pipe a user reads from) is written to in place, never
replaced: renaming over it as root would turn ``/dev/null`` into a regular file for the whole machine.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    The caller writes the whole file to the yielded path (with any library that takes a
    path). On an exception the temp file is removed and ``target`` is untouched.
    """
    target = Path(target)
    if is_stream_node(target):
        yield target  # a FIFO or character device: write into it, never rename over it
        return
    if target.is_dir():
        raise IsADirectoryError(21, "is a folder; give a file name inside it", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except OSError as exc:
        tmp_path.unlink(missing_ok=True)
        if exc.filename is None or str(exc.filename) == str(tmp_path):
            # A library writing the temp file (onnx.save, torch.save) rarely names it: name the target, so a
            # full disk reads "model.onnx: No space left on device", not an anonymous OSError.
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from None
        raise
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def is_stream_node(path: str | os.PathLike) -> bool:
    """True for an existing FIFO or character device: outputs that are written to, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    """Write, read back and compare, then rename into place."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
        if not is_stream_node(tmp) and tmp.read_bytes() != data:
            raise OSError(f"{target}: the bytes read back differ from those written (disk full or failing?)")
    return Path(target)


def write_figure_atomic(figure, target: str | os.PathLike, dpi: int = 110) -> Path:
    """Save a matplotlib figure as PNG atomically, then close it (matplotlib imported only here, lazily)."""
    import matplotlib.pyplot as plt

    with atomic_path(target) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)
    return Path(target)


def safe_child(folder: str | os.PathLike, name: str) -> Path:
    """``folder / name``, refusing names that would leave ``folder`` (``..``, absolute paths, separators)."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise ValueError(f"{name!r} is not a plain file name; use letters, digits, '.', '_' or '-'")
    path = Path(folder) / name
    if Path(os.path.abspath(path)).parent != Path(os.path.abspath(folder)):
        raise ValueError(f"{name!r} would write outside {folder}")
    return path


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))
