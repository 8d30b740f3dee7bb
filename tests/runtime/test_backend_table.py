"""The backend table: a row per backend with typed options; a backend added as one row is opened, configured and
given its CLI flags without touching any other file; the base class declares what a backend may tell."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runtime.backends.base import Backend, TensorInfo
from runtime.backends.table import (
    BackendOptions,
    BackendRow,
    OnnxRuntimeOptions,
    TensorRTOptions,
    add_backend_arguments,
    make_backend,
    options_from_args,
    register,
    registered,
    rows,
    select,
)
from runtime.model import Classifier
from runtime.spec import METADATA_KEY
from tests.conftest import REPO
from tests.hardening.tiny_models import write_model


@dataclass(frozen=True)
class ScaleOptions:
    scale: float = 1.0


class ScaleBackend(Backend):
    """A throwaway backend: reads a ``.scale`` file (a 784×10 weight matrix as .npy) and multiplies."""

    def __init__(self, path: Path, scale: float) -> None:
        super().__init__()
        self.path, self.scale = path, scale

    @property
    def inputs(self):
        return (TensorInfo("input", np.dtype(np.float32), (None, 1, 28, 28)),)

    @property
    def outputs(self):
        return (TensorInfo("logits", np.dtype(np.float32), (None, 10)),)

    def _activate(self) -> None:
        self.weight = np.load(self.path)

    def _deactivate(self) -> None:
        self.weight = None

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"logits": self.scale * feed["input"].reshape(len(feed["input"]), -1) @ self.weight}


def _scale_row() -> BackendRow:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--scale", type=float, default=1.0, help="multiply the logits")

    return BackendRow(
        "scale",
        ScaleOptions,
        lambda path, options: ScaleBackend(path, options.get(ScaleOptions).scale),
        lambda path: path.suffix == ".scale",
        add_arguments=add_arguments,
        from_args=lambda args: ScaleOptions(args.scale),
    )


def test_a_throwaway_row_is_opened_configured_and_flagged(tmp_path):
    weight = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32)
    path = tmp_path / "m.scale"
    with open(path, "wb") as f:
        np.save(f, weight)
    with registered(_scale_row()):
        parser = argparse.ArgumentParser()
        add_backend_arguments(parser)
        options = options_from_args(parser.parse_args(["--scale", "2"]))
        backend = make_backend(path, options)
        assert isinstance(backend, ScaleBackend) and backend.scale == 2.0
        with backend:
            x = np.ones((3, 1, 28, 28), np.float32)
            assert np.allclose(backend.infer({"input": x})["logits"], 2 * x.reshape(3, -1) @ weight, rtol=1e-5)
            assert backend.metadata() == {} and backend.execution() is None and backend.last_stage_ms == {}
    assert "scale" not in [r.name for r in rows()]
    assert select(path, BackendOptions()).name == "onnxruntime"  # gone: the fallback says what it cannot read


def test_a_second_row_of_a_name_is_refused():
    with pytest.raises(ValueError, match="backend 'tensorrt' registered twice"):
        register(rows()[1])


def test_cuda_graphs_reach_the_tensorrt_backend():
    """The flag every model-running CLI gets from the table lands in the TensorRT backend (nothing is loaded)."""
    from runtime.infer import build_parser

    args = build_parser().parse_args(["--engine", "m.fp16.plan", "x.jpg", "--cuda-graphs"])
    backend = make_backend(Path("m.fp16.plan"), options_from_args(args))
    assert type(backend).__name__ == "TensorRTBackend" and backend.cuda_graphs and not backend.time_stages
    plain = make_backend(Path("m.fp16.plan"), BackendOptions(TensorRTOptions(time_stages=True)))
    assert not plain.cuda_graphs and plain.time_stages


def test_onnx_options_still_reach_onnx_runtime(tmp_path):
    model = write_model(tmp_path)
    with Classifier.from_path(model, BackendOptions(OnnxRuntimeOptions(threads=1))) as classifier:
        assert classifier.backend.execution()["providers"] == ["CPUExecutionProvider"]
        assert METADATA_KEY not in classifier.backend.metadata()  # no spec embedded: the sidecar is read


def test_openvino_is_a_row_selected_by_its_provider_and_refused_when_absent(tmp_path):
    """``--providers openvino`` picks the OpenVINO row; without the onnxruntime-openvino wheel the CLI says so."""
    import onnxruntime

    model = write_model(tmp_path)
    assert select(model, BackendOptions(OnnxRuntimeOptions(providers="openvino"))).name == "openvino"
    assert select(model, BackendOptions(OnnxRuntimeOptions(providers="cpu"))).name == "onnxruntime"
    image = tmp_path / "digit.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    result = subprocess.run(
        [sys.executable, "-m", "runtime.infer", "--engine", str(model), str(image), "--providers", "openvino"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode == 2, result.stderr
        assert "this onnxruntime has no OpenVINOExecutionProvider" in result.stderr
        assert "onnxruntime-openvino" in result.stderr and "Traceback" not in result.stderr
