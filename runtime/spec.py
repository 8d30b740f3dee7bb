"""The ModelSpec: the one contract between training, export, calibration and the runtime.

A frozen dataclass saved as JSON beside every artifact (``mnist_cnn.json`` next to
``mnist_cnn.fp32.onnx``), mirrored into the ONNX ``metadata_props`` under ``METADATA_KEY`` and
copied into engine manifests. Preprocessing is built from it and from nothing else, so nobody
re-types a mean or an input size in a second place.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formats.artifacts import SPEC_KEY, Artifacts, plan_manifest
from formats.errors import ArtifactNameError, SpecError
from formats.writer import Kind, write_artifact

# 2 added the deploy steps for camera photos (polarity, background, framing, frame_box). A version-1 spec is
# still read: it lacks those fields, and their defaults are exactly what version 1 did. ``stroke`` (issue 27) came
# later within version 2: a spec without it keeps the strokes as they are, and it is written only when it is on, so
# every spec written before it has the same bytes (a runtime from before it refuses it as an unknown field).
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
METADATA_KEY = SPEC_KEY
# Bounds on what a spec may ask for: one side of 8192 pixels is far beyond any classifier input, and a
# resize target of 10**6 would allocate terabytes before any check of ours ran.
MAX_SIDE = 8192
MAX_LABELS = 100_000
# The name becomes file names (<name>.json, <name>.fp32.onnx): a plain name, never a path.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class ColorMode(str, enum.Enum):
    GRAY = "L"
    RGB = "RGB"

    @property
    def channels(self) -> int:
        return 1 if self is ColorMode.GRAY else 3


class ResizePolicy(str, enum.Enum):
    """How an input of another size is brought to the model's height × width."""

    STRETCH = "stretch"  # resize straight to (height, width), aspect ratio not kept
    SHORTER_SIDE_CENTER_CROP = "shorter_side_center_crop"  # torchvision Resize(s) + CenterCrop


class Interpolation(str, enum.Enum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    LANCZOS = "lanczos"
    BOX = "box"


class Polarity(str, enum.Enum):
    """Which way round strokes reach the model. MNIST is light strokes on a dark background; paper is the opposite."""

    KEEP = "keep"  # as decoded
    INVERT = "invert"  # always 255 − pixel
    # Per image: light strokes on a dark background, inverting when the ink is darker than the background (the
    # border's median, against the darkest and brightest parts of a coarse copy of the image).
    LIGHT_ON_DARK = "light_on_dark"


class Background(str, enum.Enum):
    """What is done to the background after the polarity step (both keep MNIST's own images nearly unchanged)."""

    KEEP = "keep"
    # Illumination removed (the background, estimated by a morphological opening larger than a stroke and blurred,
    # is subtracted: shadows and gradients go), then the contrast stretched: the noise floor to 0, the ink to 255.
    FLATTEN = "flatten"


class Framing(str, enum.Enum):
    """How the subject is placed in the model's height × width."""

    RESIZE = "resize"  # the resize policy (stretch or shorter side + centre crop)
    # MNIST's own: the ink's bounding box scaled to fit a frame_box square, aspect kept, and placed so that its
    # centre of mass is at the centre (LeCun et al.). The resize policy is then not used.
    CENTER_OF_MASS = "center_of_mass"


class Stroke(str, enum.Enum):
    """What is done to the width of the strokes before the framing (``CENTER_OF_MASS`` only)."""

    KEEP = "keep"
    # MNIST's pen: a stroke much thinner (a fine pen on a large digit) or much thicker (a marker) than MNIST's,
    # measured against the ink's bounding box, is dilated or eroded so that it reaches MNIST's typical width once
    # the box is scaled into frame_box. Strokes within MNIST's own range are left alone.
    NORMALIZE = "normalize"


class OutputKind(str, enum.Enum):
    LOGITS = "logits"
    PROBABILITIES = "probabilities"


class Layout(str, enum.Enum):
    NCHW = "NCHW"


class InputKind(str, enum.Enum):
    """What the model's input tensor holds."""

    IMAGE = "image"  # pixels, through runtime.preprocess
    # 21 hand landmarks as runtime.hands.landmark_features makes them, fed as (N, 1, 1, width): the photo goes
    # through the hand stage (runtime.hands) first, and a photo without a hand gets "no hand", not a letter.
    HAND_LANDMARKS = "hand_landmarks"


class InputDType(str, enum.Enum):
    FLOAT32 = "float32"
    UINT8 = "uint8"  # the graph does scale/mean/std itself


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to turn an image into this model's input and its output into labels.

    Pixel values go through ``(pixel * scale - mean[c]) / std[c]`` per channel, in float32,
    after colour conversion, the deploy steps (``polarity``, ``background``, ``stroke``, grayscale only) and
    resizing or framing. ``resize_size`` is the shorter-side target for ``SHORTER_SIDE_CENTER_CROP``
    and is ignored for ``STRETCH``.
    """

    name: str
    labels: tuple[str, ...]
    height: int
    width: int
    color_mode: ColorMode = ColorMode.GRAY
    resize: ResizePolicy = ResizePolicy.STRETCH
    resize_size: int | None = None
    interpolation: Interpolation = Interpolation.BILINEAR
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    input_name: str = "input"
    input_dtype: InputDType = InputDType.FLOAT32
    layout: Layout = Layout.NCHW
    dynamic_batch: bool = True
    output_name: str = "logits"
    output_kind: OutputKind = OutputKind.LOGITS
    polarity: Polarity = Polarity.KEEP
    background: Background = Background.KEEP
    framing: Framing = Framing.RESIZE
    frame_box: int | None = None  # the side of the square the ink is fitted into (CENTER_OF_MASS only)
    stroke: Stroke = Stroke.KEEP
    schema_version: int = SCHEMA_VERSION
    input_kind: InputKind = InputKind.IMAGE

    def __post_init__(self) -> None:
        # Coerce JSON-ish values so ModelSpec(**json.load(...)) and literal construction agree.
        for name, enum_type in _ENUM_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, enum_type):
                try:
                    object.__setattr__(self, name, enum_type(value))
                except ValueError:
                    allowed = ", ".join(repr(m.value) for m in enum_type)
                    raise SpecError(f"ModelSpec field {name!r} is {value!r}; expected one of {allowed}") from None
        for name in ("labels", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        self._validate()

    @property
    def channels(self) -> int:
        return self.color_mode.channels

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def has_deploy_steps(self) -> bool:
        """Whether pixels go through more than colour conversion and the resize policy."""
        steps = (self.polarity, self.background, self.framing, self.stroke)
        return steps != (Polarity.KEEP, Background.KEEP, Framing.RESIZE, Stroke.KEEP)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one sample, without the batch axis."""
        return (self.channels, self.height, self.width)

    def _validate(self) -> None:
        problems = []
        if self.schema_version not in READABLE_SCHEMA_VERSIONS:
            problems.append(
                f"schema_version is {self.schema_version}, this runtime reads "
                f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}; re-export the model with this version of the toolkit"
            )
        if self.has_deploy_steps and self.color_mode is not ColorMode.GRAY:
            problems.append("polarity, background, framing and stroke apply to grayscale models only (color_mode L)")
        if self.stroke is Stroke.NORMALIZE and self.framing is not Framing.CENTER_OF_MASS:
            problems.append(
                "stroke 'normalize' measures strokes against the framed box: it needs framing 'center_of_mass'"
            )
        if self.framing is Framing.CENTER_OF_MASS:
            box = self.frame_box
            if not isinstance(box, int) or isinstance(box, bool) or not 0 < box <= min(self.height, self.width):
                problems.append(f"frame_box must be an integer from 1 to min(height, width), got {box!r}")
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name) or ".." in self.name:
            problems.append(
                f"name must be a plain file name (letters, digits, '.', '_', '-'; no '..', no path), got {self.name!r}"
            )
        if not self.labels or not all(isinstance(x, str) and x for x in self.labels):
            problems.append("labels must be a non-empty list of non-empty strings")
        elif len(self.labels) > MAX_LABELS:
            problems.append(f"labels has {len(self.labels)} entries; at most {MAX_LABELS}")
        elif len(set(self.labels)) != len(self.labels):
            problems.append("labels must be unique")
        for field in ("height", "width"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIDE:
                problems.append(f"{field} must be an integer from 1 to {MAX_SIDE}, got {value!r}")
        if self.resize is ResizePolicy.SHORTER_SIDE_CENTER_CROP:
            sides = [v for v in (self.height, self.width) if isinstance(v, int)]
            if (
                not isinstance(self.resize_size, int)
                or isinstance(self.resize_size, bool)
                or not max(sides, default=1) <= self.resize_size <= MAX_SIDE
            ):
                problems.append(
                    f"resize_size must be an integer from max(height, width) to {MAX_SIDE} for "
                    f"shorter_side_center_crop, got {self.resize_size!r}"
                )
        for field in ("mean", "std"):
            values = getattr(self, field)
            if len(values) != self.channels:
                problems.append(
                    f"{field} has {len(values)} values but color_mode {self.color_mode.value} "
                    f"has {self.channels} channel(s)"
                )
            if not all(math.isfinite(v) for v in values):
                problems.append(f"{field} must be finite numbers")
        if any(v == 0 for v in self.std):
            problems.append("std must not contain 0")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            problems.append(f"scale must be a positive finite number, got {self.scale!r}")
        if self.input_kind is InputKind.HAND_LANDMARKS and (self.height != 1 or self.color_mode is not ColorMode.GRAY):
            problems.append("a hand_landmarks model takes (N, 1, 1, features): height 1, color_mode L")
        if not self.input_name or not self.output_name:
            problems.append("input_name and output_name must be non-empty")
        if problems:
            raise SpecError(f"invalid ModelSpec {self.name!r}: " + "; ".join(problems))

    # --- JSON round trip -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if (f.name, value) in (("input_kind", InputKind.IMAGE), ("stroke", Stroke.KEEP)):
                continue  # such specs stay as every earlier runtime wrote and reads them
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str = "ModelSpec") -> ModelSpec:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object, found {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
        unknown = sorted(set(data) - names)
        missing = sorted(required - set(data))
        if unknown or missing:
            parts = []
            if missing:
                parts.append(f"missing field(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown field(s) {', '.join(unknown)}")
            raise SpecError(f"{source}: {'; '.join(parts)}; re-export the model to regenerate its spec")
        if data.get("schema_version") == 1:
            added = sorted(set(data) & {"polarity", "background", "framing", "frame_box", "stroke"})
            if added:
                raise SpecError(f"{source}: schema_version 1 has no field(s) {', '.join(added)}; write version 2")
            data = {**data, "schema_version": SCHEMA_VERSION}  # version 1 is version 2 with the deploy steps off
        try:
            return cls(**data)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise SpecError(f"{source}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, source: str = "ModelSpec") -> ModelSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"{source}: not valid JSON ({exc})") from None
        return cls.from_dict(data, source)

    def save(self, path: str | Path) -> Path:
        return write_artifact(path, self.to_json() + "\n", Kind.SPEC)

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SpecError(f"{path}: spec file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path}: cannot read spec ({exc})") from None
        return cls.from_json(text, source=str(path))


_ENUM_FIELDS = {
    "color_mode": ColorMode,
    "resize": ResizePolicy,
    "interpolation": Interpolation,
    "output_kind": OutputKind,
    "layout": Layout,
    "input_dtype": InputDType,
    "polarity": Polarity,
    "background": Background,
    "framing": Framing,
    "stroke": Stroke,
    "input_kind": InputKind,
}


def sidecar_candidates(model_path: str | Path) -> list[Path]:
    """Where a model's spec JSON may lie: ``<file>.json`` (engine manifests) then ``<name>.json``.

    ``mnist_cnn.fp32.onnx`` → ``mnist_cnn.fp32.onnx.json``, then ``mnist_cnn.json``.
    """
    try:
        return [plan_manifest(model_path), Artifacts.of(model_path).spec]
    except ArtifactNameError:  # ".onnx" alone: no model name before the first dot
        return [plan_manifest(model_path)]


def spec_from_sidecar(model_path: str | Path) -> ModelSpec | None:
    """The spec from a JSON file beside the model, or None when there is none.

    An engine manifest (``<file>.json``) carries the spec under ``"spec"``; a plain spec file is
    the spec itself.
    """
    for candidate in sidecar_candidates(model_path):
        if not candidate.is_file():
            continue
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SpecError(f"{candidate}: cannot read spec beside {model_path} ({exc})") from None
        if isinstance(data, dict) and "spec" in data and "name" not in data:
            data = data["spec"]
        return ModelSpec.from_dict(data, source=str(candidate))
    return None
