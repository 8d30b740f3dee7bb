"""The engine cache: ``ensure_engine`` reuses a plan only when its manifest matches, and says why it rebuilds.

The key is the source ONNX's sha256, the TensorRT flavour and version, the GPU's compute capability,
the precision, the optimization profile and the calibration hash. A plan that fails preflight
(truncated, foreign, missing manifest) is rebuilt, never reused silently.
"""

from __future__ import annotations

from pathlib import Path

from export.engine import BuildOptions, OnnxInfo, _device, build_engine, default_plan_path, inspect_onnx
from export.golden import golden_from_calibration
from runtime.engine_manifest import EngineManifest, EnginePreflightError, preflight, sha256_file
from runtime.trt_import import import_tensorrt



def _cache_key(info: OnnxInfo, options: BuildOptions, flavour: str, version: str, device: dict | None) -> dict:
    return {"source_sha256": info.sha256, "flavour": flavour, "trt_version": version,
            "compute_capability": device and device.get("compute_capability"), "precision": info.precision,
            "profile": [options.min_batch, options.opt_batch, options.max_batch],
            "calibration": sha256_file(Path(options.calib_cache)) if options.calib_cache else info.calibration_sha256}


def _manifest_key(manifest: EngineManifest) -> dict:
    profile = manifest.profiles[0] if manifest.profiles else {"min": [0], "opt": [0], "max": [0]}
    return {"source_sha256": manifest.source_sha256, "flavour": manifest.flavour, "trt_version": manifest.trt_version,
            "compute_capability": manifest.device and manifest.device.get("compute_capability"),
            "precision": "fp32" if manifest.precision == "int8-implicit" else manifest.precision,
            "profile": [profile["min"][0], profile["opt"][0], profile["max"][0]],
            "calibration": manifest.calibration_sha256}


def ensure_engine(onnx_path: Path, out: Path | None = None, options: BuildOptions = BuildOptions(),
                  log=print) -> tuple[Path, EngineManifest, str]:
    """Reuse ``out`` when its manifest matches this source, TensorRT, GPU, precision, profile and calibration;
    otherwise rebuild, saying why. Returns (plan, manifest, "reused" | reason for building)."""
    info = inspect_onnx(onnx_path)
    out = Path(out) if out else default_plan_path(info.path)
    trt, flavour = import_tensorrt(options.flavour)
    want = _cache_key(info, options, flavour, trt.__version__, _device(trt))
    reason = "no engine yet"
    if out.exists():
        try:
            manifest = preflight(out)
            have = _manifest_key(manifest)
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
