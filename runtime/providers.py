"""ONNX Runtime execution providers: the ``--providers`` shorthand, its checks and the GPU options.

``parse_providers("cuda:1,cpu")`` accepts the shorthands ``cpu``, ``cuda`` and ``tensorrt`` (ONNX
Runtime's TensorRT execution provider, not our ``.plan`` backend), an optional ``:N`` device id on the
GPU ones, comma lists in priority order, and ONNX Runtime's own names (``CUDAExecutionProvider``).
Every place that takes providers goes through it, so a typo or a CPU-only ``onnxruntime`` is refused
with one line that lists what this install has and the fix.

``CudaOptions`` holds what the CUDA path adds (IOBinding, ONNX Runtime CUDA graphs, TF32); it becomes
the provider options ONNX Runtime reads (``enable_cuda_graph``, ``use_tf32``, ``device_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from formats.errors import ModelLoadError

SHORTHANDS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")
GPU_INSTALL_FIX = (
    "install the GPU build in place of the CPU one: `pip uninstall -y onnxruntime && "
    "pip install onnxruntime-gpu` (or `pip install .[gpu-ort]` in a venv without `onnxruntime`)"
)
# Each captured graph keeps its own device buffers; a stream of odd batch sizes must not capture without end.
MAX_GRAPHS = 8


class ProviderError(ModelLoadError):
    """A ``--providers`` entry is unknown, malformed or not available in this onnxruntime build."""


@dataclass(frozen=True)
class Provider:
    """One execution provider in priority order; ``device_id`` None means ONNX Runtime's default (0)."""

    name: str
    device_id: int | None = None

    @property
    def on_gpu(self) -> bool:
        return self.name in GPU_PROVIDERS

    def short(self) -> str:
        """The shorthand a user would type (``cuda:1``), for messages and reports."""
        short = {v: k for k, v in SHORTHANDS.items()}.get(self.name, self.name)
        return short if self.device_id is None else f"{short}:{self.device_id}"


@dataclass(frozen=True)
class CudaOptions:
    """How a session on the CUDA (or TensorRT) execution provider is run. None means default.

    - ``io_binding``: inputs copied once into device-resident OrtValues, outputs bound to device
      OrtValues allocated once per batch size and copied back once. None: on for a GPU provider,
      off on the CPU (where plain ``run`` already reads the numpy array in place).
    - ``cuda_graph``: ONNX Runtime captures one CUDA graph per batch size and replays it
      (``enable_cuda_graph``; IOBinding is then always on). ``graph_batches`` names the batch sizes
      that get one; None means the first ``MAX_GRAPHS`` sizes seen. Other sizes run plain IOBinding.
    - ``tf32``: the CUDA EP's ``use_tf32``. None leaves ONNX Runtime's default (TF32 on for FP32
      MatMul/Conv on Ampere and newer: max |Δlogit| 5e-3…8e-3 against the CPU on an H100).
    """

    io_binding: bool | None = None
    cuda_graph: bool = False
    graph_batches: tuple[int, ...] | None = None
    tf32: bool | None = None

    def wants_binding(self, provider: Provider) -> bool:
        if self.cuda_graph:
            return True
        return provider.on_gpu if self.io_binding is None else self.io_binding


def _split(spec: str | Sequence[str] | None) -> list[str]:
    if spec is None:
        return []
    items = spec.split(",") if isinstance(spec, str) else [p for part in spec for p in str(part).split(",")]
    return [item.strip() for item in items if item.strip()]


def _describe_install(available: Sequence[str]) -> str:
    short = {v: k for k, v in SHORTHANDS.items()}
    return ", ".join(f"{short[a]} ({a})" if a in short else a for a in available)


def onnxruntime_module():
    """``import onnxruntime``, or our one-line error naming the install command."""
    try:
        import onnxruntime
    except ImportError:
        raise ModelLoadError("onnxruntime is not installed; install it with `pip install .[runtime]`") from None
    return onnxruntime


def parse_providers(
    spec: str | Sequence[str] | None, available: Sequence[str] | None = None, known: Sequence[str] | None = None
) -> tuple[Provider, ...]:
    """``"cuda:1,cpu"`` → ``(Provider("CUDAExecutionProvider", 1), Provider("CPUExecutionProvider"))``.

    Empty or None means CPU only. ``available`` and ``known`` default to this onnxruntime's
    ``get_available_providers()`` / ``get_all_providers()`` (passed in by tests). Raises
    ProviderError, one line, for an unknown name, a bad device id, or a provider this build lacks.
    """
    items = _split(spec)
    if not items:
        return (Provider("CPUExecutionProvider"),)
    if available is None or known is None:
        ort = onnxruntime_module()
        available = list(ort.get_available_providers()) if available is None else available
        known = list(ort.get_all_providers()) if known is None else known
    by_lower = {name.lower(): name for name in known}
    chosen: list[Provider] = []
    for item in items:
        head, _, device = item.partition(":")
        name = SHORTHANDS.get(head.lower()) or by_lower.get(head.lower())
        if name is None:
            raise ProviderError(
                f"--providers {item!r}: unknown execution provider; shorthands are {', '.join(SHORTHANDS)} "
                f"(GPU ones take :N for the device), and this onnxruntime has {_describe_install(available)}; "
                f"for GPU inference {GPU_INSTALL_FIX}"
            )
        chosen.append(Provider(name, _device_id(item, name, device)))
    missing = [p for p in chosen if p.name not in available]
    if missing:
        first = missing[0]
        fix = GPU_INSTALL_FIX if first.on_gpu else "install the onnxruntime package that ships it"
        raise ProviderError(
            f"--providers {first.short()}: {first.name} is not available in this onnxruntime "
            f"build (it has {_describe_install(available)}); {fix}"
        )
    if len({p.name for p in chosen}) != len(chosen):
        raise ProviderError(f"--providers {','.join(items)!r}: a provider is named twice; name each once")
    return tuple(chosen)


def _device_id(item: str, name: str, device: str) -> int | None:
    if not device and ":" not in item:
        return None
    if name not in GPU_PROVIDERS:
        raise ProviderError(
            f"--providers {item!r}: only GPU providers ({', '.join(GPU_PROVIDERS)}) take a "
            f"device id; write {item.partition(':')[0]!r}"
        )
    if not device.isdigit():
        raise ProviderError(f"--providers {item!r}: the device id must be a GPU index like cuda:0 or cuda:1")
    return int(device)


def session_providers(providers: Sequence[Provider], cuda: CudaOptions | None = None) -> list[Any]:
    """The ``providers=`` list for ``InferenceSession``: names, or (name, options) where options apply."""
    cuda = cuda or CudaOptions()
    out: list[Any] = []
    for provider in providers:
        options: dict[str, str] = {}
        if provider.device_id is not None:
            options["device_id"] = str(provider.device_id)
        if provider.name == "CUDAExecutionProvider":
            if cuda.cuda_graph:
                options["enable_cuda_graph"] = "1"
            if cuda.tf32 is not None:
                options["use_tf32"] = "1" if cuda.tf32 else "0"
        elif provider.name == "TensorrtExecutionProvider" and cuda.cuda_graph:
            options["trt_cuda_graph_enable"] = "1"
        out.append((provider.name, options) if options else provider.name)
    return out


def parse_graph_batches(text: str) -> tuple[int, ...]:
    """``--cuda-graph-batches "1,8"`` → ``(1, 8)``; ValueError with the fix for anything else."""
    try:
        batches = tuple(sorted({int(b) for b in text.split(",") if b.strip()}))
    except ValueError:
        batches = ()
    if not batches or batches[0] < 1:
        raise ValueError(f"--cuda-graph-batches {text!r}: expected positive batch sizes like 1,8,64")
    if len(batches) > MAX_GRAPHS:
        raise ValueError(
            f"--cuda-graph-batches {text!r}: at most {MAX_GRAPHS} batch sizes (each graph keeps its own buffers)"
        )
    return batches


def add_provider_arguments(parser: Any) -> None:
    """``--providers``, ``--io-binding``, ``--cuda-graph`` and ``--tf32`` for an argparse parser."""
    import argparse

    parser.add_argument(
        "--providers",
        default=None,
        help="ONNX Runtime execution providers in priority order: cpu, cuda, cuda:1, tensorrt, "
        "or full names like CUDAExecutionProvider (default: cpu)",
    )
    parser.add_argument(
        "--io-binding",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="IOBinding with device-resident inputs/outputs (default: on for cuda/tensorrt)",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help="ONNX Runtime CUDA graphs (enable_cuda_graph), one per batch size: the first "
        f"{MAX_GRAPHS} sizes seen, or those of --cuda-graph-batches; others run plain IOBinding",
    )
    parser.add_argument(
        "--cuda-graph-batches",
        default=None,
        metavar="1,8,64",
        help="with --cuda-graph: only these batch sizes get a graph",
    )
    parser.add_argument(
        "--tf32",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="TF32 for FP32 on the CUDA EP (use_tf32; default: ONNX Runtime's, which is on)",
    )


def cuda_options_from_args(args: Any) -> CudaOptions:
    """The ``CudaOptions`` of parsed ``add_provider_arguments`` flags; ValueError for a bad --cuda-graph."""
    batches = getattr(args, "cuda_graph_batches", None)
    return CudaOptions(
        io_binding=getattr(args, "io_binding", None),
        cuda_graph=bool(getattr(args, "cuda_graph", False)) or batches is not None,
        graph_batches=parse_graph_batches(batches) if batches is not None else None,
        tf32=getattr(args, "tf32", None),
    )
