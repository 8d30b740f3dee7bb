"""One calibration run per artifact set: a lock while it runs, and a check that the files all came from one run.

Two ``python -m calibration`` runs of one model at once (or one killed half-way) used to leave the manifest of one
calibration set beside the variants of another, and the gate passed. Now:

- ``calibration_lock``: an ``flock`` on the artifact folder itself for the whole run; a second run there is refused
  at once, naming the folder. The kernel drops the lock when the process dies (``kill -9`` included), and no lock
  file is left behind to go stale or litter a folder where the run failed early.
- ``check_one_run``: the run id of a set is its calibration-set sha256 and method; every calibrated variant
  carries both in its ONNX metadata. The gate refuses variants whose id differs from the calibration manifest
  beside them (or from each other), naming the stale file; then every file the run derived (ranges and TensorRT
  cache included, which have no room for a stamp) against ``<model>.calibration-run.json``
  (``formats.calibration_run``).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calibration.variants import Precision
from formats.artifacts import CALIBRATION_METHOD_KEY, CALIBRATION_SHA256_KEY, ONNX_PRECISIONS, Artifacts
from formats.calibration_run import check_run
from train.errors import DataError

SHA_KEY, METHOD_KEY = CALIBRATION_SHA256_KEY, CALIBRATION_METHOD_KEY


@contextmanager
def calibration_lock(names: Artifacts) -> Iterator[Path]:
    """Hold an exclusive lock on ``artifacts`` for the block, or raise DataError if another run holds it.

    A folder that does not exist yet has nothing to protect: the block runs unlocked (and fails on the spec)."""
    folder, model = names.folder, names.model
    if not folder.is_dir():
        yield folder
        return
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"{folder}: another calibration is running in this folder; wait for it to finish "
                f"before calibrating {model} (two at once would mix their files)"
            ) from None
        yield folder
    finally:
        os.close(fd)  # releases the lock


def variant_stamps(names: Artifacts) -> dict[Path, tuple[str | None, str | None]]:
    """(calibration sha256, method) of every calibrated variant present, from its ONNX metadata."""
    import onnx

    stamps = {}
    for precision in ONNX_PRECISIONS:
        path = names.onnx(precision)
        if precision is Precision.FP32 or not path.is_file():
            continue
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        stamps[path] = (meta.get(SHA_KEY), meta.get(METHOD_KEY))
    return stamps


def check_one_run(names: Artifacts) -> None:
    """Refuse an artifact folder whose calibrated variants come from different calibration runs, or whose derived
    files (ranges, TensorRT cache, prepared ONNX, variants, set) are not the ones its run file records."""
    stamps = {p: s for p, s in variant_stamps(names).items() if s[0] is not None}
    if stamps:
        _check_stamps(names, stamps)
    check_run(names)  # then every derived file against the run file (ranges and cache included)


def _check_stamps(names: Artifacts, stamps: dict[Path, tuple[str | None, str | None]]) -> None:
    manifest_path = names.calibration_manifest
    rerun = f"run `python -m calibration --model {names.model} --artifacts {names.folder}` again"
    if manifest_path.is_file():
        try:
            current = json.loads(manifest_path.read_text(encoding="utf-8")).get("sha256")
        except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
            raise DataError(f"{manifest_path}: unreadable calibration manifest ({exc}); {rerun}") from None
        for path, (sha, _) in stamps.items():
            if sha != current:
                raise DataError(
                    f"{path}: calibrated on set {str(sha)[:12]}… but {manifest_path.name} describes set "
                    f"{str(current)[:12]}…; the folder mixes two calibration runs; {rerun}"
                )
    ids = {s for s in stamps.values()}
    if len(ids) > 1:
        listing = ", ".join(f"{p.name}: {s[:12]}…/{m}" for p, (s, m) in sorted(stamps.items()))
        raise DataError(f"{names.folder}: the calibrated variants come from different runs ({listing}); {rerun}")
