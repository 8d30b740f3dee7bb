"""Deploy bundles on the device: verify a bundle's files against ``SHA256SUMS``, unpack a ``.tar.gz`` safely.

A bundle (written on the training machine by ``python -m engine.bundle create``) is one folder per model:
the ONNX variants, the spec, the calibration set and TensorRT cache, golden I/O, ``BUNDLE.json`` (what it
holds) and ``SHA256SUMS`` (``sha256sum -c`` format, so it can be checked without this toolkit too).
Plans built on the device land beside them and are not listed; a plan whose source ONNX is not this
bundle's is refused. Every refusal is one line naming the file and the fix. numpy-free, torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from formats.artifacts import BUNDLE_SUFFIX, ONNX_SUFFIX, plan_manifest
from formats.engine_manifest import sha256_file
from formats.errors import RuntimeToolkitError

BUNDLE_FORMAT = "edge-toolkit-bundle/1"
SUMS = "SHA256SUMS"
INDEX = "BUNDLE.json"


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


def open_bundle(folder: str | os.PathLike) -> Bundle:
    folder = Path(folder)
    try:
        raw = (folder / SUMS).read_bytes()
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(
            f"{folder}: {Path(exc.filename).name} missing; not a complete bundle — unpack the bundle's .tar.gz again"
        ) from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{folder}: unreadable bundle index ({exc}); unpack the bundle's .tar.gz again") from None
    if not isinstance(index, dict) or index.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{folder / INDEX}: not a bundle index (expected format {BUNDLE_FORMAT!r})")
    sums = parse_sums(raw.decode("utf-8", "replace"), str(folder / SUMS))
    return Bundle(folder, str(index.get("model", "")), sums, hashlib.sha256(raw).hexdigest())


def verify_file(bundle: Bundle, name: str) -> None:
    path = bundle.folder / name
    if not path.is_file():
        raise BundleError(f"{path}: missing from the bundle (listed in {SUMS}); {bundle.fix}")
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

    Only regular files inside one top folder are accepted (no links, devices, absolute or ``..`` paths);
    the archive is extracted into a temporary folder beside ``out`` and renamed into place after it verifies,
    so a bad archive leaves nothing behind.
    """
    archive, out = Path(archive), Path(out)
    if out.exists():
        raise BundleError(f"{out}: already exists; unpack into a new folder (nothing is overwritten)")
    try:
        tar = tarfile.open(archive, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise BundleError(f"{archive}: not a readable bundle archive ({exc}); copy the .tar.gz again") from None
    staging = out.with_name(f".{out.name}.unpacking")
    try:
        with tar:
            members = tar.getmembers()
            tops = {Path(m.name).parts[0] for m in members if Path(m.name).parts}
            for member in members:
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise BundleError(
                        f"{archive}: member {member.name!r} is not a plain file inside the bundle "
                        "folder; refusing the archive"
                    )
            if len(tops) != 1:
                raise BundleError(f"{archive}: expected one bundle folder, found {sorted(tops)[:5]}")
            staging.mkdir(parents=True)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(staging, filter="data")
            else:  # Python < 3.10.12: the members were checked above
                tar.extractall(staging)
        bundle = verify(staging / tops.pop())
        os.replace(bundle.folder, out)
        return open_bundle(out)
    finally:
        if staging.exists():
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
