"""The toolkit's vocabulary: precisions, ONNX metadata keys, plan suffixes and the name of every file of a model.

A model ``<m>`` keeps all its files in one folder (DESIGN.md); ``Artifacts(folder, m)`` names each of them, and
no other module formats an artifact file name or a precision string by hand (``tests/test_vocabulary.py``
greps the sources for that):

- ``spec`` ``<m>.json`` (the ModelSpec), ``checkpoint`` ``<m>.pt``, ``metrics`` ``<m>.metrics.json`` (train);
- ``onnx(p)`` ``<m>.<p>.onnx`` per precision, ``prep_onnx`` ``<m>.prep.onnx`` (the graph the ranges
  describe), ``uint8()`` the ``<m>_u8`` files (normalisation folded into the graph) (export, calibration);
- ``calibration_set`` / ``calibration_manifest`` ``<m>.calib.npz`` / ``.calib.json``, ``ranges``
  ``<m>.ranges.json``, ``calib_cache`` ``<m>.calib.cache`` (TensorRT's implicit-INT8 cache),
  ``exclusion`` ``<m>.exclusion.json`` (calibration);
- ``gate_json`` / ``gate_md`` / ``confusion_png`` (the accuracy gate), ``compare_json`` / ``compare_md`` /
  ``compare_png`` (benchmarks.compare), ``bench_json`` / ``bench_csv`` / ``bench_md`` / ``bench_png``
  (``edge bench all``, benchmarks.decide), ``holdout_sample`` ``<m>.holdout.npz`` (a few hundred labelled
  held-out images the gate writes and the bundle carries, so a device scores accuracy without the data set);
- ``real_photos(p)`` the ``RealPhotoFiles`` of one variant: ``<m>.<p>.real.json`` / ``.real.md`` /
  ``.real.png`` (calibration.real_photos; ``real_photo_files(model_file)`` for any model file);
- ``plan(p)`` ``<m>.<p>.plan``, with ``plan_manifest(plan)`` ``<plan>.json`` and ``plan_golden(plan)``
  ``<plan>.golden.npz`` (engine); ``golden`` ``<m>.golden.npz`` and ``bundle_archive`` ``<m>.bundle.tar.gz``
  (deploy bundle).

Torch-free and onnx-free: the runtime reads these names on the device.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from pathlib import Path

from formats.errors import ArtifactNameError


class Precision(str, enum.Enum):
    """A model variant's numeric precision; its value is the middle of the file name (``<m>.<value>.onnx``)."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"  # explicit Q/DQ for TensorRT (and any ONNX Runtime)
    INT8_ORT = "int8.ort"  # ONNX Runtime CPU operator form (QLinearConv…); TensorRT cannot parse it
    # A TensorRT plan built from the FP32 graph with a calibration cache (TensorRT ≤ 10's calibrator): it has
    # no ONNX file of its own, so it is not among ONNX_PRECISIONS.
    INT8_IMPLICIT = "int8-implicit"

    def __str__(self) -> str:  # "fp16", not "Precision.FP16", in messages and f-strings
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# The ONNX variants a calibrated model has, in the order reports list them.
ONNX_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8, Precision.INT8_ORT)
# The ONNX variants TensorRT builds plans from (the CPU form is ONNX Runtime's own operators).
TENSORRT_PRECISIONS = (Precision.FP32, Precision.FP16, Precision.INT8)

# Keys of the ONNX ``metadata_props`` the toolkit writes.
SPEC_KEY = "edge_toolkit.model_spec"  # the ModelSpec as JSON
PRECISION_KEY = "edge_toolkit.precision"  # a Precision value
CALIBRATION_SHA256_KEY = "edge_toolkit.calibration_sha256"  # the calibration set's content hash
CALIBRATION_METHOD_KEY = "edge_toolkit.calibration_method"  # minmax, entropy, percentile
INT8_EXCLUDED_KEY = "edge_toolkit.int8_excluded"  # comma-separated nodes left in FP32 in an INT8 file
FP16_KEPT_FP32_KEY = "edge_toolkit.fp16_kept_fp32"  # comma-separated nodes left in FP32 in the FP16 file
CONVERTED_FROM_KEY = "edge_toolkit.converted_from"  # a model converted from another format (export.hands)
ORT_DISABLED_OPTIMIZERS_KEY = "edge_toolkit.ort_disabled_optimizers"  # ONNX Runtime graph optimizers to turn off

ONNX_SUFFIX = ".onnx"
# TensorRT plan files: ``.plan`` is ours; ``.engine`` and ``.trt`` are what trtexec and other tools write.
PLAN_SUFFIXES = (".plan", ".engine", ".trt")
BUNDLE_SUFFIX = ".bundle.tar.gz"


def is_plan(path: str | os.PathLike) -> bool:
    """Whether the file is a TensorRT plan, by its suffix (any case)."""
    return Path(path).suffix.lower() in PLAN_SUFFIXES


def plan_manifest(plan: str | os.PathLike) -> Path:
    """``<plan>.json``: the manifest beside a plan (formats.engine_manifest)."""
    return Path(plan).with_name(Path(plan).name + ".json")


def plan_golden(plan: str | os.PathLike) -> Path:
    """``<plan>.golden.npz``: the self-test's golden inputs and outputs beside a plan."""
    return Path(plan).with_name(Path(plan).name + ".golden.npz")


def plan_beside(onnx_path: str | os.PathLike) -> Path:
    """The default plan for an ONNX file: ``<m>.int8.onnx`` → ``<m>.int8.plan`` (any other name: ``+ .plan``)."""
    name = Path(onnx_path).name
    stem = name[: -len(ONNX_SUFFIX)] if name.endswith(ONNX_SUFFIX) else name
    return Path(onnx_path).with_name(stem + PLAN_SUFFIXES[0])


@dataclass(frozen=True)
class RealPhotoFiles:
    """The real-photo evaluation's report beside a model file (``calibration.real_photos``)."""

    json: Path
    markdown: Path
    png: Path  # the confusion matrix


def real_photo_files(model_file: str | os.PathLike, folder: str | os.PathLike | None = None) -> RealPhotoFiles:
    """``a/mnist_cnn.fp32.onnx`` → ``a/mnist_cnn.fp32.real.json``, ``.real.md``, ``.real.png`` (in ``folder``
    instead of beside the model when given). Named after the model file: each variant has its own report."""
    model_file = Path(model_file)
    stem = model_file.name[: -len(model_file.suffix)] if model_file.suffix else model_file.name
    where = Path(folder) if folder is not None else model_file.parent
    return RealPhotoFiles(*(where / (stem + suffix) for suffix in (".real.json", ".real.md", ".real.png")))


def _check_model_name(model: str) -> None:
    if not isinstance(model, str) or not model or model in (".", "..") or any(c in model for c in "/\\\x00"):
        raise ArtifactNameError(
            f"model name {model!r} is not a plain file name; it becomes file names (<name>.json, <name>.fp32.onnx): "
            "use letters, digits, '.', '_' or '-', never a path"
        )


@dataclass(frozen=True)
class Artifacts:
    """Every file of model ``model`` in ``folder`` (see the module docstring). Names only; nothing is read."""

    folder: Path
    model: str

    def __post_init__(self) -> None:
        _check_model_name(self.model)
        object.__setattr__(self, "folder", Path(self.folder))

    @classmethod
    def of(cls, path: str | os.PathLike) -> Artifacts:
        """The artifacts beside a model file: ``a/mnist_cnn.int8.plan`` → ``Artifacts(a, "mnist_cnn")``."""
        path = Path(path)
        return cls(path.parent, path.name.split(".")[0])

    def _file(self, suffix: str) -> Path:
        return self.folder / (self.model + suffix)

    def in_folder(self, folder: str | os.PathLike) -> Artifacts:
        """The same model's files in another folder (a bundle's staging folder, the device's unpacked copy)."""
        return Artifacts(Path(folder), self.model)

    def uint8(self) -> Artifacts:
        """The files of the uint8-input export (normalisation folded into the graph): ``<m>_u8.*``."""
        return Artifacts(self.folder, self.model + "_u8")

    def onnx(self, precision: Precision | str) -> Path:
        precision = Precision(precision)
        if precision is Precision.INT8_IMPLICIT:
            raise ValueError("int8-implicit has no ONNX file: its plan is built from prep_onnx with calib_cache")
        return self._file(f".{precision.value}{ONNX_SUFFIX}")

    def plan(self, precision: Precision | str) -> Path:
        return self._file(f".{Precision(precision).value}{PLAN_SUFFIXES[0]}")

    @property
    def spec(self) -> Path:
        return self._file(".json")

    @property
    def checkpoint(self) -> Path:
        return self._file(".pt")

    @property
    def metrics(self) -> Path:
        return self._file(".metrics.json")

    @property
    def prep_onnx(self) -> Path:
        return self._file(".prep.onnx")

    @property
    def calibration_set(self) -> Path:
        return self._file(".calib.npz")

    @property
    def calibration_manifest(self) -> Path:
        return self._file(".calib.json")

    @property
    def ranges(self) -> Path:
        return self._file(".ranges.json")

    @property
    def calib_cache(self) -> Path:
        return self._file(".calib.cache")

    @property
    def calibration_run(self) -> Path:
        return self._file(".calibration-run.json")

    @property
    def exclusion(self) -> Path:
        return self._file(".exclusion.json")

    @property
    def gate_json(self) -> Path:
        return self._file(".gate.json")

    @property
    def gate_md(self) -> Path:
        return self._file(".gate.md")

    @property
    def confusion_png(self) -> Path:
        return self._file(".confusion.png")

    @property
    def compare_json(self) -> Path:
        return self._file(".compare.json")

    @property
    def compare_md(self) -> Path:
        return self._file(".compare.md")

    @property
    def compare_png(self) -> Path:
        return self._file(".compare.png")

    @property
    def bench_json(self) -> Path:
        return self._file(".bench.json")

    @property
    def bench_csv(self) -> Path:
        return self._file(".bench.csv")

    @property
    def bench_md(self) -> Path:
        return self._file(".bench.md")

    @property
    def bench_png(self) -> Path:
        return self._file(".bench.png")

    @property
    def holdout_sample(self) -> Path:
        return self._file(".holdout.npz")

    def real_photos(self, precision: Precision | str) -> RealPhotoFiles:
        """The real-photo evaluation report of one ONNX variant (``calibration.real_photos``)."""
        return real_photo_files(self.onnx(precision))

    @property
    def golden(self) -> Path:
        return self._file(".golden.npz")

    @property
    def bundle_archive(self) -> Path:
        return self._file(BUNDLE_SUFFIX)
