"""Shared fixtures and the central skips for the gpu / tensorrt / slow markers."""

from __future__ import annotations

import importlib.util
import os
import stat
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("EDGE_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=os.environ.get("EDGE_RUN_SLOW") == "1",
        help="also run tests marked slow (full training runs, the whole demo)",
    )


def _gpu_reason() -> str | None:
    """Why `gpu` tests skip here, or None: asks CUDA itself (``runtime.cuda.device_count()``), not nvidia-smi or
    /dev/nvidia0, which a Jetson (/dev/nvhost-*) and many containers lack. One cudaGetDeviceCount call: fast, and
    any failure becomes the skip reason rather than a collection error."""
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python (cuda.bindings) is not installed"
    try:
        from runtime import cuda

        count = cuda.device_count()
    except Exception as exc:  # a driver mismatch, a broken install: reported, never a failed collection
        return f"no usable CUDA GPU: {str(exc)[:300]}"
    return None if count else "no CUDA GPU visible on this machine (runtime.cuda.device_count() is 0)"


def _tensorrt_reason() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return (
            "standard TensorRT (`import tensorrt`) is not installed: it comes with JetPack or NVIDIA's "
            "index, which this machine cannot reach; run these tests on a Jetson or GPU box"
        )
    return None


def _dev_null_is_a_device() -> bool:
    return stat.S_ISCHR(os.stat("/dev/null").st_mode) if os.path.exists("/dev/null") else False


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if anything it ran replaced /dev/null (CI and Jetsons run as root: it breaks the machine)."""
    if os.name == "posix" and not _dev_null_is_a_device():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(
            "\nERROR: /dev/null is no longer a character device: a test or a tool it ran replaced it. "
            "Recreate it (mknod -m 666 /dev/null c 1 3) and find the writer; tests write only in their tmp folders."
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {
        "gpu": _gpu_reason(),
        "tensorrt": _tensorrt_reason(),
        "slow": None if config.getoption("--run-slow") else "slow test: pass --run-slow or set EDGE_RUN_SLOW=1",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not (path / "mnist").is_dir():
        pytest.fail(f"real data not found at {path}; set EDGE_DATA_DIR or run `make data` (tests never download)")
    return path


@pytest.fixture(scope="session")
def mnist_test(data_dir):
    from train.data.mnist import load_mnist

    return load_mnist(data_dir, "test")


@pytest.fixture(scope="session")
def trained_mnist(tmp_path_factory, data_dir):
    """Both MNIST models trained briefly on real data and exported: {name: (checkpoint, onnx path)}."""
    from export.onnx_export import export_fp32
    from formats.artifacts import Artifacts
    from train.checkpoint import load_checkpoint
    from train.loop import TrainConfig
    from train.mnist import train_mnist

    out = tmp_path_factory.mktemp("mnist_models")
    models = {}
    for name, limit in (("mnist_mlp", None), ("mnist_cnn", 12000)):
        train_mnist(name, data_dir, out / name, TrainConfig(epochs=1), limit=limit, progress=False)
        ckpt = load_checkpoint(Artifacts(out / name, name).checkpoint)
        models[name] = (ckpt, export_fp32(ckpt.model, ckpt.spec, out / name))
    return models


@pytest.fixture(scope="session")
def calibrated_cnn(trained_mnist, data_dir):
    """The briefly trained MNIST CNN with every variant written by the real pipeline (128 samples, entropy)."""
    from calibration.calibrate import CalibrationOptions, calibrate_model

    ckpt, onnx_path = trained_mnist["mnist_cnn"]
    result = calibrate_model("mnist_cnn", onnx_path.parent, data_dir, CalibrationOptions(size=128), log=lambda *_: None)
    return onnx_path.parent, result
