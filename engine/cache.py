"""The engine cache: ``ensure_engine`` reuses a plan only when its manifest matches, and says why it rebuilds.

The key is everything that changes the plan: the source ONNX's sha256, the TensorRT flavour and version,
the GPU's compute capability, the precision, the optimization profile, the calibration hash and the
build flags (DLA core and GPU fallback, version and hardware compatibility, workspace, TF32). A plan that
fails preflight (truncated, foreign, missing manifest) is rebuilt, never reused silently.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from pathlib import Path

from engine.build import build_engine, check_outputs
from engine.golden import golden_from_calibration
from engine.onnx_info import OnnxInfo, default_plan_path, inspect_onnx
from engine.options import BuildOptions, EngineBuildError
from engine.trt_hooks import build_device
from formats.artifacts import Precision
from formats.engine_manifest import EngineManifest, EnginePreflightError, Profile, preflight
from formats.errors import ModelLoadError
from formats.files import sha256_file
from runtime.trt_import import import_tensorrt

_logger = logging.getLogger(__name__)


def _cache_key(info: OnnxInfo, options: BuildOptions, flavour: str, version: str, device: dict | None) -> dict:
    precision = Precision.INT8_IMPLICIT.value if options.calib_cache else info.precision
    return {
        "source_sha256": info.sha256,
        "flavour": flavour,
        "trt_version": version,
        "compute_capability": device and device.get("compute_capability"),
        "precision": precision,
        "profile": [options.min_batch, options.opt_batch, options.max_batch],
        "calibration": sha256_file(Path(options.calib_cache)) if options.calib_cache else info.calibration_sha256,
        **options.engine_flags(precision),
    }


def _manifest_key(manifest: EngineManifest, flag_names) -> dict:
    profile = manifest.profiles[0] if manifest.profiles else Profile("", (0,), (0,), (0,))
    return {
        "source_sha256": manifest.source_sha256,
        "flavour": manifest.flavour,
        "trt_version": manifest.trt_version,
        "compute_capability": manifest.device and manifest.device.compute_capability,
        "precision": manifest.precision,
        "profile": [profile.min[0], profile.opt[0], profile.max[0]],
        "calibration": manifest.calibration_sha256,
        **{name: getattr(manifest.build_flags, name, None) for name in flag_names},
    }


def _plain(key: dict) -> dict:
    """The key with its Enums as their JSON values: compared, and shown in the "stale: …" reason as before."""
    return {name: value.value if isinstance(value, enum.Enum) else value for name, value in key.items()}


def ensure_engine(
    onnx_path: Path,
    out: Path | None = None,
    options: BuildOptions = BuildOptions(),
    log: Callable[[str], None] = _logger.info,
) -> tuple[Path, EngineManifest, str]:
    """Reuse ``out`` when its manifest matches this source, TensorRT, GPU, precision, profile, calibration and
    build flags; otherwise rebuild, saying why. Returns (plan, manifest, "reused" | reason for building)."""
    info = inspect_onnx(onnx_path, options.calib_cache)
    out = Path(out) if out else default_plan_path(info.path)
    check_outputs(out)  # a foreign file at --out is refused before TensorRT is even imported
    try:
        trt, flavour = import_tensorrt(options.flavour)
    except ModelLoadError as exc:
        raise EngineBuildError(str(exc)) from None
    want = _cache_key(info, options, flavour, trt.__version__, build_device())
    reason = "no engine yet"
    if out.exists():
        try:
            manifest = preflight(out)
            have = _manifest_key(manifest, options.engine_flags(want["precision"]))
            want, have = _plain(want), _plain(have)
            stale = [k for k in want if want[k] != have.get(k)]
            if not stale:
                log(f"reusing {out} (manifest matches)")
                return out, manifest, "reused"
            reason = "stale: " + ", ".join(f"{k} {have.get(k)!r} → {want[k]!r}" for k in stale)
        except EnginePreflightError as exc:
            reason = f"unusable: {exc}"
        log(f"rebuilding {out}: {reason}")
    plan, manifest = build_engine(info.path, out, options, golden_from_calibration(info.path), log)
    return plan, manifest, reason
