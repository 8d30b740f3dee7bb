"""IOBinding on the CPU execution provider: the GPU path's code, run here, against plain ``session.run``."""

import json
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest

from runtime.backends.onnxruntime import OnnxRuntimeBackend
from runtime.backends.ort_binding import pinned_memory_info
from runtime.providers import CudaOptions
from tests.conftest import REPO


@pytest.fixture(scope="module")
def cnn(trained_mnist):
    return trained_mnist["mnist_cnn"][1]


def _ready(trained_mnist, mnist_test, n):
    """``n`` real test digits, preprocessed as the runtime does."""
    from runtime.preprocess import preprocess

    spec = trained_mnist["mnist_cnn"][0].spec
    return np.stack([preprocess(image, spec) for image in mnist_test.images[:n]])


def test_io_binding_equals_plain_run_for_every_batch_size(cnn, trained_mnist, mnist_test):
    x = _ready(trained_mnist, mnist_test, 64)
    with OnnxRuntimeBackend(cnn) as plain, OnnxRuntimeBackend(cnn, cuda=CudaOptions(io_binding=True)) as bound:
        assert bound.execution()["io_binding"] and not plain.execution()["io_binding"]
        for n in (1, 7, 64, 7, 1):  # repeated sizes reuse their slot
            want = plain.infer({"input": x[:n]})["logits"]
            got = bound.infer({"input": x[:n]})["logits"]
            assert got.shape == (n, 10) and np.array_equal(got, want)
        runner = bound._runner
        assert len(runner._slots) == 3  # one slot per batch size, made once
        slot = runner._slots[((7, 1, 28, 28),)]
        address = slot.inputs["input"].data_ptr(), slot.outputs["logits"].data_ptr()
        bound.infer({"input": x[10:17]})
        assert (slot.inputs["input"].data_ptr(), slot.outputs["logits"].data_ptr()) == address  # fixed, as graphs need


def test_outputs_are_fresh_arrays_the_caller_owns(cnn, trained_mnist, mnist_test):
    x = _ready(trained_mnist, mnist_test, 4)
    with OnnxRuntimeBackend(cnn, cuda=CudaOptions(io_binding=True)) as bound:
        first = bound.infer({"input": x})["logits"]
        kept = first.copy()
        second = bound.infer({"input": x[::-1].copy()})["logits"]
        assert not np.shares_memory(first, second)
        assert np.array_equal(first, kept)  # the next call did not overwrite what the caller holds
        assert np.array_equal(second, kept[::-1])


def test_outputs_sized_by_more_than_the_batch_are_allocated_by_onnxruntime(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "k"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", "k"])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 8
    onnx.save(model, tmp_path / "relu.onnx")
    data = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    with OnnxRuntimeBackend(tmp_path / "relu.onnx", cuda=CudaOptions(io_binding=True)) as bound:
        for cols in (5, 2):
            got = bound.infer({"x": data[:, :cols].copy()})["y"]
            assert np.array_equal(got, np.maximum(data[:, :cols], 0))
        assert all(not slot.outputs for slot in bound._runner._slots.values())


@pytest.mark.skipif(
    "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
    reason="a GPU build may have the pinned allocator (the gpu tests report which staging ran)",
)
def test_a_cpu_build_has_no_pinned_staging_and_says_why():
    info, why = pinned_memory_info(onnxruntime)
    assert info is None and "CUDAExecutionProvider" in why


def test_infer_cli_with_io_binding_prints_the_same_predictions(cnn, mnist_test, tmp_path):
    from PIL import Image

    for i in range(5):
        Image.fromarray(mnist_test.images[i]).save(tmp_path / f"{i}.png")
    docs = []
    for extra in ([], ["--providers", "cpu", "--io-binding"]):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "runtime.infer",
                "--engine",
                str(cnn),
                str(tmp_path),
                "--json",
                "--batch-size",
                "2",
                *extra,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        )
        docs.append(json.loads(done.stdout))
    assert [r["probability"] for r in docs[0]["results"]] == [r["probability"] for r in docs[1]["results"]]
    assert docs[0]["execution"] == {"providers": ["CPUExecutionProvider"], "io_binding": False}
    assert docs[1]["execution"]["io_binding"] and docs[1]["execution"]["device"] == "cpu:0"


def test_cuda_graph_needs_a_gpu_provider_first(cnn):
    from runtime.providers import ProviderError

    with pytest.raises(ProviderError, match=r"--cuda-graph needs a GPU provider first \(--providers cuda\)"):
        OnnxRuntimeBackend(cnn, providers="cpu", cuda=CudaOptions(cuda_graph=True)).activate()


@pytest.mark.parametrize(
    "batches, expected",
    [
        ((1, 4), {"1x1x28x28": 1, "4x1x28x28": 2}),
        (None, {f"{n}x1x28x28": i + 1 for i, n in enumerate(range(1, 9))}),  # the first MAX_GRAPHS sizes seen
    ],
)
def test_one_graph_id_per_batch_size_and_minus_one_for_the_rest(cnn, trained_mnist, mnist_test, batches, expected):
    """The policy and its RunOptions, on a CPU session (which ignores gpu_graph_id): the GPU tests replay them."""
    from runtime.backends.onnxruntime import SessionFromOnnx
    from runtime.backends.ort_binding import GRAPH_ID_KEY, BoundRunner

    x = _ready(trained_mnist, mnist_test, 9)
    with OnnxRuntimeBackend(cnn) as plain:
        session = SessionFromOnnx(cnn)()
        runner = BoundRunner(
            onnxruntime,
            session,
            plain.inputs,
            plain.outputs,
            "cpu",
            0,
            CudaOptions(cuda_graph=True, graph_batches=batches),
        )
        for n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 4, 1):
            assert np.array_equal(runner.run({"input": x[:n]})["logits"], plain.infer({"input": x[:n]})["logits"])
    assert runner.report()["graphs"] == expected
    ids = {key[0][0]: slot.run_options.get_run_config_entry(GRAPH_ID_KEY) for key, slot in runner._slots.items()}
    assert ids[9] == "-1" and all(ids[int(k.split("x")[0])] == str(v) for k, v in expected.items())


def test_a_failing_pinned_memory_lookup_falls_back_to_pageable_copies():
    # get_ep_devices() can raise on a half-installed GPU build: that only costs speed, never the run.
    from runtime.backends.ort_binding import BoundRunner

    class BrokenOrt:
        __version__ = "1.31.1"
        OrtDeviceMemoryType = object()

        @staticmethod
        def get_ep_devices():
            raise RuntimeError("CUDA EP library failed to load")

    runner = BoundRunner(BrokenOrt, None, (), (), "cuda", 0)
    assert runner._staging_for((1, 4), np.dtype(np.float32), None) is None
    assert runner.staging.startswith("pageable: pinned staging failed (RuntimeError: CUDA EP library")
