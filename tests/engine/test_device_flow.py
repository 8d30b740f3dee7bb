"""The device flow, in the device profile: a venv with only what a Jetson has (``make device-venv``: the `gpu`
extra, onnx and TensorRT-RTX for JetPack's tensorrt — no torch, tqdm or matplotlib), in a fresh folder that
holds nothing but the bundle archive made on the training side.

unpack → doctor → build every precision → manifest + preflight → ``runtime.infer`` on real images →
``--self-test`` (reaches the GPU check and says so) → ``benchmarks latency``; then the ways a device install
goes wrong: an altered bundle file, a plan from another bundle. Every step is the CLI a user types.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bundle import create

DEVICE_PYTHON = os.environ.get("EDGE_DEVICE_PYTHON")
pytestmark = pytest.mark.skipif(
    not DEVICE_PYTHON or not Path(DEVICE_PYTHON).is_file(),
    reason="no device-profile venv: `make test` builds it (`make device-venv`) and sets EDGE_DEVICE_PYTHON",
)


def device(*args, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    # A clean environment: nothing from the training venv leaks in through PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run([DEVICE_PYTHON, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert "Traceback" not in done.stderr, done.stderr
    if ok:
        assert done.returncode == 0, f"{args}: rc {done.returncode}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def device_folder(calibrated_cnn, mnist_test, data_dir, tmp_path_factory):
    """A fresh folder with the bundle archive (made by the training side) and ten real test digits."""
    from PIL import Image

    from calibration.gate import holdout_sample
    from formats.holdout import save_holdout
    from train.cards import TEST, load_split
    from train.models.mnist import mnist_spec

    folder = tmp_path_factory.mktemp("calibrated") / "mnist_cnn"  # a copy: the held-out sample is added to it
    shutil.copytree(calibrated_cnn[0], folder)
    split = load_split(mnist_spec("mnist_cnn"), data_dir, TEST)
    save_holdout(folder, "mnist_cnn", holdout_sample(split, 0.5))  # what the gate writes (`edge calibrate`)
    _, archive = create(folder, tmp_path_factory.mktemp("training_side"), log=lambda *_: None)
    here = tmp_path_factory.mktemp("jetson")
    shutil.copy(archive, here)
    (here / "digits").mkdir()
    for i in range(10):
        Image.fromarray(mnist_test.images[i]).save(here / "digits" / f"{i}_label{mnist_test.labels[i]}.png")
    return here


def test_the_device_profile_has_no_training_libraries(device_folder):
    code = (
        "import importlib.util as u, json; print(json.dumps({m: u.find_spec(m) is not None for m in "
        "('torch', 'torchvision', 'tqdm', 'matplotlib', 'kornia', 'onnx', 'onnxruntime', 'tensorrt_rtx')}))"
    )
    found = json.loads(device("-c", code, cwd=device_folder).stdout)
    assert found == {
        "torch": False,
        "torchvision": False,
        "tqdm": False,
        "matplotlib": False,
        "kornia": False,
        "onnx": True,
        "onnxruntime": True,
        "tensorrt_rtx": True,
    }


def test_unpack_build_preflight_infer_selftest_benchmark(device_folder, mnist_test):
    here = device_folder
    done = device("-m", "engine.bundle", "unpack", "mnist_cnn.bundle.tar.gz", "--out", "mnist_cnn", "--json", cwd=here)
    assert json.loads(done.stdout)["files"] >= 11
    doctor = json.loads(device("-m", "runtime.doctor", "--json", cwd=here, ok=False).stdout)
    assert {c["name"] for c in doctor} >= {"python", "tensorrt-rtx", "cuda-python", "onnxruntime"}

    for precision in ("fp32", "fp16", "int8"):
        built = json.loads(
            device(
                "-m",
                "engine",
                "--onnx",
                f"mnist_cnn/mnist_cnn.{precision}.onnx",
                "--max-batch",
                "32",
                "--json",
                cwd=here,
            ).stdout
        )
        manifest = built["manifest"]
        assert built["status"] == "no engine yet" and manifest["precision"] == precision
        assert manifest["golden"]["count"] == 8 and manifest["flavour"] == "tensorrt_rtx"
        assert manifest["build_flags"]["tf32"] is (precision != "fp32")
        again = json.loads(
            device(
                "-m",
                "engine",
                "--onnx",
                f"mnist_cnn/mnist_cnn.{precision}.onnx",
                "--max-batch",
                "32",
                "--json",
                cwd=here,
            ).stdout
        )
        assert again["status"] == "reused"  # the manifest matched: preflight passed on the device

    # a plan passes preflight, then needs a GPU: the message says so instead of crashing
    for args in (["mnist_cnn/mnist_cnn.int8.plan", "digits"], ["mnist_cnn/mnist_cnn.int8.plan", "--self-test"]):
        done = device("-m", "runtime.infer", "--engine", *args, cwd=here, ok=False)
        assert done.returncode == 2 and "no CUDA GPU visible" in done.stderr

    # ONNX Runtime on the CPU classifies the real digits, same answers as the training machine's runtime
    for name in ("mnist_cnn.fp32.onnx", "mnist_cnn.int8.ort.onnx"):
        doc = json.loads(
            device("-m", "runtime.infer", "--engine", f"mnist_cnn/{name}", "digits", "--json", cwd=here).stdout
        )
        labels = {Path(r["input"]).name: r["label"] for r in doc["results"]}
        assert len(labels) == 10 and doc["errors"] == []
        right = sum(label == file.split("label")[1][0] for file, label in labels.items())
        assert right >= 8, labels
        training_side = subprocess.run(
            [sys.executable, "-m", "runtime.infer", "--engine", f"mnist_cnn/{name}", "digits", "--json"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert {Path(r["input"]).name: r["label"] for r in json.loads(training_side.stdout)["results"]} == labels

    report = json.loads(
        device(
            "-m",
            "benchmarks",
            "latency",
            "--engine",
            "mnist_cnn/mnist_cnn.fp32.onnx",
            "--batch",
            "1,8",
            "--duration-s",
            "0.2",
            "--warmup-ms",
            "20",
            "--json",
            cwd=here,
        ).stdout
    )
    assert [r["batch"] for r in report["results"]] == [1, 8]
    assert not (here / "mnist_cnn" / "mnist_cnn.fp32.onnx.latency.png").exists()  # no matplotlib: no plot, no crash

    # edge bench all on the unpacked bundle, torch-free: every file × backend, accuracy from the bundled sample
    argv = ["all", "mnist_cnn", "--batch", "8", "--rounds", "1", "--iterations", "2", "--json"]
    bench = json.loads(device("-m", "benchmarks", *argv, cwd=here).stdout)
    measured = {(m["candidate"], m["batch"]) for m in bench["measured"]}
    assert {(f"{p} ort-cpu", b) for p in ("fp32", "fp16", "int8", "int8.ort") for b in (1, 8)} <= measured
    skipped = {(s["what"], s["backend"]): s["reason"] for s in bench["skipped"]}
    assert "no CUDA GPU visible" in skipped[("mnist_cnn.int8.plan", "tensorrt")]  # each plan, with the reason
    assert skipped[("mnist_cnn.pt", "pytorch-eager")] == "torch is not installed (device profile)"
    assert "a seeded sample of 300 of 10,000 images shipped as mnist_cnn.holdout.npz" in bench["accuracy_data"]
    assert bench["candidates"]["int8 ort-cpu"]["accuracy"]["images"] == 300
    assert all(r["reason"] for r in bench["recommendations"].values()) and "unstable" in bench
    assert (here / "mnist_cnn.bench.md").is_file() and not (here / "mnist_cnn.bench.png").exists()


def test_damaged_or_mixed_up_bundles_are_refused_in_one_line(device_folder, trained_mnist):
    here = device_folder / "damaged"
    here.mkdir()
    device("-m", "engine.bundle", "unpack", "../mnist_cnn.bundle.tar.gz", "--out", "b", cwd=here)
    cache = here / "b" / "mnist_cnn.calib.cache"
    cache.write_text(cache.read_text().replace("TRT-8601", "TRT-8600"))
    done = device("-m", "engine", "--onnx", "b/mnist_cnn.int8.onnx", cwd=here, ok=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "mnist_cnn.calib.cache: checksum does not match SHA256SUMS" in done.stderr

    # a plan built from another model's ONNX, copied into this bundle under this bundle's name
    other = here / "other"
    other.mkdir()
    shutil.copy(trained_mnist["mnist_mlp"][1], other / "mnist_cnn.fp32.onnx")
    device("-m", "engine", "--onnx", "other/mnist_cnn.fp32.onnx", "--max-batch", "8", cwd=here)
    device("-m", "engine.bundle", "unpack", "../mnist_cnn.bundle.tar.gz", "--out", "c", cwd=here)
    for suffix in (".plan", ".plan.json"):
        shutil.copy(other / f"mnist_cnn.fp32{suffix}", here / "c" / f"mnist_cnn.fp32{suffix}")
    for args in (["--self-test"], ["../digits"]):
        done = device("-m", "runtime.infer", "--engine", "c/mnist_cnn.fp32.plan", *args, cwd=here, ok=False)
        assert done.returncode == 2 and "built from an ONNX file that is not in this bundle" in done.stderr
        assert "python -m engine --onnx c/mnist_cnn.fp32.onnx" in done.stderr
