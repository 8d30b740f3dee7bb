"""What a build is asked for: ``BuildOptions`` (the CLI's flags, typed) and the build error."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from formats.artifacts import Precision
from formats.engine_manifest import Flavour, HardwareCompatibility
from formats.errors import ModelLoadError

HARDWARE_LEVELS = tuple(level.value for level in HardwareCompatibility)  # the CLI's choices


class EngineBuildError(ModelLoadError):
    """The ONNX file cannot become an engine; the message says why and what to do."""


@dataclass(frozen=True)
class BuildOptions:
    min_batch: int = 1
    opt_batch: int = 8
    max_batch: int = 64
    workspace_mib: int | None = None
    timing_cache: Path | None = None
    dla_core: int | None = None
    gpu_fallback: bool = False
    version_compatible: bool = False
    hardware_compatibility: HardwareCompatibility = HardwareCompatibility.NONE
    calib_cache: Path | None = None
    flavour: Flavour | None = None  # force standard TensorRT or TensorRT-RTX
    tf32: bool = False  # FP32 plans leave TF32 off unless asked: the fp32 plan is the exactness reference

    def __post_init__(self) -> None:
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise EngineBuildError(
                f"batch profile must satisfy 1 ≤ min ≤ opt ≤ max, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if self.hardware_compatibility not in HARDWARE_LEVELS:
            raise EngineBuildError(
                f"--hardware-compatibility {self.hardware_compatibility!r}: choose from {list(HARDWARE_LEVELS)}"
            )
        if self.flavour is not None and self.flavour not in tuple(Flavour):
            raise EngineBuildError(f"--flavour {self.flavour!r}: choose from {[f.value for f in Flavour]}")
        # The CLI's strings (and a caller's) become the Enums here, the one boundary.
        object.__setattr__(self, "hardware_compatibility", HardwareCompatibility(self.hardware_compatibility))
        if self.flavour is not None:
            object.__setattr__(self, "flavour", Flavour(self.flavour))
        if self.workspace_mib is not None and self.workspace_mib < 1:
            raise EngineBuildError(f"--workspace {self.workspace_mib}: give the builder's workspace in MiB (≥ 1)")
        if self.dla_core is not None and self.dla_core < 0:
            raise EngineBuildError(f"--dla-core {self.dla_core}: DLA cores are numbered from 0")
        if self.gpu_fallback and self.dla_core is None:
            raise EngineBuildError("--gpu-fallback goes with --dla-core N (layers the DLA cannot run go to the GPU)")
        if self.dla_core is not None and not self.min_batch == self.opt_batch == self.max_batch:
            raise EngineBuildError(
                f"--dla-core {self.dla_core} with batch profile {self.min_batch}/{self.opt_batch}/{self.max_batch}: "
                "the DLA has no dynamic dimensions (min = opt = max, and every run uses that shape); pass one "
                f"batch size, e.g. --min-batch {self.opt_batch} --opt-batch {self.opt_batch} --max-batch "
                f"{self.opt_batch} (the runtime pads a smaller last chunk)"
            )

    def cli_args(self) -> list[str]:
        args = [
            "--min-batch",
            str(self.min_batch),
            "--opt-batch",
            str(self.opt_batch),
            "--max-batch",
            str(self.max_batch),
        ]
        if self.workspace_mib is not None:
            args += ["--workspace", str(self.workspace_mib)]
        if self.calib_cache:
            args += ["--calib-cache", str(self.calib_cache)]
        if self.version_compatible:
            args.append("--version-compatible")
        if self.hardware_compatibility is not HardwareCompatibility.NONE:
            args += ["--hardware-compatibility", self.hardware_compatibility.value]
        if self.dla_core is not None:
            args += ["--dla-core", str(self.dla_core)] + (["--gpu-fallback"] if self.gpu_fallback else [])
        if self.tf32:
            args.append("--tf32")
        return args

    def tf32_for(self, precision: str) -> bool:
        """TF32 stays on (TensorRT's default) for fp16/int8 plans, whose precision is lower anyway; an fp32
        plan gets it only with ``--tf32``."""
        return self.tf32 or precision != Precision.FP32

    def engine_flags(self, precision: str) -> dict:
        """The options that change the plan's contents: recorded in the manifest and compared by the cache."""
        return {
            "workspace_mib": self.workspace_mib,
            "dla_core": self.dla_core,
            "gpu_fallback": self.gpu_fallback,
            "version_compatible": self.version_compatible,
            "hardware_compatibility": self.hardware_compatibility,
            "tf32": self.tf32_for(precision),
        }
