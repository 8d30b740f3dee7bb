import pytest

from serving.repository import TritonExportError, TritonOptions, config_pbtxt, main, write_repository
from train.cards import get_card


def test_config_has_dynamic_batching_and_spec_shapes():
    spec = get_card("asl_cnn").spec()
    text = config_pbtxt("asl_cnn", spec, "tensorrt_plan", TritonOptions(max_batch=64, preferred_batches=(8, 32)))
    assert 'platform: "tensorrt_plan"' in text and "max_batch_size: 64" in text
    assert 'name: "input"' in text and "dims: [ 1, 28, 28 ]" in text and "dims: [ 24 ]" in text
    assert "dynamic_batching {" in text and "preferred_batch_size: [ 8, 32 ]" in text
    assert "max_queue_delay_microseconds: 100" in text and "kind: KIND_GPU" in text


def test_onnx_repository_layout(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_cnn"]
    target = write_repository(onnx_path, tmp_path / "repo", options=TritonOptions(max_batch=16))
    assert (target / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    config = (target / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "max_batch_size: 16" in config and "KIND_CPU" in config
    assert "preferred_batch_size: [ 8 ]" in config  # 32 > max batch is dropped
    assert (target / "spec.json").is_file()
    write_repository(onnx_path, tmp_path / "repo", options=TritonOptions(max_batch=8))  # replaces in place
    assert "max_batch_size: 8" in (target / "config.pbtxt").read_text()
    assert [p.name for p in (tmp_path / "repo").iterdir()] == ["mnist_cnn"]  # no staging left behind


def test_plan_batch_is_capped_by_its_profile(trained_mnist, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    from engine.build import BuildOptions, build_engine

    _, onnx_path = trained_mnist["mnist_mlp"]
    plan, _ = build_engine(
        onnx_path, tmp_path / "m.plan", BuildOptions(1, 4, 16, flavour="tensorrt_rtx"), log=lambda *_: None
    )
    target = write_repository(plan, tmp_path / "repo", options=TritonOptions(max_batch=64))
    assert "max_batch_size: 16" in (target / "config.pbtxt").read_text()
    assert (target / "1" / "model.plan").is_file()


def test_bad_inputs(tmp_path, capsys):
    with pytest.raises(TritonExportError, match="not found"):
        write_repository(tmp_path / "none.onnx", tmp_path / "repo")
    (tmp_path / "x.txt").write_text("hi")
    assert main(["--model", str(tmp_path / "x.txt"), "--repo", str(tmp_path / "repo")]) == 2
    assert "no ModelSpec" in capsys.readouterr().err


def test_python_backend_repository_from_the_cli(trained_mnist, tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    _, onnx_path = trained_mnist["mnist_cnn"]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "serving.repository",
            "--model",
            str(onnx_path),
            "--repo",
            str(tmp_path / "repo"),
            "--backend",
            "python",
            "--max-batch",
            "16",
            "--top-k",
            "3",
            "--threads",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    target = tmp_path / "repo" / "mnist_cnn"
    assert (target / "1" / "model.onnx").read_bytes() == onnx_path.read_bytes()
    assert "from serving.triton_model import TritonPythonModel" in (target / "1" / "model.py").read_text()
    config = (target / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "platform" not in config and "max_batch_size: 16" in config
    assert 'name: "IMAGE"\n    data_type: TYPE_STRING\n    dims: [ 1 ]\n    optional: true' in config
    assert 'name: "input"\n    data_type: TYPE_FP32\n    dims: [ 1, 28, 28 ]\n    optional: true' in config
    assert 'name: "TOP_K_LABELS"\n    data_type: TYPE_STRING\n    dims: [ 3 ]' in config
    assert '{ key: "top_k" value: { string_value: "3" } }' in config
    assert '{ key: "threads" value: { string_value: "1" } }' in config and "KIND_CPU" in config


def test_fixed_batch_native_config_has_no_dynamic_batching():
    from dataclasses import replace

    spec = replace(get_card("mnist_cnn").spec(), dynamic_batch=False)
    text = config_pbtxt("m", spec, "onnxruntime_onnx", TritonOptions(max_batch=0))
    assert "max_batch_size: 0" in text and "dynamic_batching" not in text  # Triton refuses the pair


def test_python_backend_refuses_an_input_named_like_its_image_input():
    from dataclasses import replace

    from serving.repository import python_config_pbtxt

    spec = replace(get_card("mnist_cnn").spec(), input_name="IMAGE")
    with pytest.raises(TritonExportError, match="the name the Python backend uses for image bytes"):
        python_config_pbtxt("m", spec, "model.onnx", TritonOptions(), None, False)


def _cli(*args):
    import subprocess
    import sys

    from tests.conftest import REPO

    return subprocess.run(
        [sys.executable, "-m", "serving.repository", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_a_spec_that_does_not_describe_the_model_is_refused(trained_mnist, tmp_path):
    # issue 13 finding 13: a 9-label spec beside a 10-class model wrote `dims: [9]` and Triton served it
    import dataclasses
    import shutil

    from runtime.spec import ModelSpec

    _, onnx_path = trained_mnist["mnist_cnn"]
    model = tmp_path / "m" / "mnist_cnn.fp32.onnx"
    model.parent.mkdir()
    shutil.copy(onnx_path, model)
    spec = ModelSpec.load(onnx_path.parent / "mnist_cnn.json")
    dataclasses.replace(spec, labels=spec.labels[:9]).save(model.parent / "mnist_cnn.json")
    done = _cli("--model", str(model), "--repo", str(tmp_path / "repo"))
    assert done.returncode == 2 and "outputs 10 classes but the spec lists 9 labels" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "repo" / "mnist_cnn").exists()


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--max-batch", "-1"),
        ("--instances", "0"),
        ("--max-queue-delay-us", "-5"),
        ("--preferred-batch", "8,-2"),
        ("--top-k", "0"),
    ],
)
def test_negative_counts_are_usage_errors_not_written(trained_mnist, tmp_path, flag, value):
    _, onnx_path = trained_mnist["mnist_cnn"]
    done = _cli("--model", str(onnx_path), "--repo", str(tmp_path / "repo"), flag, value)
    assert done.returncode == 2 and flag in done.stderr and not (tmp_path / "repo").exists()


def test_repository_folders_are_readable_by_the_server_user(trained_mnist, tmp_path):
    import os
    import stat

    _, onnx_path = trained_mnist["mnist_cnn"]
    old = os.umask(0o022)
    try:
        target = write_repository(onnx_path, tmp_path / "repo")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o755  # was 0700 (mkdtemp)
    assert stat.S_IMODE((target / "config.pbtxt").stat().st_mode) == 0o644


def _plan_manifest(flavour="tensorrt", version="10.3.0", **flags):
    from formats.engine_manifest import MANIFEST_FORMAT, EngineManifest

    return EngineManifest.from_dict(
        dict(
            plan_sha256="0" * 64,
            plan_bytes=1,
            source_onnx="m.onnx",
            source_sha256="0" * 64,
            flavour=flavour,
            trt_version=version,
            precision="fp16",
            quantization_path="strongly-typed",
            profiles=[],
            build_flags=flags,
            spec={},
            format=MANIFEST_FORMAT,
        ),
        "test manifest",
    )


def test_the_server_requirements_of_a_plan_come_from_its_manifest():
    from serving.repository import server_requirements

    compatible = server_requirements(_plan_manifest(version_compatible=True))
    assert compatible[0].endswith("--backend-config=tensorrt,version-compatible=true")
    assert "10.3.0 or a later 10.x or 11.x" in compatible[1]
    (exact,) = server_requirements(_plan_manifest())
    assert "must be exactly 10.3.0" in exact and "--version-compatible" in exact
    (rtx,) = server_requirements(_plan_manifest("tensorrt_rtx", "1.7.1.116"))
    assert "standard TensorRT plans only" in rtx and "--backend python" in rtx


def test_a_gpu_instance_runs_on_the_gpu_triton_gave_it(monkeypatch):
    import runtime.backends.onnxruntime as ort_backend
    from serving.triton_model import choose_providers

    monkeypatch.setattr(ort_backend, "available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert choose_providers("auto", "GPU", 3) == ["CUDAExecutionProvider:3", "CPUExecutionProvider"]
    assert choose_providers("auto", "CPU", 3) is None
    from runtime.providers import parse_providers

    known = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert parse_providers(choose_providers("auto", "GPU", 3), known, known)[0].device_id == 3


def test_a_plan_opens_on_the_device_it_is_given(tmp_path):
    from runtime.backends.table import BackendOptions, TensorRTOptions
    from runtime.model import open_backend

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"ftrt")
    assert (
        open_backend(plan, BackendOptions(TensorRTOptions(device_id=2))).device_id == 2
    )  # not activated: nothing touches a GPU
