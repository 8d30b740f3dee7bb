"""The engine builder with the real TensorRT-RTX builder (ahead of time, on the CPU): every precision builds,
manifests are valid, the cache reuses and rebuilds, and bad ONNX files get our message."""

import json

import onnx
import pytest

from engine.build import BuildOptions, EngineBuildError, build_engine, inspect_onnx
from engine.cache import ensure_engine
from formats.artifacts import plan_golden, plan_manifest
from formats.engine_manifest import preflight

trt = pytest.importorskip(
    "tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13` (make install does)"
)
SMALL = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx")


@pytest.mark.parametrize("model", ["mnist_mlp", "mnist_cnn"])
def test_fp32_builds_with_manifest(trained_mnist, tmp_path, model):
    _, onnx_path = trained_mnist[model]
    plan, manifest = build_engine(onnx_path, tmp_path / f"{model}.fp32.plan", SMALL, log=lambda *_: None)
    assert plan.stat().st_size > 1000 and plan.read_bytes()[:4] == b"vtrt"
    assert manifest.quantization_path == "strongly-typed" and manifest.flavour == "tensorrt_rtx"
    assert manifest.profiles[0].max[0] == 16 and manifest.spec["name"] == model
    assert json.loads(plan_manifest(plan).read_text())["plan_sha256"] == manifest.plan_sha256
    assert preflight(plan, "tensorrt_rtx", trt.__version__).plan_bytes == plan.stat().st_size
    warned = json.loads(plan_manifest(plan).read_text())["extra"]["build_warnings"]
    assert warned["count"] == len(warned["first"]) or warned["count"] > 20  # counted, not dropped


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_calibrated_variants_build_with_golden_io(calibrated_cnn, tmp_path, precision):
    folder, _ = calibrated_cnn
    from engine.golden import golden_from_calibration

    onnx_path = folder / f"mnist_cnn.{precision}.onnx"
    golden = golden_from_calibration(onnx_path, count=4)
    plan, manifest = build_engine(onnx_path, tmp_path / f"mnist_cnn.{precision}.plan", SMALL, golden, lambda *_: None)
    assert manifest.precision == precision and manifest.calibration_sha256
    assert manifest.golden.count == 4 and plan_golden(plan).is_file()


def test_engine_cache_reuses_then_rebuilds_on_a_new_profile(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_mlp"]
    out = tmp_path / "m.plan"
    _, _, first = ensure_engine(onnx_path, out, SMALL, log=lambda *_: None)
    _, _, second = ensure_engine(onnx_path, out, SMALL, log=lambda *_: None)
    wider = BuildOptions(min_batch=1, opt_batch=4, max_batch=32, flavour="tensorrt_rtx")
    _, manifest, third = ensure_engine(onnx_path, out, wider, log=lambda *_: None)
    assert (first, second) == ("no engine yet", "reused")
    assert third.startswith("stale: profile") and manifest.profiles[0].max[0] == 32


def test_a_corrupted_plan_is_rebuilt_not_reused(trained_mnist, tmp_path):
    _, onnx_path = trained_mnist["mnist_mlp"]
    out = tmp_path / "m.plan"
    ensure_engine(onnx_path, out, SMALL, log=lambda *_: None)
    out.write_bytes(out.read_bytes()[:1000])
    _, _, reason = ensure_engine(onnx_path, out, SMALL, log=lambda *_: None)
    assert reason.startswith("unusable") and "truncated" in reason


def test_onnx_runtime_default_qdq_with_int32_bias_is_rejected_with_our_message(trained_mnist, data_dir, tmp_path):
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    ckpt, onnx_path = trained_mnist["mnist_cnn"]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": np.random.default_rng(0).random((8, 1, 28, 28), np.float32)}])

        def get_next(self):
            return next(self.batches, None)

    default_qdq = tmp_path / "ort_default.onnx"
    quantize_static(
        str(onnx_path),
        str(default_qdq),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    with pytest.raises(EngineBuildError, match="int32 bias.*python -m calibration"):
        build_engine(default_qdq, tmp_path / "x.plan", SMALL, log=lambda *_: None)
    assert not (tmp_path / "x.plan").exists()


def test_corrupted_onnx_is_rejected(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"\xff" * 200)
    with pytest.raises(EngineBuildError, match="not a valid ONNX model"):
        inspect_onnx(bad)


def test_the_parser_message_is_ours_not_a_dump(tmp_path):
    node = onnx.helper.make_node("NoSuchOp", ["x"], ["y"], domain="")
    graph = onnx.helper.make_graph(
        [node],
        "g",
        [onnx.helper.make_tensor_value_info("x", 1, [1, 1, 2, 2])],
        [onnx.helper.make_tensor_value_info("y", 1, [1, 1, 2, 2])],
    )
    path = tmp_path / "unknown.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    with pytest.raises(EngineBuildError) as info:
        build_engine(path, tmp_path / "u.plan", SMALL, log=lambda *_: None)
    assert "not a valid ONNX model" in str(info.value) or "parser rejected" in str(info.value)
    assert "\n" not in str(info.value)


def test_implicit_int8_is_refused_where_there_are_no_calibrators(calibrated_cnn, tmp_path):
    folder, _ = calibrated_cnn
    options = BuildOptions(calib_cache=folder / "mnist_cnn.calib.cache", flavour="tensorrt_rtx")
    with pytest.raises(EngineBuildError, match="no calibrator classes"):
        build_engine(folder / "mnist_cnn.prep.onnx", tmp_path / "i.plan", options, log=lambda *_: None)


def test_bad_profile_is_refused():
    with pytest.raises(EngineBuildError, match="min ≤ opt ≤ max"):
        BuildOptions(min_batch=8, opt_batch=4, max_batch=16)


def test_fp32_plans_are_built_without_tf32_unless_asked(trained_mnist, tmp_path):
    # TensorRT turns TF32 on by default (Ampere+, Orin): the fp32 self-test budget (1e-3) would not hold
    _, onnx_path = trained_mnist["mnist_mlp"]
    _, exact = build_engine(onnx_path, tmp_path / "a.plan", SMALL, log=lambda *_: None)
    fast = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx", tf32=True)
    _, tf32 = build_engine(onnx_path, tmp_path / "b.plan", fast, log=lambda *_: None)
    assert exact.build_flags.tf32 is False and tf32.build_flags.tf32 is True
    assert "--tf32" in tf32.rebuild_command and "--tf32" not in exact.rebuild_command


def test_engine_cache_key_covers_the_build_flags(trained_mnist, tmp_path):
    # a plan built with one workspace / TF32 setting was "reused" for another before
    _, onnx_path = trained_mnist["mnist_mlp"]
    out = tmp_path / "m.plan"
    ensure_engine(onnx_path, out, SMALL, log=lambda *_: None)
    other = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx", workspace_mib=64)
    _, manifest, reason = ensure_engine(onnx_path, out, other, log=lambda *_: None)
    assert reason.startswith("stale: workspace_mib None → 64") and manifest.build_flags.workspace_mib == 64
    _, _, reason = ensure_engine(onnx_path, out, other, log=lambda *_: None)
    assert reason == "reused"
    tf32 = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx", workspace_mib=64, tf32=True)
    assert ensure_engine(onnx_path, out, tf32, log=lambda *_: None)[2] == "stale: tf32 False → True"


def test_dla_is_refused_where_there_is_none_and_for_fp32(calibrated_cnn, tmp_path):
    folder, _ = calibrated_cnn
    dla = BuildOptions(flavour="tensorrt_rtx", dla_core=0, min_batch=8, opt_batch=8, max_batch=8)
    with pytest.raises(EngineBuildError, match="no DLA cores"):  # was silently accepted on TensorRT-RTX
        build_engine(folder / "mnist_cnn.fp16.onnx", tmp_path / "d.plan", dla, log=lambda *_: None)
    assert not (tmp_path / "d.plan").exists()
    with pytest.raises(EngineBuildError, match="--gpu-fallback goes with --dla-core"):
        BuildOptions(gpu_fallback=True)


def test_timing_cache_never_overwrites_another_kind_of_file(calibrated_cnn, tmp_path):
    folder, _ = calibrated_cnn
    calib = tmp_path / "mnist_cnn.calib.cache"
    calib.write_bytes((folder / "mnist_cnn.calib.cache").read_bytes())
    before = calib.read_bytes()
    options = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx", timing_cache=calib)
    with pytest.raises(EngineBuildError, match="is a calibration cache, not a timing cache"):
        build_engine(folder / "mnist_cnn.fp32.onnx", tmp_path / "t.plan", options, log=lambda *_: None)
    assert calib.read_bytes() == before
    fresh = BuildOptions(min_batch=1, opt_batch=4, max_batch=16, flavour="tensorrt_rtx", timing_cache=tmp_path / "t.tc")
    build_engine(folder / "mnist_cnn.fp32.onnx", tmp_path / "t.plan", fresh, log=lambda *_: None)
    again = tmp_path / "t.tc"
    assert again.stat().st_size > 0  # written, and accepted when read back on the next build
    build_engine(folder / "mnist_cnn.fp32.onnx", tmp_path / "t2.plan", fresh, log=lambda *_: None)
