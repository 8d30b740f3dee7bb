"""Engine manifests and the preflight that runs before any plan is deserialized.

A plan ``<name>.<precision>.plan`` has a manifest ``<name>.<precision>.plan.json`` (DESIGN.md):
the plan's size and sha256, the source ONNX and its sha256, the TensorRT flavour and version that
built it, the GPU it was built on (none for an ahead-of-time TensorRT-RTX build), precision and
quantization path, optimization profiles, calibration hash, build flags, the ModelSpec and golden
inputs/outputs (``<plan>.golden.npz``). ``preflight`` checks all of that against the file and the
machine and refuses a mismatch with one line that ends with the exact rebuild command.
"""

from __future__ import annotations

import enum
import json
import re
import shlex
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from formats.artifacts import Precision, plan_manifest
from formats.errors import ModelLoadError
from formats.files import sha256_file

MANIFEST_FORMAT = "edge-toolkit-engine/1"
# Serialized-engine magics: standard TensorRT writes "ftrt", TensorRT-RTX "vtrt" (first 4 bytes).
PLAN_MAGICS = {b"ftrt": "tensorrt", b"vtrt": "tensorrt_rtx"}  # Flavour values (the Enum is defined below)
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


class Flavour(str, enum.Enum):
    """Which TensorRT built (or runs) a plan; its value is the Python package's name."""

    TENSORRT = "tensorrt"
    TENSORRT_RTX = "tensorrt_rtx"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class HardwareCompatibility(str, enum.Enum):
    """``--hardware-compatibility``: NONE ties a plan to its GPU's compute capability; AMPERE_PLUS runs on any
    Ampere or newer GPU (not on JetPack)."""

    NONE = "none"
    AMPERE_PLUS = "ampere+"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class _Damaged(ValueError):
    """One field of a manifest that is not what the build writes (``EngineManifest.from_dict`` names them all)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(kind, value: Any, what: str):
    try:
        return kind(value)
    except ValueError:
        raise _Damaged(f"{what} {value!r} (expected one of {[member.value for member in kind]})") from None


@dataclass(frozen=True)
class Profile:
    """One optimization profile: the input's min/opt/max shapes (batch first)."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    @classmethod
    def from_dict(cls, data: Any) -> Profile:
        if not isinstance(data, dict) or not isinstance(data.get("input"), str):
            raise _Damaged(f"a profile {data!r} (expected {{input, min, opt, max}})")
        shapes = [data.get(name) for name in ("min", "opt", "max")]
        if not all(isinstance(shape, list) and shape and all(_is_int(d) for d in shape) for shape in shapes):
            raise _Damaged(f"a profile {data!r} with shapes that are not lists of integers")
        return cls(data["input"], *(tuple(shape) for shape in shapes))

    def to_dict(self) -> dict:
        return {"input": self.input, "min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


# build_flags keys written only when set, in the order the build adds them (see BuildFlags.to_dict).
_OPTIONAL_FLAGS = (Precision.FP16.value, Precision.INT8.value, "timing_cache")


@dataclass(frozen=True)
class BuildFlags:
    """The builder flags that change a plan's contents (``engine.build``; ``engine.cache`` compares them).
    A flag missing from an older manifest reads as its default; ``other`` keeps keys this version does not know."""

    strongly_typed: bool = False
    fp16: bool | None = None  # set: the FP16 builder flag (weakly typed builds)
    int8: bool | None = None  # set: the INT8 builder flag
    workspace_mib: int | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = HardwareCompatibility.NONE
    tf32: bool | None = None
    timing_cache: str | None = None
    other: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> BuildFlags:
        if not isinstance(data, dict):
            raise _Damaged(f"build_flags of type {type(data).__name__} (expected dict)")
        known = {f.name for f in fields(cls)} - {"other"}
        values = {key: value for key, value in data.items() if key in known}
        if "hardware_compatibility" in values:
            values["hardware_compatibility"] = _parse(
                HardwareCompatibility, values["hardware_compatibility"], "hardware_compatibility"
            )
        for name in ("workspace_mib", "dla_core"):
            if values.get(name) is not None and not _is_int(values[name]):
                raise _Damaged(f"build_flags.{name} {values[name]!r} (expected an integer or null)")
        return cls(**values, other={key: value for key, value in data.items() if key not in known})

    def to_dict(self) -> dict:
        """The JSON object, keys in the order the build writes them; fp16/int8/timing_cache only when set."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "other" or (f.name in _OPTIONAL_FLAGS and value is None):
                continue
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        return {**out, **self.other}


@dataclass(frozen=True)
class Device:
    """The GPU a plan was built on."""

    name: str | None
    compute_capability: str | None

    @classmethod
    def from_dict(cls, data: Any) -> Device | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise _Damaged(f"device {data!r} (expected {{name, compute_capability}} or null)")
        return cls(data.get("name"), data.get("compute_capability"))


@dataclass(frozen=True)
class Jetson:
    """The Jetson a plan was built on: its L4T release line and board model."""

    l4t: str | None
    model: str | None

    @classmethod
    def from_dict(cls, data: Any) -> Jetson | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise _Damaged(f"jetson {data!r} (expected {{l4t, model}} or null)")
        return cls(data.get("l4t"), data.get("model"))


@dataclass(frozen=True)
class Golden:
    """The self-test's golden inputs/outputs beside the plan (``<plan>.golden.npz``)."""

    file: str
    sha256: str
    count: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Golden | None:
        if data is None:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("file"), str)
            or not isinstance(data.get("sha256"), str)
        ):
            raise _Damaged("a golden entry without its file name and sha256")
        return cls(data["file"], data["sha256"], data.get("count"))


@dataclass
class EngineManifest:
    plan_sha256: str
    plan_bytes: int
    source_onnx: str
    source_sha256: str
    flavour: Flavour
    trt_version: str
    precision: Precision  # fp32 / fp16 / int8 / int8-implicit
    quantization_path: str  # e.g. "strongly-typed", "explicit-qdq+int8-flag", "implicit-calibrator"
    profiles: tuple[Profile, ...]
    build_flags: BuildFlags
    spec: dict  # the ModelSpec's JSON (runtime.spec reads it; formats sits below runtime)
    device: Device | None = None  # None: built ahead of time without a GPU
    jetson: Jetson | None = None  # set when built on a Jetson
    calibration_sha256: str | None = None
    golden: Golden | None = None
    build_seconds: float | None = None
    rebuild_command: str = ""
    format: str = MANIFEST_FORMAT
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON object on disk (``edge-toolkit-engine/1``): the same keys and values the dict-based manifest
        wrote, so bundles built before and after read alike."""
        return {
            "plan_sha256": self.plan_sha256,
            "plan_bytes": self.plan_bytes,
            "source_onnx": self.source_onnx,
            "source_sha256": self.source_sha256,
            "flavour": self.flavour.value,
            "trt_version": self.trt_version,
            "precision": self.precision.value,
            "quantization_path": self.quantization_path,
            "profiles": [profile.to_dict() for profile in self.profiles],
            "build_flags": self.build_flags.to_dict(),
            "spec": self.spec,
            "device": asdict(self.device) if self.device else None,
            "jetson": asdict(self.jetson) if self.jetson else None,
            "calibration_sha256": self.calibration_sha256,
            "golden": asdict(self.golden) if self.golden else None,
            "build_seconds": self.build_seconds,
            "rebuild_command": self.rebuild_command,
            "format": self.format,
            "extra": self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str) -> EngineManifest:
        if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
            raise EnginePreflightError(
                f"{source}: not an engine manifest (format "
                f"{data.get('format') if isinstance(data, dict) else None!r}, "
                f"expected {MANIFEST_FORMAT!r})"
            )
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise EnginePreflightError(f"{source}: engine manifest is missing fields ({', '.join(missing)})")
        problems = _problems(data)
        if problems:
            raise EnginePreflightError(
                f"{source}: engine manifest has {'; '.join(problems)}; it was edited or damaged: rebuild the engine"
            )
        known = {f.name for f in fields(cls)}
        return cls(**{**{key: value for key, value in data.items() if key in known}, **_nested(data)})


def _nested(data: dict) -> dict:
    """The typed values of the manifest's nested and enumerated fields (``_problems`` checked them)."""
    return {
        "flavour": Flavour(data["flavour"]),
        "precision": Precision(data["precision"]),
        "profiles": tuple(Profile.from_dict(profile) for profile in data["profiles"]),
        "build_flags": BuildFlags.from_dict(data["build_flags"]),
        "device": Device.from_dict(data.get("device")),
        "jetson": Jetson.from_dict(data.get("jetson")),
        "golden": Golden.from_dict(data.get("golden")),
    }


def _problems(data: dict) -> list[str]:
    """Field types checked once at load, so later code never meets "1979548" where a number belongs."""
    problems = []
    for name in ("plan_sha256", "source_sha256"):
        value = data[name]
        if not (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value)):
            problems.append(f"{name} {value!r} (expected 64 hex digits)")
    if not _is_int(data["plan_bytes"]) or data["plan_bytes"] < 0:
        problems.append(f"plan_bytes {data['plan_bytes']!r} (expected a byte count)")
    for name, kind in (("profiles", list), ("build_flags", dict), ("spec", dict)):
        if not isinstance(data[name], kind):
            problems.append(f"{name} of type {type(data[name]).__name__} (expected {kind.__name__})")
    parsers = [
        lambda: _parse(Flavour, data["flavour"], "flavour"),
        lambda: _parse(Precision, data["precision"], "precision"),
        lambda: Device.from_dict(data.get("device")),
        lambda: Jetson.from_dict(data.get("jetson")),
        lambda: Golden.from_dict(data.get("golden")),
    ]
    if not problems:  # the containers have their types: their entries next
        parsers += [
            lambda: [Profile.from_dict(p) for p in data["profiles"]],
            lambda: BuildFlags.from_dict(data["build_flags"]),
        ]
    for parse in parsers:
        try:
            parse()
        except _Damaged as exc:
            problems.append(str(exc))
    return problems


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
    path = plan_manifest(plan)
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
        if not manifest.build_flags.version_compatible:
            raise EnginePreflightError(
                f"{plan}: built by {manifest.flavour} {manifest.trt_version}, this machine has "
                f"{trt_version} (engines are tied to the TensorRT that built them); rebuild "
                f"here: {fix}"
            )
        if manifest.flavour is Flavour.TENSORRT_RTX or not version_compatible_with(manifest.trt_version, trt_version):
            raise EnginePreflightError(
                f"{plan}: a version-compatible plan from {manifest.flavour} "
                f"{manifest.trt_version} cannot load in {trt_version} (TensorRT runs them only "
                "in the same or a later release of the same major, or 8→10 and 10→11); "
                f"rebuild here: {fix}"
            )
    portable = manifest.build_flags.hardware_compatibility is not HardwareCompatibility.NONE
    if portable and jetson:
        raise EnginePreflightError(
            f"{plan}: built with hardware compatibility "
            f"({manifest.build_flags.hardware_compatibility}), which JetPack does not "
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
    built = manifest.device.compute_capability if manifest.device else None
    if built and here and built != here and not portable:
        raise EnginePreflightError(
            f"{plan}: built for {manifest.device.name} (compute capability "
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
