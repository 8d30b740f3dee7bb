"""``python -m engine.bundle``: everything a device needs for one model, as a folder and a ``.tar.gz``.

``create --artifacts artifacts/asl_cnn [--model asl_cnn] --out bundles/`` (training machine) copies the
ONNX variants, the spec, the calibration set and TensorRT cache and the gate report, writes golden I/O
(calibration samples and their FP32 outputs from this machine), a README with the device commands,
``BUNDLE.json`` and ``SHA256SUMS``, then packs ``<model>.bundle.tar.gz``. On the device:
``unpack asl_cnn.bundle.tar.gz --out asl_cnn`` (safe extraction, then every checksum verified) and
``verify asl_cnn/``; ``python -m engine`` and ``python -m runtime.infer`` verify the files they use too.
Exit 0 ok, 2 a missing, altered or mixed-up file (one line naming it and the fix).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shutil
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from formats.artifacts import ONNX_SUFFIX, Artifacts, Precision
from formats.atomic import atomic_path, safe_child, write_bytes_atomic, write_text_atomic
from formats.bundle import BUNDLE_FORMAT, INDEX, SUMS, BundleError, unpack, verify
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary, examples, safe
from formats.errors import RuntimeToolkitError
from formats.files import sha256_file
from runtime import __version__ as toolkit_version

_logger = logging.getLogger(__name__)

# (the file among the model's artifacts, required, what it is)
CONTENTS: tuple[tuple[Callable[[Artifacts], Path], bool, str], ...] = (
    (lambda a: a.spec, True, "ModelSpec: preprocessing, labels"),
    (lambda a: a.onnx(Precision.FP32), True, "FP32 model"),
    (lambda a: a.onnx(Precision.FP16), False, "FP16 model (TensorRT, GPUs)"),
    (lambda a: a.onnx(Precision.INT8), False, "INT8 Q/DQ model (TensorRT)"),
    (lambda a: a.onnx(Precision.INT8_ORT), False, "INT8 model for ONNX Runtime on the CPU"),
    (lambda a: a.calibration_set, False, "calibration set (uint8 pixels, labels)"),
    (lambda a: a.calibration_manifest, False, "calibration set manifest (ids, sha256)"),
    (lambda a: a.calib_cache, False, "TensorRT calibration cache (implicit INT8, TensorRT ≤ 10)"),
    (lambda a: a.gate_json, False, "accuracy gate report of every variant"),
    (lambda a: a.holdout_sample, False, "labelled held-out sample (the gate's split) for `edge bench all`"),
    (lambda a: a.real_photos(Precision.FP32).json, False, "accuracy on labelled real photos (`edge evaluate`)"),
    (lambda a: a.real_photos(Precision.FP32).markdown, False, "the same, as a table"),
)


def _readme(here: Artifacts, names: list[str]) -> str:
    """``here``: the files as the device sees them after `unpack --out <model>`."""
    model = here.model
    variants = [n for n in names if n.endswith(ONNX_SUFFIX)]
    cpu_form = here.onnx(Precision.INT8_ORT).name  # ONNX Runtime's operators: TensorRT cannot build it
    builds = "\n".join(f"python -m engine --onnx {model}/{n}" for n in variants if n != cpu_form)
    plan, fp32 = here.plan(Precision.INT8), here.onnx(Precision.FP32)
    return f"""# {model}: deploy bundle

Made by edge-toolkit {toolkit_version}. On the device (`pip install .[gpu] onnx`, plus JetPack's TensorRT):

```bash
python -m engine.bundle unpack {here.bundle_archive.name} --out {model}   # safe extraction + every checksum
python -m runtime.doctor                                              # can this machine run engines?
{builds}
python -m runtime.infer --engine {plan} --self-test
python -m runtime.infer --engine {plan} photo.jpg
python -m benchmarks latency --engine {plan} --batch 1,8,64
```

Without TensorRT, ONNX Runtime runs the ONNX files directly:
`python -m runtime.infer --engine {fp32} photo.jpg`.
`sha256sum -c SHA256SUMS` checks the files without this toolkit.
{_real_photos_note(here, names)}"""


def _real_photos_note(here: Artifacts, names: list[str]) -> str:
    """What the model scored on labelled real photos, where the bundle carries that report, and how to re-run it."""
    report = here.real_photos(Precision.FP32)
    run = f"`edge evaluate --model {here.onnx(Precision.FP32)} PHOTOS/` scores your own labelled photos"
    if report.markdown.name not in names:
        return f"\nNo real-photo evaluation came with this bundle: {run}.\n"
    return (
        f"\nAccuracy on labelled real photos (not the test split; expect it to be lower): {report.markdown.name}. "
        f"{run}.\n"
    )


def _golden(staged: Artifacts) -> bytes | None:
    from engine.golden import golden_from_calibration

    pair = golden_from_calibration(staged.onnx(Precision.FP32))
    if pair is None:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(buffer, inputs=pair[0].astype(np.float32), outputs=pair[1].astype(np.float32))
    return buffer.getvalue()


def create(
    artifacts: Path, out: Path, model: str | None = None, log: Callable[[str], None] = _logger.info
) -> tuple[Path, Path]:
    """Write ``out/<model>/`` and ``out/<model>.bundle.tar.gz``; refuses to replace an existing bundle."""
    artifacts = Path(artifacts)
    model = model or artifacts.name
    folder = safe_child(out, model)  # refuses a path-like name before anything is named from it
    names = Artifacts(Path(out), model)
    archive = names.bundle_archive
    if folder.exists() or archive.exists():
        raise BundleError(
            f"{folder if folder.exists() else archive}: already exists; choose another --out or remove "
            "it (a bundle is never overwritten in place)"
        )
    here = Artifacts(artifacts, model)
    missing = [file(here).name for file, required, _ in CONTENTS if required and not file(here).is_file()]
    if missing:
        raise BundleError(
            f"{artifacts}: {', '.join(missing)} not found; export the model first "
            f"(`python -m export --checkpoint … --out {artifacts}`)"
        )
    made_out = not Path(out).exists()
    Path(out).mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model}.bundle-staging-", dir=out))  # ours alone: removed below
    try:
        files: dict[str, dict] = {}
        for file, _, what in CONTENTS:
            source = file(here)
            if source.is_file():
                shutil.copyfile(source, staging / source.name)
                files[source.name] = {"what": what}
            else:
                log(f"note: {source.name} not in {artifacts}; the bundle goes without it")
        staged = here.in_folder(staging)
        golden = _golden(staged)
        if golden is not None:
            write_bytes_atomic(staged.golden, golden)
            files[names.golden.name] = {"what": "golden I/O: calibration samples, preprocessed, and FP32 outputs"}
        write_text_atomic(staging / "README.md", _readme(here.in_folder(Path(model)), sorted(files)))
        files["README.md"] = {"what": "device commands"}
        for name, entry in files.items():
            entry["bytes"] = (staging / name).stat().st_size
        index = {
            "format": BUNDLE_FORMAT,
            "model": model,
            "toolkit_version": toolkit_version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": files,
        }
        write_text_atomic(staging / INDEX, json.dumps(index, indent=1) + "\n")
        names = sorted(list(files) + [INDEX])
        sums = "".join(f"{sha256_file(staging / n)}  {n}\n" for n in names)
        write_text_atomic(staging / SUMS, sums)
        verify(staging)  # what landed
        with atomic_path(archive) as tmp:
            with tarfile.open(tmp, "w:gz") as tar:
                for name in sorted(names + [SUMS]):
                    tar.add(staging / name, arcname=f"{model}/{name}", recursive=False)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if made_out and not any(Path(out).iterdir()):
            Path(out).rmdir()  # a failed create leaves no empty --out folder behind
    log(f"bundle {folder}/ and {archive} ({archive.stat().st_size / 1e6:.1f} MB): {len(names) + 1} files")
    return folder, archive


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "bundle",
        __doc__,
        [
            "edge bundle create --artifacts artifacts/asl_cnn --out bundles   # on the training machine",
            "edge bundle unpack asl_cnn.bundle.tar.gz --out asl_cnn            # on the device",
            "edge bundle verify asl_cnn                                        # every file against SHA256SUMS",
        ],
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="{create,unpack,verify}", help="what to do")
    c = sub.add_parser(
        "create",
        help="training machine: pack a model's artifacts for a device",
        epilog=examples("edge bundle create --artifacts artifacts/asl_cnn --out bundles"),
    )
    c.add_argument("--artifacts", type=Path, required=True, help="the model's artifact folder (artifacts/<model>)")
    c.add_argument("--model", default=None, help="model name (default: the folder's name)")
    c.add_argument(
        "--out", type=Path, default=Path("bundles"), help="where the folder and .tar.gz go (default bundles)"
    )
    u = sub.add_parser(
        "unpack",
        help="device: extract a .tar.gz safely and verify every file",
        epilog=examples("edge bundle unpack asl_cnn.bundle.tar.gz --out asl_cnn"),
    )
    u.add_argument("archive", type=Path, help="the <model>.bundle.tar.gz made by `edge bundle create`")
    u.add_argument("--out", type=Path, required=True, help="the new folder (must not exist)")
    v = sub.add_parser(
        "verify",
        help="device: check every file of an unpacked bundle against SHA256SUMS",
        epilog=examples("edge bundle verify asl_cnn"),
    )
    v.add_argument("folder", type=Path, help="an unpacked bundle folder")
    for s in (c, u, v):
        s.add_argument("--json", action="store_true", help="print the result (or the error) as JSON on stdout")
    return p


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr if args.json else sys.stdout)

    try:
        if args.command == "create":
            folder, archive = create(args.artifacts, args.out, args.model, say)
            result = {"folder": str(folder), "archive": str(archive)}
        elif args.command == "unpack":
            bundle = unpack(args.archive, args.out)
            result = {"folder": str(bundle.folder), "model": bundle.model, "files": len(bundle.sums)}
            say(safe(f"unpacked {args.archive} → {bundle.folder}/: {len(bundle.sums)} files verified"))
        else:
            bundle = verify(args.folder)
            result = {"folder": str(bundle.folder), "model": bundle.model, "files": len(bundle.sums)}
            say(safe(f"{bundle.folder}: {len(bundle.sums)} files match {SUMS}"))
    except (RuntimeToolkitError, OSError, ValueError) as exc:
        message = str(exc)
        if isinstance(exc, OSError) and exc.strerror:
            where = exc.filename2 or exc.filename  # a copy that failed names its destination, not its source
            message = f"{where}: {exc.strerror}" if where else f"{exc.strerror}; free space or check the --out folder"
        print(f"error: {safe(message)}", file=sys.stderr)
        if args.json:
            print(json.dumps({"ok": False, "error": message}))
        return EXIT_USER_ERROR
    if args.json:
        print(json.dumps({"ok": True, **result}))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
