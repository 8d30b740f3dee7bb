"""Engine manifests and the preflight that runs before any plan is deserialized.

A plan ``<name>.<precision>.plan`` has a manifest ``<name>.<precision>.plan.json`` (DESIGN.md):
the plan's size and sha256, the source ONNX and its sha256, the TensorRT flavour and version that
built it, the GPU it was built on (none for an ahead-of-time TensorRT-RTX build), precision and
quantization path, optimization profiles, calibration hash, build flags, the ModelSpec and golden
inputs/outputs (``<plan>.golden.npz``). ``preflight`` checks all of that against the file and the
machine and refuses a mismatch with one line that ends with the exact rebuild command.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from formats.artifacts import plan_golden, plan_manifest
from formats.errors import ModelLoadError
from formats.files import sha256_file

MANIFEST_FORMAT = "edge-toolkit-engine/1"
# Serialized-engine magics: standard TensorRT writes "ftrt", TensorRT-RTX "vtrt" (first 4 bytes).
PLAN_MAGICS = {b"ftrt": "tensorrt", b"vtrt": "tensorrt_rtx"}
_FOREIGN = {
    b"PK\x03\x04": "a zip archive",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"{": "a JSON/text file",
    b"PK": "a zip archive",
    b"\x1f\x8b": "a gzip file",
}


class EnginePreflightError(ModelLoadError):
    """A plan that must not be deserialized here; the message names the problem and the fix."""


@dataclass
class EngineManifest:
    plan_sha256: str
    plan_bytes: int
    source_onnx: str
    source_sha256: str
    flavour: str  # "tensorrt" or "tensorrt_rtx"
    trt_version: str
    precision: str  # fp32 / fp16 / int8 / int8-implicit
    quantization_path: str  # e.g. "strongly-typed", "explicit-qdq+int8-flag", "implicit-calibrator"
    profiles: list[dict]  # [{"input": name, "min": [...], "opt": [...], "max": [...]}]
    build_flags: dict[str, Any]
    spec: dict
    device: dict | None = None  # {"name", "compute_capability"}; None: built ahead of time without a GPU
    jetson: dict | None = None  # {"model", "l4t"} when built on a Jetson
    calibration_sha256: str | None = None
    golden: dict | None = None  # {"file", "sha256", "count"}
    build_seconds: float | None = None
    rebuild_command: str = ""
    format: str = MANIFEST_FORMAT
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str) -> EngineManifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise EnginePreflightError(
                f"{source}: not an engine manifest (format "
                f"{data.get('format') if isinstance(data, dict) else None!r}, "
                f"expected {MANIFEST_FORMAT!r})"
            )
        known = set(cls.__dataclass_fields__)
        try:
            manifest = cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as exc:
            raise EnginePreflightError(f"{source}: engine manifest is missing fields ({exc})") from None
        problems = manifest._problems()
        if problems:
            raise EnginePreflightError(
                f"{source}: engine manifest has {'; '.join(problems)}; it was edited or damaged: rebuild the engine"
            )
        return manifest

    def _problems(self) -> list[str]:
        """Field types checked once at load, so later code never meets "1979548" where a number belongs."""
        problems = []
        for name in ("plan_sha256", "source_sha256"):
            value = getattr(self, name)
            if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
                problems.append(f"{name} {value!r} (expected 64 hex digits)")
        if not isinstance(self.plan_bytes, int) or isinstance(self.plan_bytes, bool) or self.plan_bytes < 0:
            problems.append(f"plan_bytes {self.plan_bytes!r} (expected a byte count)")
        for name, kind in (("profiles", list), ("build_flags", dict), ("spec", dict)):
            if not isinstance(getattr(self, name), kind):
                problems.append(f"{name} of type {type(getattr(self, name)).__name__} (expected {kind.__name__})")
        if self.golden is not None:
            golden = self.golden
            if (
                not isinstance(golden, dict)
                or not isinstance(golden.get("file"), str)
                or not isinstance(golden.get("sha256"), str)
            ):
                problems.append("a golden entry without its file name and sha256")
        return problems


def manifest_path(plan: Path) -> Path:
    return plan_manifest(plan)


def golden_path(plan: Path) -> Path:
    return plan_golden(plan)


def rebuild_command(onnx: str | Path, plan: str | Path, args: list[str] | None = None) -> str:
    return shlex.join(["python", "-m", "engine", "--onnx", str(onnx), "--out", str(plan), *(args or [])])


def identify_bytes(head: bytes) -> str | None:
    """The plan flavour for a serialized engine's first bytes, else None."""
    return PLAN_MAGICS.get(head[:4])


def describe_foreign(head: bytes) -> str:
    for magic, what in _FOREIGN.items():
        if head.startswith(magic):
            return what
    if head[:1] == b"\x08":  # protobuf field 1 varint: ONNX ModelProto starts with ir_version
        return "an ONNX model (build a plan from it with `python -m engine --onnx FILE`)"
    return "not a TensorRT plan"


def load_manifest(plan: Path) -> EngineManifest:
    path = manifest_path(plan)
    try:
        return EngineManifest.from_dict(json.loads(path.read_text()), str(path))
    except FileNotFoundError:
        raise EnginePreflightError(
            f"{plan}: manifest {path.name} not found beside the plan; an engine without "
            "its manifest cannot be checked — rebuild it with `python -m engine "
            "--onnx MODEL.onnx`"
        ) from None
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise EnginePreflightError(f"{path}: unreadable engine manifest ({exc}); rebuild the engine") from None


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(version))[:3])


# Across majors TensorRT runs version-compatible engines only for these (builder major, runtime major) pairs
# (TensorRT's support matrix); within a major any runtime at least as new as the builder.
_CROSS_MAJOR = {(8, 9), (8, 10), (10, 11)}


def version_compatible_with(built: str, running: str) -> bool:
    """Whether a plan built with ``--version-compatible`` by TensorRT ``built`` loads in TensorRT ``running``."""
    b, r = _version_tuple(built), _version_tuple(running)
    if not b or not r or b < (8, 6) or r < b:
        return False
    return b[0] == r[0] or (b[0], r[0]) in _CROSS_MAJOR


def on_jetson(root: Path = Path("/")) -> bool:
    return (root / "etc" / "nv_tegra_release").is_file()


def check_file(plan: str | Path) -> EngineManifest:
    """The plan file against its manifest: exists, is a TensorRT plan, size and sha256 match. Returns the manifest."""
    plan = Path(plan)
    if not plan.exists():
        raise EnginePreflightError(f"{plan}: engine file not found; check the --engine path")
    if plan.is_dir():
        raise EnginePreflightError(f"{plan}: is a folder, expected a .plan file")
    size = plan.stat().st_size
    if size == 0:
        raise EnginePreflightError(f"{plan}: empty file (0 bytes), probably an interrupted copy; copy or rebuild it")
    with open(plan, "rb") as fh:
        head = fh.read(16)
    kind = identify_bytes(head)
    if kind is None:
        raise EnginePreflightError(f"{plan}: {describe_foreign(head)}, not a serialized TensorRT engine")
    manifest = load_manifest(plan)
    fix = manifest.rebuild_command or rebuild_command(manifest.source_onnx, plan)
    if size != manifest.plan_bytes:
        raise EnginePreflightError(
            f"{plan}: {size} bytes but its manifest says {manifest.plan_bytes} (truncated or replaced); rebuild: {fix}"
        )
    if sha256_file(plan) != manifest.plan_sha256:
        raise EnginePreflightError(
            f"{plan}: contents do not match its manifest (sha256), the manifest belongs to "
            f"another build; rebuild: {fix}"
        )
    if kind != manifest.flavour:
        raise EnginePreflightError(f"{plan}: a {kind} plan but its manifest says {manifest.flavour}; rebuild: {fix}")
    return manifest


def check_machine(
    plan: str | Path,
    manifest: EngineManifest,
    flavour: str | None = None,
    trt_version: str | None = None,
    device: dict | None = None,
    jetson: bool | None = None,
) -> None:
    """The manifest against this machine: TensorRT flavour and version (with the version-compatibility rules),
    GPU compute capability (with the hardware-compatibility rules). None: not checked. Reads no file."""
    fix = manifest.rebuild_command or rebuild_command(manifest.source_onnx, plan)
    if flavour is not None and flavour != manifest.flavour:
        raise EnginePreflightError(
            f"{plan}: built by {manifest.flavour} {manifest.trt_version}, this machine runs "
            f"{flavour} {trt_version}; rebuild here: {fix}"
        )
    if trt_version is not None and trt_version != manifest.trt_version:
        if not manifest.build_flags.get("version_compatible"):
            raise EnginePreflightError(
                f"{plan}: built by {manifest.flavour} {manifest.trt_version}, this machine has "
                f"{trt_version} (engines are tied to the TensorRT that built them); rebuild "
                f"here: {fix}"
            )
        if manifest.flavour == "tensorrt_rtx" or not version_compatible_with(manifest.trt_version, trt_version):
            raise EnginePreflightError(
                f"{plan}: a version-compatible plan from {manifest.flavour} "
                f"{manifest.trt_version} cannot load in {trt_version} (TensorRT runs them only "
                "in the same or a later release of the same major, or 8→10 and 10→11); "
                f"rebuild here: {fix}"
            )
    portable = manifest.build_flags.get("hardware_compatibility", "none") != "none"
    if portable and jetson:
        raise EnginePreflightError(
            f"{plan}: built with hardware compatibility "
            f"({manifest.build_flags.get('hardware_compatibility')}), which JetPack does not "
            f"support; rebuild on this Jetson without it: {fix}"
        )
    if device is None:
        return
    here = device.get("compute_capability")
    if portable and here and _version_tuple(here) < (8, 0):
        raise EnginePreflightError(
            f"{plan}: built for Ampere or newer (hardware compatibility ampere+), this GPU "
            f"is {device.get('name')} (compute capability {here}); rebuild here: {fix}"
        )
    built = manifest.device.get("compute_capability") if manifest.device else None
    if built and here and built != here and not portable:
        raise EnginePreflightError(
            f"{plan}: built for {manifest.device.get('name')} (compute capability "
            f"{built}), this GPU is {device.get('name')} ({here}); rebuild here: {fix}"
        )


def preflight(
    plan: str | Path,
    flavour: str | None = None,
    trt_version: str | None = None,
    device: dict | None = None,
    jetson: bool | None = None,
) -> EngineManifest:
    """Check ``plan`` before deserializing it: the file (``check_file``), then this machine (``check_machine``);
    ``flavour``/``trt_version``/``device``/``jetson`` describe this machine (None: not checked). Returns the
    manifest. The plan is hashed once."""
    manifest = check_file(plan)
    check_machine(Path(plan), manifest, flavour, trt_version, device, jetson)
    return manifest
