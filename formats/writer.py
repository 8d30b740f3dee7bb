"""The one artifact writer: atomic, usual permissions, contained in its folder, and never over a file of another kind.

Every artifact the toolkit writes (ONNX models, plans and their manifests, specs, calibration sets, ranges and
caches, checkpoints, golden I/O, reports, figures) goes through ``write_artifact`` or ``artifact_path`` with the
``Kind`` it writes. Before the atomic replace (``formats.atomic``) the file already at the target is identified by
its content (``identify``: magic bytes, zip members, JSON keys — never the file name) and a file that is not of the
kind being written (a calibration cache where a timing cache goes, an image where a report goes, somebody's own
ONNX model without our metadata) is refused with one line naming it, unless the CLI was given ``--force``
(``set_force``). Replacing a file of the same kind needs no flag: re-running a command into its folder works.

The target's name must be a plain file name and, when ``folder`` is given, its parent — resolved, links
followed — must lie inside the resolved ``folder``. A FIFO or character device at the target (``/dev/null``, a
named pipe a user reads from) is written into, never replaced. A file the run reads (``declare_inputs``: its model,
its input video) is never an output, not even with ``--force``. stdlib only (the runtime ships alone to the device).

The force flag and the inputs are process state, not context variables: a sink may open its file in a worker
thread, which would not see a context variable set by ``main``.
"""

from __future__ import annotations

import enum
import json
import mmap
import os
import re
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from formats.atomic import atomic_path, is_stream_node
from formats.engine_manifest import PLAN_MAGICS
from formats.errors import RuntimeToolkitError

OUR_ONNX_MARK = b"edge_toolkit."  # every ONNX file we write carries edge_toolkit.* metadata_props
_CACHE_HEADER = re.compile(rb"^TRT-\d+-\w+\r?$")
_TEXT_LIMIT = 64 << 20  # larger files are not parsed (no artifact of ours that is text gets near it)
_FORCE = [False]  # one process-wide flag (see the module docstring); a list so tests can reset it in place
_INPUTS: dict[tuple[int, int], str] = {}  # (st_dev, st_ino) of each file this run reads → the path it was given


class ForeignFileError(RuntimeToolkitError):
    """The target holds a file of another kind; replacing it needs ``--force``."""


class ArtifactPathError(RuntimeToolkitError):
    """An output path that is not a plain name inside the chosen output folder."""


class Look(str, enum.Enum):
    """What a file on disk looks like, from its content."""

    ONNX = "an ONNX model written by this toolkit"
    ONNX_FOREIGN = "an ONNX model not written by this toolkit (no edge_toolkit metadata)"
    PLAN = "a TensorRT plan"
    TIMING_CACHE = "a TensorRT timing cache"
    CALIB_CACHE = "a TensorRT calibration cache"
    CHECKPOINT = "a PyTorch checkpoint"
    CALIB_SET = "a calibration set (.npz)"
    GOLDEN = "golden I/O (.npz)"
    NPZ = "a numpy .npz archive"
    ZIP = "a zip archive"
    GZIP = "a gzip file (a bundle archive?)"
    PNG = "a PNG image"
    JPEG = "a JPEG image"
    SPEC = "a model spec (JSON)"
    CALIB_MANIFEST = "a calibration-set manifest (JSON)"
    ENGINE_MANIFEST = "an engine manifest (JSON)"
    RANGES = "ONNX Runtime calibration ranges (JSON)"
    CALIB_RUN = "a calibration run file (JSON)"
    REPORT = "a JSON report"
    JSON_OTHER = "a JSON document that is not an object"
    TEXT = "a text file"
    BINARY = "a binary file of unknown kind"
    JSONL = "JSON Lines (per-frame results)"
    VIDEO = "a video file"
    EMPTY = "an empty file"
    FOLDER = "a folder"
    STREAM = "a FIFO or character device (written into, never replaced)"
    SPECIAL = "not a regular file (a socket or block device)"


class Kind(enum.Enum):
    """What a writer writes: a name for messages and the looks it may replace (besides an empty file)."""

    ONNX = ("an ONNX model", (Look.ONNX,))
    PLAN = ("a TensorRT plan", (Look.PLAN,))
    ENGINE_MANIFEST = ("an engine manifest", (Look.ENGINE_MANIFEST,))
    TIMING_CACHE = ("a TensorRT timing cache", (Look.TIMING_CACHE, Look.BINARY))  # BINARY: a version we don't know
    CALIB_CACHE = ("a TensorRT calibration cache", (Look.CALIB_CACHE,))
    CHECKPOINT = ("a PyTorch checkpoint", (Look.CHECKPOINT,))
    CALIB_SET = ("a calibration set", (Look.CALIB_SET,))
    GOLDEN = ("golden I/O", (Look.GOLDEN,))
    SPEC = ("a model spec", (Look.SPEC,))
    CALIB_MANIFEST = ("a calibration-set manifest", (Look.CALIB_MANIFEST,))
    RANGES = ("calibration ranges", (Look.RANGES,))
    CALIB_RUN = ("a calibration run file", (Look.CALIB_RUN,))
    REPORT = ("a JSON report", (Look.REPORT,))
    TEXT = ("a text report (Markdown/CSV)", (Look.TEXT,))
    PNG = ("a PNG figure", (Look.PNG,))
    JSONL = ("per-frame JSON Lines", (Look.JSONL,))
    VIDEO = ("an annotated video", (Look.VIDEO,))
    LOG = ("a log file", (Look.TEXT,))
    IMAGE = ("a rendered image", (Look.PNG, Look.JPEG))

    @property
    def what(self) -> str:
        return self.value[0]

    @property
    def replaces(self) -> tuple[Look, ...]:
        return self.value[1] + (Look.EMPTY,)


def set_force(force: bool) -> None:
    """Let this process's writers replace files of another kind (a CLI's ``--force``); called once by ``main``."""
    _FORCE[0] = bool(force)


def declare_inputs(*paths: str | os.PathLike | None) -> None:
    """Record files this run reads (None and missing paths are skipped): an output there is always refused.

    Files are compared by device and inode, so another spelling of the same file (``./m.onnx``, a link) is caught.
    """
    for path in paths:
        if path is None:
            continue
        try:
            info = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            _INPUTS[(info.st_dev, info.st_ino)] = str(path)


def clear_inputs() -> None:
    """Forget the declared inputs (a run in-process that follows another one; tests)."""
    _INPUTS.clear()


def _input_at(target: Path) -> str | None:
    try:
        info = os.stat(target)
    except OSError:
        return None
    return _INPUTS.get((info.st_dev, info.st_ino))


def add_force_argument(parser) -> None:
    """``--force`` for a CLI that writes artifacts (read by ``set_force(args.force)`` at the start of ``main``)."""
    parser.add_argument("--force", action="store_true", help="replace output files of another kind (else refused)")


def force_enabled() -> bool:
    return _FORCE[0]


def _zip_look(path: Path) -> Look:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return Look.ZIP
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return Look.CHECKPOINT  # torch.save's zip format
    if {"images.npy", "labels.npy"} <= set(names):
        return Look.CALIB_SET
    if {"inputs.npy", "outputs.npy"} <= set(names):
        return Look.GOLDEN
    return Look.NPZ if names and all(n.endswith(".npy") for n in names) else Look.ZIP


def _json_look(doc: object) -> Look:
    if not isinstance(doc, dict):
        return Look.JSON_OTHER
    fmt = str(doc.get("format", ""))
    if fmt.startswith("edge-toolkit-calibration-set/"):
        return Look.CALIB_MANIFEST
    if fmt.startswith("edge-toolkit-calibration-run/"):
        return Look.CALIB_RUN
    if doc.get("CLS") == "TensorsData":
        return Look.RANGES
    if "plan_sha256" in doc:
        return Look.ENGINE_MANIFEST
    if {"name", "labels", "height", "width"} <= set(doc):
        return Look.SPEC
    if {"source", "stream", "frame", "label"} <= set(doc):
        return Look.JSONL  # a one-frame JSON Lines file
    return Look.REPORT


def _text_look(data: bytes) -> Look:
    if b"\x00" in data:
        return Look.BINARY
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Look.BINARY
    if _CACHE_HEADER.match(data.split(b"\n", 1)[0]):
        return Look.CALIB_CACHE
    if text.lstrip()[:1] in ("{", "["):
        try:
            return _json_look(json.loads(text))
        except ValueError:
            pass
        if _json_lines(text):
            return Look.JSONL
    return Look.TEXT


def _json_lines(text: str) -> bool:
    """Every non-empty line a JSON object (what ``--jsonl`` writes)."""
    try:
        return all(isinstance(json.loads(line), dict) for line in text.splitlines() if line.strip())
    except ValueError:
        return False


def identify(path: str | os.PathLike) -> Look | None:
    """What the file at ``path`` looks like, or None when there is none. A FIFO or device is never opened."""
    path = Path(path)
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISDIR(info.st_mode):
        return Look.FOLDER
    if stat.S_ISFIFO(info.st_mode) or stat.S_ISCHR(info.st_mode):
        return Look.STREAM
    if not stat.S_ISREG(info.st_mode):
        return Look.SPECIAL
    if info.st_size == 0:
        return Look.EMPTY
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head[:4] in PLAN_MAGICS:
            return Look.PLAN
        if head[:4] == b"ptrt":  # what TensorRT 10 / TensorRT-RTX timing caches start with (seen here)
            return Look.TIMING_CACHE
        if head.startswith(b"PK\x03\x04"):
            return _zip_look(path)
        if head.startswith(b"\x1f\x8b"):
            return Look.GZIP
        if head.startswith(b"\x89PNG"):
            return Look.PNG
        if head.startswith(b"\xff\xd8\xff"):
            return Look.JPEG
        if head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3" or (head[:4], head[8:12]) == (b"RIFF", b"AVI "):
            return Look.VIDEO  # MP4/MOV, Matroska/WebM, AVI
        if head[:1] == b"\x08":  # protobuf field 1 (varint): an ONNX ModelProto starts with ir_version
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                # our metadata_props follow the graph (field 14 after 7): search from the end
                return Look.ONNX if mapped.rfind(OUR_ONNX_MARK) >= 0 else Look.ONNX_FOREIGN
        if info.st_size > _TEXT_LIMIT:
            return Look.BINARY
        fh.seek(0)
        return _text_look(fh.read())


def check_replace(target: str | os.PathLike, kind: Kind) -> None:
    """Raise ForeignFileError when ``target`` is an input of this run (always), or holds something ``kind`` must
    not replace (unless ``--force``). A FIFO or character device passes: it is written into, never replaced."""
    source = _input_at(Path(target))
    if source is not None:
        raise ForeignFileError(
            f"{target}: is an input of this run ({source}); writing {kind.what} there would destroy it; "
            "give another output path"
        )
    look = identify(target)
    if look is None or look is Look.STREAM or look in kind.replaces:
        return
    if look in (Look.FOLDER, Look.SPECIAL) or not _FORCE[0]:  # --force never replaces a folder or a socket
        fix = "give another path" if look in (Look.FOLDER, Look.SPECIAL) else "pass --force to replace it"
        raise ForeignFileError(f"{target}: already exists and looks like {look.value}, not {kind.what}; {fix}")


def check_output(target: str | os.PathLike, kind: Kind, folder: str | os.PathLike | None = None) -> Path:
    """Everything ``artifact_path`` checks, before any work: for a CLI to refuse a bad output path up front."""
    resolved = resolve_under(target, folder)
    check_replace(resolved, kind)
    return resolved


def resolve_under(target: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    """``target`` with a plain file name whose resolved parent lies inside resolved ``folder`` (default: its own
    parent). Raises ArtifactPathError naming the path."""
    target = Path(target)
    name = target.name
    if not name or name in (".", "..") or "\\" in name or "\x00" in name or any(ord(c) < 32 for c in name):
        raise ArtifactPathError(f"{target}: {name!r} is not a plain file name; use letters, digits, '.', '_', '-'")
    parent = target.parent.resolve()
    if folder is not None:
        root = Path(folder).resolve()
        if parent != root and root not in parent.parents:
            raise ArtifactPathError(f"{target}: resolves to {parent / name}, outside the output folder {root}")
    return parent / name


@contextmanager
def artifact_path(target: str | os.PathLike, kind: Kind, folder: str | os.PathLike | None = None) -> Iterator[Path]:
    """``formats.atomic.atomic_path`` for an artifact of ``kind``: contained, kind-checked, then atomic."""
    with atomic_path(check_output(target, kind, folder)) as tmp:
        yield tmp


def write_artifact(
    target: str | os.PathLike, data: bytes | str, kind: Kind, folder: str | os.PathLike | None = None
) -> Path:
    """Write ``data`` (text as UTF-8) to ``target`` as ``kind``; read back and compared before the rename."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if kind is Kind.REPORT:
        payload = _finite_json(payload)
    with artifact_path(target, kind, folder) as tmp:
        tmp.write_bytes(payload)
        if not is_stream_node(tmp) and tmp.read_bytes() != payload:
            raise OSError(f"{target}: the bytes read back differ from those written (disk full or failing?)")
    return Path(target)


def _finite_json(payload: bytes) -> bytes:
    """A JSON report with NaN/±Infinity (``json.dumps`` writes them; no JSON parser but Python's reads them) gets
    null instead: every JSON document we write is valid JSON."""
    if not any(token in payload for token in (b"NaN", b"Infinity")):
        return payload
    found = []
    try:
        doc = json.loads(payload, parse_constant=lambda constant: found.append(constant))
    except ValueError:
        return payload  # not JSON at all: the caller's business (a report is always JSON in practice)
    return payload if not found else (json.dumps(doc, indent=2) + "\n").encode("utf-8")


def write_figure(figure, target: str | os.PathLike, dpi: int = 110, folder: str | os.PathLike | None = None) -> Path:
    """Save a matplotlib figure as PNG through the writer, then close it (matplotlib imported lazily)."""
    import matplotlib.pyplot as plt

    with artifact_path(target, Kind.PNG, folder) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)
    return Path(target)
