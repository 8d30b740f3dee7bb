"""A Triton Inference Server model repository for users who outgrow one device.

``python -m export.triton --model artifacts/asl_cnn/asl_cnn.int8.plan [--repo triton_repo] [--name asl_cnn]
[--max-batch 64] [--preferred-batch 8,32] [--max-queue-delay-us 100] [--instances 1]``

Writes ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/1/model.plan`` (TensorRT, platform
``tensorrt_plan``) or ``model.onnx`` (ONNX Runtime, ``onnxruntime_onnx``), with dynamic batching
and the input/output names, types and shapes from the ModelSpec. A plan's ``max_batch_size`` is
capped by its optimization profile (read from the manifest). The ModelSpec goes beside the config
(``spec.json``) so clients preprocess exactly as the runtime does. The folder is assembled in a
temporary directory and renamed into place: an interrupted export leaves no half repository.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from runtime.cli import describe
from runtime.engine_manifest import load_manifest
from runtime.errors import RuntimeToolkitError
from runtime.spec import ModelSpec, spec_from_sidecar

_DTYPES = {"float32": "TYPE_FP32", "uint8": "TYPE_UINT8"}


class TritonExportError(Exception):
    pass


@dataclass(frozen=True)
class TritonOptions:
    max_batch: int = 64
    preferred_batches: tuple[int, ...] = (8, 32)
    max_queue_delay_us: int = 100
    instances: int = 1


def _spec_for(model: Path) -> ModelSpec:
    spec = spec_from_sidecar(model)
    if spec is None and model.suffix == ".onnx":
        import onnx

        from runtime.spec import METADATA_KEY

        meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
        if METADATA_KEY in meta:
            spec = ModelSpec.from_json(meta[METADATA_KEY], source=str(model))
    if spec is None:
        raise TritonExportError(f"{model}: no ModelSpec beside it or inside it; export it with `python -m export`")
    return spec


def config_pbtxt(name: str, spec: ModelSpec, platform: str, options: TritonOptions) -> str:
    dims = ", ".join(str(d) for d in spec.input_shape)
    preferred = ", ".join(str(b) for b in options.preferred_batches if b <= options.max_batch)
    lines = [
        f'name: "{name}"',
        f'platform: "{platform}"',
        f"max_batch_size: {options.max_batch}",
        "input [",
        "  {",
        f'    name: "{spec.input_name}"',
        f"    data_type: {_DTYPES[spec.input_dtype.value]}",
        f"    dims: [ {dims} ]",
        "  }",
        "]",
        "output [",
        "  {",
        f'    name: "{spec.output_name}"',
        "    data_type: TYPE_FP32",
        f"    dims: [ {spec.num_classes} ]",
        "  }",
        "]",
        "dynamic_batching {",
    ]
    if preferred:
        lines.append(f"  preferred_batch_size: [ {preferred} ]")
    lines += [f"  max_queue_delay_microseconds: {options.max_queue_delay_us}", "}",
              "instance_group [", "  {", f"    count: {options.instances}",
              "    kind: KIND_GPU" if platform == "tensorrt_plan" else "    kind: KIND_CPU", "  }", "]"]
    return "\n".join(lines) + "\n"


def write_repository(model: Path, repo: Path, name: str | None = None,
                     options: TritonOptions = TritonOptions()) -> Path:
    model = Path(model)
    if not model.is_file():
        raise TritonExportError(f"{model}: model file not found")
    spec = _spec_for(model)
    name = name or spec.name
    if not name.replace("_", "").replace("-", "").isalnum():
        raise TritonExportError(f"model name {name!r}: use letters, digits, '_' or '-' (it becomes a folder name)")
    if model.suffix in (".plan", ".engine"):
        platform, filename = "tensorrt_plan", "model.plan"
        manifest = load_manifest(model)
        profile_max = min(p["max"][0] for p in manifest.profiles) if manifest.profiles else options.max_batch
        if options.max_batch > profile_max:
            print(f"note: max_batch_size lowered to {profile_max}, the plan's optimization profile maximum")
            options = TritonOptions(profile_max, options.preferred_batches, options.max_queue_delay_us,
                                    options.instances)
    elif model.suffix == ".onnx":
        platform, filename = "onnxruntime_onnx", "model.onnx"
    else:
        raise TritonExportError(f"{model}: expected a .plan or .onnx file")
    if not spec.dynamic_batch:
        options = TritonOptions(0, (), options.max_queue_delay_us, options.instances)
    repo = Path(repo)
    repo.mkdir(parents=True, exist_ok=True)
    target = repo / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=repo))
    try:
        (staging / "1").mkdir()
        shutil.copy2(model, staging / "1" / filename)
        (staging / "config.pbtxt").write_text(config_pbtxt(name, spec, platform, options))
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m export.triton", description=describe(__doc__))
    p.add_argument("--model", type=Path, required=True, help="a .plan (with its manifest) or .onnx file")
    p.add_argument("--repo", type=Path, default=Path("triton_repo"), help="model repository root (default triton_repo)")
    p.add_argument("--name", default=None, help="model name in the repository (default: the spec's name)")
    p.add_argument("--max-batch", type=int, default=64)
    p.add_argument("--preferred-batch", default="8,32", help="comma-separated preferred batch sizes")
    p.add_argument("--max-queue-delay-us", type=int, default=100)
    p.add_argument("--instances", type=int, default=1)
    args = p.parse_args(argv)
    try:
        preferred = tuple(int(b) for b in args.preferred_batch.split(",") if b.strip())
        options = TritonOptions(args.max_batch, preferred, args.max_queue_delay_us, args.instances)
        target = write_repository(args.model, args.repo, args.name, options)
    except ValueError:
        print(f"error: --preferred-batch {args.preferred_batch!r}: expected integers like 8,32", file=sys.stderr)
        return 2
    except (TritonExportError, RuntimeToolkitError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target} ({(target / 'config.pbtxt').read_text().splitlines()[1]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
