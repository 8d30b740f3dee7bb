"""The backend table: which backend opens a model file, with which typed options, behind which CLI flags.

One row per backend: the files it opens (by suffix) or the ONNX Runtime execution provider that selects it,
its options dataclass, how it is made (the backend module is imported only then), and the flags a CLI gets
for it. ``open_backend`` picks the row; every CLI that runs models calls ``add_backend_arguments`` and
``options_from_args``, so a backend's options reach it from every command (``--cuda-graphs`` for a plan).
Adding a backend is one row here and its tests; ``register`` refuses a second row of a name.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formats.artifacts import ONNX_SUFFIX, is_plan
from runtime.backends.base import Backend
from runtime.providers import CudaOptions, ProviderError, add_provider_arguments, cuda_options_from_args


@dataclass(frozen=True)
class OnnxRuntimeOptions:
    """``providers`` goes through ``runtime.providers.parse_providers`` (``cpu``, ``cuda:1``, full names; None:
    CPU); ``threads`` None lets ONNX Runtime choose; ``cuda``: IOBinding, CUDA graphs, TF32."""

    providers: str | Sequence[str] | None = None
    threads: int | None = None
    cuda: CudaOptions = field(default_factory=CudaOptions)


@dataclass(frozen=True)
class TensorRTOptions:
    """``cuda_graphs``: capture each batch size's enqueue once and replay it; ``flavour``: ``tensorrt`` or
    ``tensorrt_rtx`` (None: the plan's manifest says); ``time_stages``: CUDA events around H2D / compute / D2H;
    ``device_id``: the GPU the plan runs on."""

    cuda_graphs: bool = False
    flavour: str | None = None
    time_stages: bool = False
    device_id: int = 0


@dataclass(frozen=True)
class OpenVinoOptions:
    """ONNX Runtime's OpenVINO execution provider (the ``onnxruntime-openvino`` wheel, which replaces
    ``onnxruntime``): ``device_type`` is OpenVINO's device (``CPU``, ``GPU``, ``NPU``)."""

    device_type: str = "CPU"


class BackendOptions:
    """The options of any rows, one instance per options class; a row without one gets its defaults."""

    def __init__(self, *options: Any) -> None:
        self._by_type = {type(o): o for o in options}

    def get(self, cls: type) -> Any:
        return self._by_type.get(cls) or cls()

    def replace(self, *options: Any) -> BackendOptions:
        return BackendOptions(*self._by_type.values(), *options)


@dataclass(frozen=True)
class BackendRow:
    name: str
    options: type  # the options dataclass this backend takes
    make: Callable[[Path, BackendOptions], Backend]  # imports the backend module lazily
    opens: Callable[[Path], bool]  # the files this row runs
    provider: str | None = None  # an ONNX Runtime provider shorthand that selects this row (``--providers X``)
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    from_args: Callable[[argparse.Namespace], Any] | None = None  # parsed flags → an options instance

    def selected_by(self, options: BackendOptions) -> bool:
        if self.provider is None:
            return False
        providers = options.get(OnnxRuntimeOptions).providers
        items = providers.split(",") if isinstance(providers, str) else list(providers or ())
        return bool(items) and items[0].strip().partition(":")[0].lower() == self.provider


def _onnx(path: Path) -> bool:
    return path.suffix.lower() == ONNX_SUFFIX


def _make_onnxruntime(path: Path, options: BackendOptions) -> Backend:
    from runtime.backends.onnxruntime import OnnxRuntimeBackend

    o = options.get(OnnxRuntimeOptions)
    return OnnxRuntimeBackend(path, cuda=o.cuda, providers=o.providers, threads=o.threads)


def _make_tensorrt(path: Path, options: BackendOptions) -> Backend:
    from runtime.backends.tensorrt import TensorRTBackend

    o = options.get(TensorRTOptions)
    return TensorRTBackend(
        path, cuda_graphs=o.cuda_graphs, flavour=o.flavour, time_stages=o.time_stages, device_id=o.device_id
    )


OPENVINO_PROVIDER = "OpenVINOExecutionProvider"


def _make_openvino(path: Path, options: BackendOptions) -> Backend:
    from runtime.backends.onnxruntime import OnnxRuntimeBackend, SessionFromOnnx, available_providers

    have = available_providers()
    if OPENVINO_PROVIDER not in have:
        raise ProviderError(
            f"--providers openvino: this onnxruntime has no {OPENVINO_PROVIDER} (it has {', '.join(have)}); "
            "install the onnxruntime-openvino wheel in its own virtual environment (it replaces onnxruntime), "
            "or drop --providers openvino to run on the CPU"
        )
    ort, ov = options.get(OnnxRuntimeOptions), options.get(OpenVinoOptions)
    loader = SessionFromOnnx(
        path,
        providers=[OPENVINO_PROVIDER, "CPUExecutionProvider"],
        threads=ort.threads,
        provider_options={OPENVINO_PROVIDER: {"device_type": ov.device_type}},
    )
    return OnnxRuntimeBackend(loader)


def _add_tensorrt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="TensorRT plans: capture each batch size's enqueue as a CUDA graph once and replay it (as trtexec)",
    )


def _add_openvino_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--openvino-device",
        default="CPU",
        metavar="CPU|GPU|NPU",
        help="with --providers openvino: OpenVINO's device_type (default CPU)",
    )


_ROWS: dict[str, BackendRow] = {}
FALLBACK = "onnxruntime"


def register(row: BackendRow) -> BackendRow:
    if row.name in _ROWS:
        raise ValueError(f"backend {row.name!r} registered twice; backend names must be unique")
    _ROWS[row.name] = row
    return row


def unregister(name: str) -> None:
    del _ROWS[name]


@contextmanager
def registered(row: BackendRow) -> Iterator[BackendRow]:
    """A row for the length of a ``with`` block (tests add a throwaway backend this way)."""
    register(row)
    try:
        yield row
    finally:
        unregister(row.name)


def rows() -> tuple[BackendRow, ...]:
    return tuple(_ROWS.values())


register(
    BackendRow(
        "onnxruntime",
        OnnxRuntimeOptions,
        _make_onnxruntime,
        _onnx,
        add_arguments=add_provider_arguments,
        from_args=lambda args: OnnxRuntimeOptions(
            getattr(args, "providers", None), getattr(args, "threads", None), cuda_options_from_args(args)
        ),
    )
)
register(
    BackendRow(
        "tensorrt",
        TensorRTOptions,
        _make_tensorrt,
        is_plan,
        add_arguments=_add_tensorrt_arguments,
        from_args=lambda args: TensorRTOptions(cuda_graphs=bool(getattr(args, "cuda_graphs", False))),
    )
)
register(
    BackendRow(
        "openvino",
        OpenVinoOptions,
        _make_openvino,
        _onnx,
        provider="openvino",
        add_arguments=_add_openvino_arguments,
        from_args=lambda args: OpenVinoOptions(getattr(args, "openvino_device", None) or "CPU"),
    )
)


def select(path: Path, options: BackendOptions) -> BackendRow:
    """The row a provider in the options names, else the first row that opens the file, else ONNX Runtime (which
    says what it cannot read: a checkpoint, a file of another kind)."""
    for row in _ROWS.values():
        if row.selected_by(options) and row.opens(path):
            return row
    for row in _ROWS.values():
        if row.provider is None and row.opens(path):
            return row
    return _ROWS[FALLBACK]


def make_backend(path: Path, options: BackendOptions | None = None) -> Backend:
    options = options or BackendOptions()
    return select(Path(path), options).make(Path(path), options)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Every row's flags (the ONNX Runtime providers and CUDA options, ``--cuda-graphs``, ``--openvino-device``)."""
    for row in _ROWS.values():
        if row.add_arguments is not None:
            row.add_arguments(parser)


def options_from_args(args: argparse.Namespace) -> BackendOptions:
    """The parsed flags as every row's options; ValueError (with the flag) for a bad value."""
    return BackendOptions(*(row.from_args(args) for row in _ROWS.values() if row.from_args is not None))
