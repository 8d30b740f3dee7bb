"""A Triton Inference Server model repository for users who outgrow one device.

``python -m serving.repository --model artifacts/asl_cnn/asl_cnn.int8.plan [--repo triton_repo] [--name asl_cnn]
[--backend python|native] [--max-batch 64] [--preferred-batch 8,32] [--max-queue-delay-us 100] [--instances 1]``

By default (``--backend python``) writes a Python-backend model: ``<repo>/<name>/config.pbtxt``,
``1/model.py`` and the model file, served with our runtime; it takes encoded image bytes (``IMAGE``) or
preprocessed tensors and returns probabilities and top-k labels (see ``serving.triton_model``), and runs on
any Triton, including ``edge serve`` (``python -m serving.serve``). ``--backend native`` instead writes
``1/model.plan`` (TensorRT, platform ``tensorrt_plan``) or ``model.onnx`` (ONNX Runtime,
``onnxruntime_onnx``) for Triton's own backends (NVIDIA's containers, JetPack), with dynamic batching and
the input/output names, types and shapes from the ModelSpec. A plan's ``max_batch_size`` is capped by its
optimization profile (read from the manifest). The ModelSpec goes beside the config
(``spec.json``) so clients preprocess exactly as the runtime does. The folder is assembled in a
temporary directory and renamed into place: an interrupted export leaves no half repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from formats.artifacts import ONNX_SUFFIX, is_plan, plan_manifest
from formats.cli import (
    EXIT_OK,
    EXIT_USER_ERROR,
    command_parser,
    error_boundary,
    non_negative_int,
    positive_int,
)
from formats.engine_manifest import Flavour, load_manifest
from formats.errors import RuntimeToolkitError
from formats.writer import ForeignFileError, force_enabled, set_force
from runtime.spec import ModelSpec, spec_from_sidecar

_DTYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}


class TritonExportError(RuntimeToolkitError):
    pass


class ServingBackend(str, enum.Enum):
    NATIVE = "native"  # Triton's own onnxruntime / tensorrt backend, by the model file's suffix
    PYTHON = "python"  # Triton's Python backend running our runtime (serving.triton_model)


# model.py of a Python-backend model: the serving code lives in the runtime it calls. It imports
# triton_python_backend_utils first because the stub also imports model.py on its own (to auto-complete
# the config): under `python -m serving.serve` that import is what puts the environment on sys.path.
PYTHON_MODEL = '''"""Triton Python-backend entry point written by `python -m serving.repository --backend python`.

It serves this folder's model with the edge-toolkit runtime, which the backend stub must be able to
import (`python -m serving.serve` sees to it; in another Triton, `pip install edge-toolkit[runtime]`).
"""

import triton_python_backend_utils  # noqa: F401  (first: under serving.serve it sets sys.path up)

from serving.triton_model import TritonPythonModel  # noqa: F401
'''


@dataclass(frozen=True)
class TritonOptions:
    max_batch: int = 64
    preferred_batches: tuple[int, ...] = (8, 32)
    max_queue_delay_us: int = 100
    instances: int = 1
    top_k: int = 5  # Python backend: labels returned per image
    gpu: bool | None = None  # instance kind; None: GPU for a plan, CPU for ONNX
    threads: int | None = None  # Python backend: ONNX Runtime intra-op threads (None: its choice)


def _spec_for(model: Path) -> ModelSpec:
    spec = spec_from_sidecar(model)
    if spec is None and model.suffix == ONNX_SUFFIX:
        import onnx

        from runtime.spec import METADATA_KEY

        meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
        if METADATA_KEY in meta:
            spec = ModelSpec.from_json(meta[METADATA_KEY], source=str(model))
    if spec is None:
        raise TritonExportError(f"{model}: no ModelSpec beside it or inside it; export it with `python -m export`")
    return spec


def check_model(model: Path, spec: ModelSpec) -> ModelSpec:
    """Refuse a spec that does not describe the model (labels vs classes, NCHW vs NHWC, names, dtype) before a
    config is written from it: Triton would load the repository and answer with the wrong shapes. An ONNX file
    is opened with ONNX Runtime and checked like the runtime does; a plan is checked against the spec its
    manifest recorded at build time (a plan cannot be opened without a GPU)."""
    if model.suffix == ONNX_SUFFIX:
        from runtime.backends.onnxruntime import OnnxRuntimeBackend
        from runtime.model import check_spec_matches

        with OnnxRuntimeBackend(model) as backend:
            check_spec_matches(spec, backend, str(model))
        return spec
    built = load_manifest(model).spec
    if built and ModelSpec.from_json(json.dumps(built), source=str(plan_manifest(model))) != spec:
        raise TritonExportError(
            f"{model}: the spec beside the plan differs from the one it was built with "
            f"({plan_manifest(model).name}); remove the stale spec or rebuild the plan"
        )
    return spec


def config_pbtxt(name: str, spec: ModelSpec, platform: str, options: TritonOptions) -> str:
    """A config for Triton's own backend (``onnxruntime_onnx`` or ``tensorrt_plan``)."""
    gpu = options.gpu if options.gpu is not None else platform == "tensorrt_plan"
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {options.max_batch}",
        "input [",
        *_tensor(spec.input_name, _DTYPES[spec.input_dtype.value], spec.input_shape),
        "]",
        "output [",
        *_tensor(spec.output_name, "TYPE_FP32", [spec.num_classes]),
        "]",
    ]
    if options.max_batch:
        lines += _dynamic_batching(options)
    return "\n".join(lines + _instance_group(options, gpu)) + "\n"


def _instance_group(options: TritonOptions, gpu: bool) -> list[str]:
    return [
        "instance_group [",
        "  {",
        f"    count: {options.instances}",
        "    kind: KIND_GPU" if gpu else "    kind: KIND_CPU",
        "  }",
        "]",
    ]


def _dynamic_batching(options: TritonOptions) -> list[str]:
    preferred = ", ".join(str(b) for b in options.preferred_batches if b <= options.max_batch)
    return (
        ["dynamic_batching {"]
        + ([f"  preferred_batch_size: [ {preferred} ]"] if preferred else [])
        + [f"  max_queue_delay_microseconds: {options.max_queue_delay_us}", "}"]
    )


def _tensor(name: str, data_type: str, dims: Sequence[int], optional: bool = False) -> list[str]:
    return (
        [
            "  {",
            f'    name: "{name}"',
            f"    data_type: {data_type}",
            f"    dims: [ {', '.join(str(d) for d in dims)} ]",
        ]
        + (["    optional: true"] if optional else [])
        + ["  }"]
    )


def python_config_pbtxt(
    name: str, spec: ModelSpec, model_file: str, options: TritonOptions, max_model_batch: int | None, gpu: bool
) -> str:
    """A Python-backend config: image bytes or preprocessed tensors in, probabilities and top-k out."""
    from serving.triton_model import IMAGE_INPUT, PROBABILITIES, TOP_K_INDICES, TOP_K_LABELS

    if spec.input_name == IMAGE_INPUT:
        raise TritonExportError(
            f"the model's input is named {IMAGE_INPUT!r}, the name the Python backend uses for "
            "image bytes; re-export it with another input name"
        )
    k = max(1, min(options.top_k, spec.num_classes))
    params = {"model_file": model_file, "top_k": str(k), "providers": "auto"}
    if max_model_batch:
        params["max_model_batch"] = str(max_model_batch)
    if options.threads:
        params["threads"] = str(options.threads)
    inputs = _tensor(IMAGE_INPUT, "TYPE_STRING", [1], optional=True) + _tensor(
        spec.input_name, _DTYPES[spec.input_dtype.value], spec.input_shape, optional=True
    )
    outputs = (
        _tensor(PROBABILITIES, "TYPE_FP32", [spec.num_classes])
        + _tensor(TOP_K_LABELS, "TYPE_STRING", [k])
        + _tensor(TOP_K_INDICES, "TYPE_INT32", [k])
    )
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {options.max_batch}",
        "input [",
        *_join(inputs),
        "]",
        "output [",
        *_join(outputs),
        "]",
        *_dynamic_batching(options),
        *_instance_group(options, gpu),
        "parameters [",
    ]
    entries = [f'  {{ key: "{key}" value: {{ string_value: "{value}" }} }}' for key, value in params.items()]
    lines += [e + ("," if i < len(entries) - 1 else "") for i, e in enumerate(entries)] + ["]"]
    return "\n".join(lines) + "\n"


def _join(blocks: list[str]) -> list[str]:
    """Tensor blocks ("  {" … "  }") separated by commas, as the protobuf text format allows."""
    out: list[str] = []
    for line in blocks:
        if line == "  {" and out:
            out[-1] += ","
        out.append(line)
    return out


def write_repository(
    model: Path,
    repo: Path,
    name: str | None = None,
    options: TritonOptions = TritonOptions(),
    backend: ServingBackend = ServingBackend.NATIVE,
) -> Path:
    model = Path(model)
    if not model.is_file():
        raise TritonExportError(f"{model}: model file not found")
    spec = check_model(model, _spec_for(model))
    name = name or spec.name
    if not name.replace("_", "").replace("-", "").isalnum():
        raise TritonExportError(f"model name {name!r}: use letters, digits, '_' or '-' (it becomes a folder name)")
    if is_plan(model):
        platform, filename = "tensorrt_plan", "model.plan"
        manifest = load_manifest(model)
        for line in server_requirements(manifest):
            print(f"note: {line}")
        profile_max = min(p.max[0] for p in manifest.profiles) if manifest.profiles else options.max_batch
        if options.max_batch > profile_max:
            print(f"note: max_batch_size lowered to {profile_max}, the plan's optimization profile maximum")
            options = dataclasses.replace(options, max_batch=profile_max)
    elif model.suffix == ONNX_SUFFIX:
        platform, filename = "onnxruntime_onnx", "model.onnx"
    else:
        raise TritonExportError(f"{model}: expected a .plan or .onnx file")
    max_model_batch = options.max_batch if platform == "tensorrt_plan" else None
    if not spec.dynamic_batch:
        max_model_batch = 1
        if backend is ServingBackend.NATIVE:
            options = dataclasses.replace(options, max_batch=0, preferred_batches=())
    gpu = options.gpu if options.gpu is not None else platform == "tensorrt_plan"
    if backend is ServingBackend.PYTHON:
        config = python_config_pbtxt(name, spec, filename, options, max_model_batch, gpu)
    else:
        config = config_pbtxt(name, spec, platform, options)
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    target = repo / name
    if target.exists() and not (target.is_dir() and (target / "config.pbtxt").is_file()) and not force_enabled():
        what = "a folder that is not a Triton model (no config.pbtxt)" if target.is_dir() else "not a folder"
        raise ForeignFileError(
            f"{target}: already exists and is {what}; it would be replaced: pass --force to replace it"
        )
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700: a server running as another user could not read it
    try:
        (staging / "1").mkdir()
        shutil.copy2(model, staging / "1" / filename)
        (staging / "config.pbtxt").write_text(config)
        if backend is ServingBackend.PYTHON:
            (staging / "1" / "model.py").write_text(PYTHON_MODEL)
            if platform == "tensorrt_plan":  # the runtime's preflight reads the manifest beside the plan
                shutil.copy2(plan_manifest(model), staging / "1" / plan_manifest(Path(filename)).name)
        (staging / "spec.json").write_text(spec.to_json() + "\n")
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=repo))
            os.replace(target, old / name)
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


# TensorRT's support matrix: version-compatible plans also run on these later majors (8 → 9, 10; 10 → 11).
LATER_MAJORS = {8: (9, 10), 10: (11,)}


def server_requirements(manifest) -> list[str]:
    """What the Triton server must have to load this plan, from its manifest: a version-compatible plan needs
    the TensorRT backend told so (``--backend-config=tensorrt,version-compatible=true``, which lets it run the
    lean runtime the plan embeds) and a TensorRT of the same major or newer; any other plan needs exactly the
    TensorRT that built it. A TensorRT-RTX plan cannot be served by Triton's ``tensorrt_plan`` backend at all."""
    built = f"{manifest.flavour} {manifest.trt_version}"
    if manifest.flavour is not Flavour.TENSORRT:
        return [
            f"this plan was built with {built}; Triton's tensorrt_plan backend loads standard TensorRT plans "
            "only: serve it with --backend python (our runtime), or rebuild with standard TensorRT"
        ]
    if manifest.build_flags.version_compatible:
        major = int(manifest.trt_version.split(".")[0])
        later = "".join(f" or {m}.x" for m in LATER_MAJORS.get(major, ()))
        return [
            "version-compatible plan: start tritonserver with --backend-config=tensorrt,version-compatible=true",
            f"the server's TensorRT must be {manifest.trt_version} or a later {major}.x{later} (built with {built})",
        ]
    return [
        f"the server's TensorRT must be exactly {manifest.trt_version} (the Triton release that ships it; "
        f"built with {built}), or rebuild with --version-compatible"
    ]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _batches(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like 8,32, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "triton",
        __doc__,
        [
            "edge triton --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx --repo triton_repo --backend python",
            "edge triton --model asl_cnn/asl_cnn.int8.plan --repo triton_repo --max-batch 32   # native TensorRT",
            "edge serve --repo triton_repo                                                     # then serve it",
        ],
    )
    p.add_argument("--model", type=Path, required=True, help="a .plan (with its manifest) or .onnx file")
    p.add_argument("--repo", type=Path, default=Path("triton_repo"), help="model repository root (default triton_repo)")
    p.add_argument("--name", default=None, help="model name in the repository (default: the spec's name)")
    p.add_argument(
        "--max-batch",
        type=non_negative_int(1 << 16),
        default=64,
        help="max_batch_size (0: no batching, for a model with a fixed batch of 1)",
    )
    p.add_argument("--preferred-batch", type=_batches, default=(8, 32), help="comma-separated preferred batch sizes")
    p.add_argument(
        "--max-queue-delay-us",
        type=non_negative_int(10_000_000),
        default=100,
        help="how long Triton's dynamic batcher waits to fill a batch, in µs",
    )
    p.add_argument("--instances", type=positive_int(1024), default=1, help="model instances Triton runs side by side")
    p.add_argument(
        "--backend",
        choices=[b.value for b in ServingBackend],
        default=ServingBackend.PYTHON.value,
        help="python (default): our runtime inside Triton's Python backend (image bytes in, probabilities and "
        "top-k labels out), which `edge serve` runs; native: Triton's own onnxruntime/tensorrt backend, for "
        "NVIDIA's Triton containers or JetPack's Triton",
    )
    p.add_argument(
        "--top-k", type=positive_int(1000), default=5, help="Python backend: labels returned per image (default 5)"
    )
    p.add_argument(
        "--kind", choices=("cpu", "gpu"), default=None, help="instance kind (default: gpu for a plan, cpu for ONNX)"
    )
    p.add_argument(
        "--threads",
        type=positive_int(1024),
        default=None,
        help="Python backend: ONNX Runtime intra-op threads per instance (default: its choice)",
    )
    p.add_argument("--force", action="store_true", help="replace a --repo/--name folder that is not a Triton model")
    return p


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    try:
        options = TritonOptions(
            args.max_batch,
            args.preferred_batch,
            args.max_queue_delay_us,
            args.instances,
            args.top_k,
            None if args.kind is None else args.kind == "gpu",
            args.threads,
        )
        target = write_repository(args.model, args.repo, args.name, options, ServingBackend(args.backend))
    except (RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"wrote {target} ({(target / 'config.pbtxt').read_text().splitlines()[1]})")
    if args.backend == ServingBackend.PYTHON.value:
        print(f"serve it: edge serve --repo {args.repo}   then ask it: edge client 127.0.0.1:8000 IMAGE")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
