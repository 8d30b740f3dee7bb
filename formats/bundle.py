"""Deploy bundles on the device: verify a bundle's files against ``SHA256SUMS``, unpack a ``.tar.gz`` safely.

A bundle (written on the training machine by ``python -m engine.bundle create``) is one folder per model:
the ONNX variants, the spec, the calibration set and TensorRT cache, golden I/O, ``BUNDLE.json`` (what it
holds) and ``SHA256SUMS`` (``sha256sum -c`` format, so it can be checked without this toolkit too).
Plans built on the device land beside them and are not listed; a plan whose source ONNX is not this
bundle's is refused. Every refusal is one line naming the file and the fix. numpy-free, torch-free.

A bundle is a closed set: the files ``BUNDLE.json`` lists (plus itself), the lines of ``SHA256SUMS`` and — in an
archive — the members (plus ``SHA256SUMS``) must be the same names, and each member's size must be the one
``BUNDLE.json`` declares, so an archive is checked whole before a byte is extracted and can never write more than it
declares (capped at ``MAX_BUNDLE_BYTES``). Unpacking stages into a folder of its own (a unique name, removed on any
exit, SIGTERM included), never into or over a folder it did not create.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import tarfile
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from formats.artifacts import BUNDLE_SUFFIX, ONNX_SUFFIX, plan_manifest
from formats.engine_manifest import sha256_file
from formats.errors import RuntimeToolkitError
from formats.files import open_regular, read_bounded

BUNDLE_FORMAT = "edge-toolkit-bundle/1"
SUMS = "SHA256SUMS"
INDEX = "BUNDLE.json"
MAX_INDEX_BYTES = 1 << 20  # BUNDLE.json and SHA256SUMS: a few kB in practice
MAX_BUNDLE_BYTES = 16 << 30  # all files together; the course models' bundles are a few MB


class BundleError(RuntimeToolkitError):
    """A bundle that is damaged, incomplete or mixed up with another one."""


@dataclass(frozen=True)
class Bundle:
    folder: Path
    model: str
    sums: dict[str, str]  # file name → sha256
    bundle_id: str  # sha256 of SHA256SUMS: names this exact set of files

    @property
    def fix(self) -> str:
        return (
            f"unpack the bundle again into a new folder (`python -m engine.bundle unpack "
            f"{self.model}{BUNDLE_SUFFIX} --out NEW_FOLDER`) and do not mix files of different bundles"
        )


def parse_sums(text: str, source: str) -> dict[str, str]:
    sums = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        name = name.lstrip("*")
        if not sep or len(digest) != 64 or not name or "/" in name or name in (".", ".."):
            raise BundleError(f"{source}: line {number} is not '<sha256>  <file name>'; the checksum list is damaged")
        sums[name] = digest.lower()
    return sums


def _read_small(path: Path) -> bytes:
    """A bundle's index or checksum list: a regular file (never a FIFO that would hang) of bounded size."""
    return read_bounded(path, f"the bundle's {path.name}", BundleError, MAX_INDEX_BYTES)


def _parse_index(raw: bytes, source: str) -> dict:
    try:
        index = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise BundleError(f"{source}: unreadable bundle index ({exc}); unpack the bundle's .tar.gz again") from None
    if not isinstance(index, dict) or index.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{source}: not a bundle index (expected format {BUNDLE_FORMAT!r})")
    if not isinstance(index.get("files"), dict):
        raise BundleError(f"{source}: has no 'files' list; not a complete bundle index")
    return index


def _check_closed(index: dict, sums: dict[str, str], where: str) -> None:
    """BUNDLE.json's files (plus itself) and SHA256SUMS's lines must name the same set."""
    listed, summed = set(index["files"]) | {INDEX}, set(sums)
    if listed != summed:
        only_index, only_sums = sorted(listed - summed)[:3], sorted(summed - listed)[:3]
        detail = "; ".join(
            text
            for text in (
                f"{INDEX} lists {', '.join(only_index)} but {SUMS} does not" if only_index else "",
                f"{SUMS} lists {', '.join(only_sums)} but {INDEX} does not" if only_sums else "",
            )
            if text
        )
        raise BundleError(f"{where}: {detail}; the bundle was altered — unpack its .tar.gz again")


def open_bundle(folder: str | os.PathLike) -> Bundle:
    folder = Path(folder)
    for name in (SUMS, INDEX):
        if not (folder / name).exists() and not (folder / name).is_symlink():
            raise BundleError(f"{folder}: {name} missing; not a complete bundle — unpack the bundle's .tar.gz again")
    raw = _read_small(folder / SUMS)
    index = _parse_index(_read_small(folder / INDEX), str(folder / INDEX))
    sums = parse_sums(raw.decode("utf-8", "replace"), str(folder / SUMS))
    _check_closed(index, sums, str(folder))
    return Bundle(folder, str(index.get("model", "")), sums, hashlib.sha256(raw).hexdigest())


def verify_file(bundle: Bundle, name: str) -> None:
    path = bundle.folder / name
    if not path.exists():
        raise BundleError(f"{path}: missing from the bundle (listed in {SUMS}); {bundle.fix}")
    open_regular(path, "a bundle file", BundleError).close()  # a FIFO or device would hang the checksum
    if sha256_file(path) != bundle.sums[name]:
        raise BundleError(
            f"{path}: checksum does not match {SUMS} (altered, truncated or from another bundle); {bundle.fix}"
        )


def verify(folder: str | os.PathLike, names: list[str] | None = None) -> Bundle:
    """Check the listed files (all of them by default); raises BundleError on the first bad one."""
    bundle = open_bundle(folder)
    for name in bundle.sums if names is None else names:
        verify_file(bundle, name)
    return bundle


def _is_onnx(name: str) -> bool:
    return name.endswith(ONNX_SUFFIX)


def verify_beside(path: str | os.PathLike) -> Bundle | None:
    """When ``path`` sits in a bundle: verify it (if listed) and every small listed file (spec, calibration,
    golden — every one but the other ONNX variants, which the user is not loading). A plan must come from
    this bundle's ONNX (its manifest's source sha256). None outside a bundle."""
    path = Path(path)
    if not (path.parent / SUMS).is_file():
        return None
    bundle = open_bundle(path.parent)
    names = [n for n in bundle.sums if n == path.name or not _is_onnx(n)]
    for name in names:
        verify_file(bundle, name)
    manifest = plan_manifest(path)
    if path.name not in bundle.sums and manifest.is_file():  # a plan built here: from which ONNX?
        try:
            source = json.loads(manifest.read_text(encoding="utf-8")).get("source_sha256")
        except (OSError, ValueError, AttributeError):
            source = None  # preflight reports an unreadable manifest with its own message
        if source and source not in bundle.sums.values():
            onnx = next((n for n in bundle.sums if _is_onnx(n) and path.name.startswith(n[:-5])), None)
            raise BundleError(
                f"{path}: built from an ONNX file that is not in this bundle (another bundle or an "
                f"older export); rebuild it here: python -m engine --onnx {path.parent / (onnx or 'MODEL.onnx')} "
                f"--out {path} --force"
            )
    return bundle


def unpack(archive: str | os.PathLike, out: str | os.PathLike) -> Bundle:
    """Extract a bundle archive into ``out`` (which must not exist yet) and verify every file.

    The archive is checked whole first: plain files inside one top folder (no links, devices, absolute or ``..``
    paths), exactly the files its ``BUNDLE.json`` and ``SHA256SUMS`` list, each of its declared size, all together
    within ``MAX_BUNDLE_BYTES`` and the free space. Then it is extracted into a staging folder of its own beside
    ``out`` and renamed into place after it verifies, so a bad archive leaves nothing behind.
    """
    archive, out = Path(archive), Path(out)
    if out.exists():
        raise BundleError(f"{out}: already exists; unpack into a new folder (nothing is overwritten)")
    fh = open_regular(archive, "a bundle archive (.tar.gz)", BundleError)
    try:
        tar = tarfile.open(fileobj=fh, mode="r:*")
    except (OSError, tarfile.TarError) as exc:
        fh.close()
        raise BundleError(f"{archive}: not a readable bundle archive ({exc}); copy the .tar.gz again") from None
    with fh, tar:
        try:
            top, total = _check_members(archive, tar)
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise BundleError(f"{archive}: damaged archive ({exc}); copy the .tar.gz again") from None
        out.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(out.parent).free
        if total > free:
            raise BundleError(
                f"{archive}: needs {total / 1e6:.1f} MB but {out.parent} has {free / 1e6:.1f} MB free; free space "
                "or unpack elsewhere"
            )
        with _staging(out) as staging:
            try:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, filter="data")
                else:  # Python < 3.10.12: the members were checked above
                    tar.extractall(staging)
            except (OSError, tarfile.TarError, EOFError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise BundleError(f"{archive}: cannot unpack into {out.parent} ({reason})") from None
            bundle = verify(staging / top)
            os.replace(bundle.folder, out)
    return open_bundle(out)


def _check_members(archive: Path, tar: tarfile.TarFile) -> tuple[str, int]:
    """The archive's one top folder and its total size, after every member was checked against the lists."""
    members = tar.getmembers()
    tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
            raise BundleError(
                f"{archive}: member {member.name!r} is not a plain file inside the bundle folder; refusing the archive"
            )
    if len(tops) != 1:
        raise BundleError(f"{archive}: expected one bundle folder, found {sorted(tops)[:5]}")
    top = next(iter(tops))
    files = {}
    for member in members:
        parts = Path(member.name).parts
        if member.isdir() and len(parts) == 1:
            continue
        if member.isdir() or len(parts) != 2:
            raise BundleError(f"{archive}: member {member.name!r} is not a file directly in the bundle folder")
        if parts[1] in files:
            raise BundleError(f"{archive}: member {member.name!r} appears twice; refusing the archive")
        files[parts[1]] = member
    for name in (INDEX, SUMS):
        if name not in files:
            raise BundleError(f"{archive}: has no {top}/{name}; not a bundle archive")
        if files[name].size > MAX_INDEX_BYTES:
            raise BundleError(f"{archive}: {top}/{name} is larger than {MAX_INDEX_BYTES} bytes; not a bundle")
    index = _parse_index(tar.extractfile(files[INDEX]).read(), f"{archive}: {top}/{INDEX}")
    sums = parse_sums(tar.extractfile(files[SUMS]).read().decode("utf-8", "replace"), f"{archive}: {top}/{SUMS}")
    _check_closed(index, sums, str(archive))
    unlisted = sorted(set(files) - set(sums) - {SUMS})
    if unlisted:
        raise BundleError(f"{archive}: holds {', '.join(unlisted[:3])}, not listed in {SUMS}; refusing the archive")
    for name, entry in index["files"].items():
        member = files.get(name)
        if member is None:
            raise BundleError(f"{archive}: {top}/{name} is listed but missing; copy the .tar.gz again")
        declared = entry.get("bytes") if isinstance(entry, dict) else None
        if declared != member.size:
            raise BundleError(
                f"{archive}: {top}/{name} holds {member.size} bytes but {INDEX} declares {declared}; "
                "refusing the archive"
            )
    total = sum(member.size for member in files.values())
    if total > MAX_BUNDLE_BYTES:
        raise BundleError(f"{archive}: {total / 1e9:.1f} GB unpacked, over the {MAX_BUNDLE_BYTES >> 30} GiB bundle cap")
    return top, total


@contextlib.contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A staging folder of our own beside ``out`` (unique name), removed on any exit; SIGTERM is an exit too."""
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.unpacking-", dir=out.parent))
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that remove the staging folder
