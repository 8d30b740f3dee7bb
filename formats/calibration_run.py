"""``<model>.calibration-run.json``: which calibration run derived each file of an artifact set.

The calibrated ONNX variants carry their run id in their metadata, but ``*.ranges.json`` and ``*.calib.cache`` have
no room for one (the TensorRT cache is a fixed text format), so two runs (different seed or method, or one killed
half-way) could leave a set whose files describe different runs without anything noticing. ``python -m calibration``
writes this file last, atomically: the run id (calibration-set sha256, method, seed, size) and the sha256 of every
file the run derived (calibration set and manifest, prepared ONNX, ranges, TensorRT cache, variants). The gate,
the engine builder (``--calib-cache`` included) and the loaders call ``check_run`` with the files they read and
refuse a file whose sha256 is not the one the run recorded, naming it. A folder without a run file (an older
toolkit, a bundle) is not checked here; the variants' metadata stamps still are. stdlib only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from formats.artifacts import Artifacts
from formats.errors import RuntimeToolkitError
from formats.files import sha256_file
from formats.writer import Kind, write_artifact

RUN_FORMAT = "edge-toolkit-calibration-run/1"


class CalibrationRunError(RuntimeToolkitError):
    """An artifact set whose files come from different calibration runs."""


@dataclass(frozen=True)
class RunId:
    calibration_sha256: str
    method: str
    seed: int
    size: int

    def label(self) -> str:
        return f"{self.calibration_sha256[:12]}…/{self.method}/seed {self.seed}/{self.size} samples"


def write_run(names: Artifacts, run: RunId, files: Iterable[Path]) -> Path:
    """Record ``run`` and the sha256 of ``files`` (all in ``names.folder``); call it after the last of them is
    written."""
    doc = {
        "format": RUN_FORMAT,
        "model": names.model,
        "run": asdict(run),
        "files": {Path(f).name: sha256_file(Path(f)) for f in sorted(files, key=lambda f: Path(f).name)},
    }
    text = json.dumps(doc, indent=1) + "\n"
    return write_artifact(names.calibration_run, text, Kind.CALIB_RUN, names.folder)


def load_run(names: Artifacts) -> tuple[RunId, dict[str, str]] | None:
    """(run id, {file name: sha256}) from the run file, or None when there is none."""
    path = names.calibration_run
    if not path.is_file():
        return None
    rerun = f"delete it and run `python -m calibration --model {names.model} --artifacts {names.folder}` again"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        run = RunId(**doc["run"])
        files = {str(k): str(v) for k, v in doc["files"].items()}
        if doc.get("format") != RUN_FORMAT:
            raise ValueError(f"format {doc.get('format')!r}, expected {RUN_FORMAT!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationRunError(f"{path}: unreadable calibration run file ({exc}); {rerun}") from None
    return run, files


def check_run(names: Artifacts, paths: Iterable[Path] | None = None) -> RunId | None:
    """Refuse any of ``paths`` (default: every file the run lists) that is not the file the run derived.

    Files the run does not list, and listed files that are missing (their loaders say so), are not checked.
    Returns the run id, or None without a run file."""
    loaded = load_run(names)
    if loaded is None:
        return None
    run, files = loaded
    checked = [Path(p).name for p in paths] if paths is not None else list(files)
    for name in checked:
        path = names.folder / name
        if name not in files or not path.is_file():
            continue
        actual = sha256_file(path)
        if actual != files[name]:
            raise CalibrationRunError(
                f"{path}: not the file calibration run {run.label()} derived ({names.calibration_run.name} "
                f"records sha256 {files[name][:12]}…, the file has {actual[:12]}…); the folder mixes two "
                f"calibration runs: run `python -m calibration --model {names.model} --artifacts {names.folder}` again"
            )
    return run
