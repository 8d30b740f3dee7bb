"""The table of ``edge`` subcommands: name → the module whose ``main(argv)`` runs it.

One row per ``python -m`` entry point. The summary shown by ``edge --help`` is read from the module's
docstring without importing the module (importing ``train`` needs torch, which a device does not have).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from formats.cli import summary

REPO_ROOT = Path(__file__).resolve().parent.parent


class Exit1(Enum):
    """What exit status 1 means for a command (see ``formats.cli.EXIT_CODES``)."""

    NEVER = "-"
    INPUTS = "some inputs bad"
    CHECKS = "a check missed"
    BOTH = "inputs bad, or a check missed"


@dataclass(frozen=True)
class Command:
    name: str
    module: str  # imported only when this command runs
    exit_1: Exit1
    needs: str  # the extra that provides its imports, named in the error when one is missing

    def summary(self) -> str:
        """The first sentence of the module docstring, read from the source file."""
        path = _source(self.module)
        if path is None:
            return f"(module {self.module} not found)"
        return summary(ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))))


def _source(module: str) -> Path | None:
    parts = module.split(".")
    for candidate in (REPO_ROOT.joinpath(*parts).with_suffix(".py"), REPO_ROOT.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    spec = importlib.util.find_spec(module)  # an unusual install layout: let the import system find it
    return Path(spec.origin) if spec and spec.origin else None


COMMANDS = (
    Command("data", "train.data.__main__", Exit1.NEVER, "train"),
    Command("train", "train.__main__", Exit1.NEVER, "train"),
    Command("export", "export.__main__", Exit1.NEVER, "train"),
    Command("hands", "export.hands", Exit1.NEVER, "hands"),
    Command("calibrate", "calibration.__main__", Exit1.CHECKS, "train"),
    Command("gate", "calibration.gate", Exit1.CHECKS, "train"),
    Command("robustness", "calibration.robustness", Exit1.NEVER, "train"),
    Command("evaluate", "calibration.real_photos", Exit1.INPUTS, "runtime"),
    Command("paper", "calibration.paper", Exit1.NEVER, "train"),
    Command("dream", "train.dream", Exit1.NEVER, "train"),
    Command("build", "engine.__main__", Exit1.NEVER, "runtime,tensorrt-rtx"),
    Command("bundle", "engine.bundle", Exit1.NEVER, "runtime"),
    Command("triton", "serving.repository", Exit1.NEVER, "runtime"),
    Command("infer", "runtime.infer", Exit1.BOTH, "runtime"),
    Command("doggy-door", "runtime.apps.doggy_door", Exit1.INPUTS, "runtime"),
    Command("capture", "runtime.apps.capture", Exit1.INPUTS, "runtime"),
    Command("doctor", "runtime.doctor", Exit1.CHECKS, "runtime"),
    Command("serve", "serving.serve", Exit1.NEVER, "serve"),
    Command("client", "serving.client", Exit1.INPUTS, "serve"),
    Command("bench", "benchmarks.__main__", Exit1.CHECKS, "dev"),
    Command("device-check", "benchmarks.device_check", Exit1.CHECKS, "dev"),
    Command("gpu-proof", "benchmarks.gpu_proof", Exit1.CHECKS, "dev"),
    Command("jpeg-draft", "benchmarks.jpeg_draft", Exit1.NEVER, "dev"),
    Command("demo", "pipeline.demo", Exit1.CHECKS, "dev"),
)
BY_NAME = {c.name: c for c in COMMANDS}
