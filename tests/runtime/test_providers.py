"""The --providers shorthand, the CUDA options it becomes, and the errors a user sees."""

import subprocess
import sys

import onnxruntime
import pytest

from runtime.providers import (
    MAX_GRAPHS,
    CudaOptions,
    Provider,
    ProviderError,
    parse_graph_batches,
    parse_providers,
    session_providers,
)
from tests.conftest import REPO

GPU_BUILD = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
KNOWN = list(onnxruntime.get_all_providers())
CUDA_HERE = "CUDAExecutionProvider" in onnxruntime.get_available_providers()


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, (Provider("CPUExecutionProvider"),)),
        ("", (Provider("CPUExecutionProvider"),)),
        ("cpu", (Provider("CPUExecutionProvider"),)),
        ("cuda", (Provider("CUDAExecutionProvider"),)),
        ("CUDA:1, cpu", (Provider("CUDAExecutionProvider", 1), Provider("CPUExecutionProvider"))),
        ("tensorrt:0,cuda:0", (Provider("TensorrtExecutionProvider", 0), Provider("CUDAExecutionProvider", 0))),
        (
            ["CUDAExecutionProvider", "cpuexecutionprovider"],
            (Provider("CUDAExecutionProvider"), Provider("CPUExecutionProvider")),
        ),
    ],
)
def test_shorthands_device_ids_and_full_names(spec, expected):
    assert parse_providers(spec, available=GPU_BUILD, known=KNOWN) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "cuda",
            r"--providers cuda: CUDAExecutionProvider is not available in this onnxruntime build \(it has "
            r"cpu \(CPUExecutionProvider\)\); .*pip install onnxruntime-gpu",
        ),
        ("tensorrt:1", r"--providers tensorrt:1: TensorrtExecutionProvider is not available"),
        (
            "cdua",
            r"--providers 'cdua': unknown execution provider; shorthands are cpu, cuda, tensorrt .*"
            r"this onnxruntime has cpu \(CPUExecutionProvider\); .*pip install onnxruntime-gpu",
        ),
        ("cpu:1", r"only GPU providers .* take a device id; write 'cpu'"),
        ("cuda:first", r"the device id must be a GPU index like cuda:0"),
        ("cpu,CPUExecutionProvider", r"named twice"),
    ],
)
def test_bad_or_unavailable_providers_are_one_line_errors(spec, message):
    with pytest.raises(ProviderError, match=message) as info:
        parse_providers(spec, available=["CPUExecutionProvider"], known=KNOWN)
    assert "\n" not in str(info.value)


def test_cuda_options_become_the_providers_own_options():
    providers = (Provider("CUDAExecutionProvider", 1), Provider("CPUExecutionProvider"))
    assert session_providers(providers) == [("CUDAExecutionProvider", {"device_id": "1"}), "CPUExecutionProvider"]
    graph = session_providers(providers, CudaOptions(cuda_graph=True, tf32=False))
    assert graph[0] == ("CUDAExecutionProvider", {"device_id": "1", "enable_cuda_graph": "1", "use_tf32": "0"})
    trt = session_providers((Provider("TensorrtExecutionProvider"),), CudaOptions(cuda_graph=True, tf32=True))
    assert trt == [("TensorrtExecutionProvider", {"trt_cuda_graph_enable": "1"})]  # use_tf32 is the CUDA EP's


def test_io_binding_defaults_to_gpu_providers_and_graphs_force_it():
    cpu, cuda = Provider("CPUExecutionProvider"), Provider("CUDAExecutionProvider")
    assert not CudaOptions().wants_binding(cpu) and CudaOptions().wants_binding(cuda)
    assert CudaOptions(io_binding=True).wants_binding(cpu) and not CudaOptions(io_binding=False).wants_binding(cuda)
    assert CudaOptions(io_binding=False, cuda_graph=True).wants_binding(cuda)


def test_graph_batch_lists():
    assert parse_graph_batches("64, 1,8,8") == (1, 8, 64)
    for bad in ("", "0", "x", ",".join(str(b) for b in range(1, MAX_GRAPHS + 2))):
        with pytest.raises(ValueError, match="--cuda-graph-batches"):
            parse_graph_batches(bad)


@pytest.mark.skipif(CUDA_HERE, reason="this onnxruntime has the CUDA EP; the error is for CPU-only builds")
def test_infer_cli_refuses_cuda_on_a_cpu_only_onnxruntime(trained_mnist, mnist_test, tmp_path):
    from PIL import Image

    Image.fromarray(mnist_test.images[0]).save(tmp_path / "d.png")
    engine = trained_mnist["mnist_cnn"][1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runtime.infer",
            "--engine",
            str(engine),
            str(tmp_path / "d.png"),
            "--providers",
            "cuda",
            "--cuda-graph",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "error: --providers cuda: CUDAExecutionProvider is not available in this onnxruntime build" in done.stderr
    assert "pip install onnxruntime-gpu" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "runtime.infer", "--engine", str(engine), str(tmp_path / "d.png"), "--cuda-graph"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "--cuda-graph needs a GPU provider first (--providers cuda)" in done.stderr
