"""Which TensorRT this machine has: standard ``tensorrt`` (JetPack, NVIDIA's index) or ``tensorrt_rtx``.

Everything downstream picks code paths by capability (``hasattr``), never by version strings; the
version is only recorded (manifests) and compared for equality (preflight).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from formats.engine_manifest import Flavour
from formats.errors import ModelLoadError

FLAVOURS = tuple(flavour.value for flavour in Flavour)  # the order tried: standard TensorRT first
INSTALL_HINT = (
    "on a Jetson, JetPack ships `tensorrt` for the system Python (create the venv with "
    "--system-site-packages to see it); on a PC, `pip install tensorrt-rtx-cu13` gives TensorRT-RTX"
)


def import_tensorrt(flavour: Flavour | str | None = None) -> tuple[ModuleType, Flavour]:
    """(module, flavour): the requested flavour, else the first of ``FLAVOURS`` that imports."""
    names = (flavour,) if flavour else FLAVOURS
    errors = []
    for name in names:
        if name not in FLAVOURS:
            raise ModelLoadError(f"unknown TensorRT flavour {name!r}; choose from {list(FLAVOURS)}")
        try:
            return importlib.import_module(str(name)), Flavour(name)
        except ImportError as exc:  # also the OSError-as-ImportError of a broken CUDA install
            errors.append(f"{name}: {exc}")
    raise ModelLoadError(f"no TensorRT Python package imports ({'; '.join(errors)}); {INSTALL_HINT}")
