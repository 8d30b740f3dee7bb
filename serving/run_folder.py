"""Where ``edge serve`` keeps the server log it was not given: a folder of its own under the temp dir, swept
when its owner was killed.

``RunFolder.create()`` makes ``$TMPDIR/edge-serve.XXXXXXXX/`` holding ``owner.json`` (this process's pid and its
start time, so a reused pid is not taken for the owner) and ``tritonserver.log``. A clean stop removes the folder;
a failure *keeps* it: the owner marker is removed and the error line names the log, so the next sweep leaves it
alone. Only a kill -9 (nothing of ours runs) leaves a folder whose marker names a dead process: ``sweep()``, run
by every ``edge serve``, removes exactly those folders, and in them only the two files we write. A folder without
our marker, of another user, with other files in it, or a ``--log-file`` the user chose is never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from formats.writer import Kind, write_artifact

PREFIX = "edge-serve."
OWNER = "owner.json"
LOG = "tritonserver.log"


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``); None when it does not exist or is a
    zombie (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])


def _owner_alive(owner: dict) -> bool:
    pid, started = owner.get("pid"), owner.get("started")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        return process_start(pid) == started
    try:  # no /proc: a live pid is taken as the owner (a reused pid only delays the sweep)
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def log(self) -> Path:
        return self.path / LOG

    @classmethod
    def create(cls, parent: Path | None = None) -> RunFolder:
        path = Path(tempfile.mkdtemp(prefix=PREFIX, dir=parent))
        owner = {"pid": os.getpid(), "started": process_start(os.getpid()), "by": "edge serve"}
        write_artifact(path / OWNER, json.dumps(owner) + "\n", Kind.REPORT)
        (path / LOG).touch()
        return cls(path)

    def remove(self) -> None:
        """The clean end: the log and the marker go, then the folder (only if nothing else is in it)."""
        for name in (LOG, OWNER):
            (self.path / name).unlink(missing_ok=True)
        try:
            self.path.rmdir()
        except OSError:
            pass  # something we did not write is in it: left alone

    def keep(self) -> Path:
        """A failure: the log stays for the user (the error line names it); without the owner marker no later
        sweep removes it. The log's path."""
        (self.path / OWNER).unlink(missing_ok=True)
        return self.log


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the run folders of ``edge serve`` processes that were killed before they could clean up; the
    folders removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        candidates = sorted(parent.glob(f"{PREFIX}*"))
    except OSError:
        return removed
    for folder in candidates:
        try:
            info = folder.lstat()
            if not folder.is_dir() or folder.is_symlink() or info.st_uid != os.getuid():
                continue
            if {p.name for p in folder.iterdir()} - {OWNER, LOG}:
                continue  # not only what we write: not ours to delete
            owner = json.loads((folder / OWNER).read_text())
        except (OSError, ValueError):
            continue  # no marker (kept on purpose, or not ours) or unreadable: left alone
        if isinstance(owner, dict) and owner.get("by") == "edge serve" and not _owner_alive(owner):
            RunFolder(folder).remove()
            removed.append(folder)
    return removed
