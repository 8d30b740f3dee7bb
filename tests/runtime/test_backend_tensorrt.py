"""TensorRT execution (marker `tensorrt`: needs standard TensorRT and a GPU; no machine of this project has both).
What runs everywhere: a real TensorRT-RTX plan reaches the backend, passes preflight and is refused for lack of a
GPU with a clear message."""

import numpy as np
import pytest

from formats.errors import ModelLoadError
from runtime.model import Classifier


def test_plan_without_gpu_is_refused_clearly(trained_mnist, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    from engine.build import BuildOptions, build_engine
    from runtime import cuda

    if cuda.device_count():
        pytest.skip("a GPU is visible; this test covers the no-GPU path")
    _, onnx_path = trained_mnist["mnist_mlp"]
    plan, _ = build_engine(
        onnx_path, tmp_path / "m.fp32.plan", BuildOptions(1, 4, 16, flavour="tensorrt_rtx"), log=lambda *_: None
    )
    with pytest.raises(ModelLoadError, match="no CUDA GPU visible"):
        with Classifier.from_path(plan):
            pass


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_matches_onnx_runtime_and_splits_big_batches(trained_mnist, mnist_test, tmp_path):
    from engine.build import BuildOptions, build_engine
    from runtime.preprocess import normalize

    _, onnx_path = trained_mnist["mnist_cnn"]
    plan, _ = build_engine(onnx_path, tmp_path / "m.fp32.plan", BuildOptions(1, 8, 16, flavour="tensorrt"))
    from runtime.spec import ModelSpec

    batch = normalize(mnist_test.images[:40], ModelSpec.load(onnx_path.parent / "mnist_cnn.json"))
    with Classifier.from_path(onnx_path) as ort_clf, Classifier.from_path(plan) as trt_clf:
        expected = ort_clf.run(batch)
        got = trt_clf.run(batch)  # 40 > max batch 16: three chunks
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_activation_hashes_the_plan_once(trained_mnist, tmp_path, monkeypatch):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    import formats.engine_manifest as em
    from engine.build import BuildOptions, build_engine
    from runtime import cuda
    from runtime.backends.tensorrt import TensorRTBackend

    if cuda.device_count():
        pytest.skip("a GPU is visible; this test covers the no-GPU path")
    _, onnx_path = trained_mnist["mnist_mlp"]
    plan, _ = build_engine(
        onnx_path, tmp_path / "m.fp32.plan", BuildOptions(1, 4, 16, flavour="tensorrt_rtx"), log=lambda *_: None
    )
    hashed = []
    real = em.sha256_file
    monkeypatch.setattr(em, "sha256_file", lambda path: hashed.append(path) or real(path))
    with pytest.raises(ModelLoadError, match="no CUDA GPU visible"):
        TensorRTBackend(plan).activate()
    assert hashed == [plan]  # preflight ran twice before: the plan was hashed on every load twice


def _built(onnx_path, tmp_path, name, **options):
    from engine.build import BuildOptions, build_engine

    return build_engine(onnx_path, tmp_path / name, BuildOptions(flavour="tensorrt", **options))[0]


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_cuda_graphs_give_the_same_outputs(trained_mnist, mnist_test, tmp_path):
    from runtime.backends.tensorrt import TensorRTBackend
    from runtime.spec import ModelSpec

    _, onnx_path = trained_mnist["mnist_cnn"]
    plan = _built(onnx_path, tmp_path, "m.fp32.plan", min_batch=1, opt_batch=8, max_batch=16)
    x = np.ascontiguousarray(
        (mnist_test.images[:16, None].astype(np.float32) / 255.0 - 0.1307) / 0.3081
    )  # any real input will do
    spec = ModelSpec.load(onnx_path.parent / "mnist_cnn.json")
    with TensorRTBackend(plan) as plain, TensorRTBackend(plan, cuda_graphs=True) as graphed:
        for rows in (1, 8, 16, 8):  # each batch size captured once, replayed after
            want = plain.infer({spec.input_name: x[:rows]})[spec.output_name]
            got = graphed.infer({spec.input_name: x[:rows]})[spec.output_name]
            np.testing.assert_array_equal(got, want)
        assert set(graphed._graphs) | set(graphed.graph_fallbacks) == {1, 8, 16}


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_inputs_outside_the_profile_and_version_compatible_plans(trained_mnist, mnist_test, tmp_path):
    from formats.errors import BackendInputError
    from runtime.backends.tensorrt import TensorRTBackend

    _, onnx_path = trained_mnist["mnist_cnn"]
    plan = _built(onnx_path, tmp_path, "m.fp32.plan", min_batch=2, opt_batch=4, max_batch=8)
    x = np.zeros((1, 1, 28, 28), np.float32)
    with TensorRTBackend(plan) as backend, pytest.raises(BackendInputError, match="outside the engine's optimization"):
        backend.infer({backend.inputs[0].name: x})
    compatible = _built(onnx_path, tmp_path, "v.fp32.plan", version_compatible=True)
    with TensorRTBackend(compatible) as backend:  # needs engine_host_code_allowed: never loaded before
        assert backend.infer({backend.inputs[0].name: np.zeros((2, 1, 28, 28), np.float32)})


@pytest.mark.parametrize(
    "flags, host_code",
    [
        ({"version_compatible": True}, True),  # a version-compatible plan never loaded: host code was not allowed
        ({"version_compatible": False}, False),  # ... and only such a plan gets it
    ],
)
def test_the_runtime_is_set_up_as_the_manifest_requires(flags, host_code):
    # (The DLA core is set the same way, but TensorRT-RTX has no DLA and keeps DLA_core at -1: not shown here.)
    trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    from formats.engine_manifest import MANIFEST_FORMAT, EngineManifest
    from runtime.backends.tensorrt import make_runtime

    manifest = EngineManifest.from_dict(
        dict(
            plan_sha256="0" * 64,
            plan_bytes=1,
            source_onnx="m.onnx",
            source_sha256="0" * 64,
            flavour="tensorrt_rtx",
            trt_version=trt.__version__,
            precision="fp16",
            quantization_path="strongly-typed",
            profiles=[],
            build_flags=flags,
            spec={},
            format=MANIFEST_FORMAT,
        ),
        "test manifest",
    )
    runtime = make_runtime(trt, trt.Logger(trt.Logger.ERROR), manifest)  # the real TensorRT-RTX runtime object
    assert runtime.engine_host_code_allowed is host_code
