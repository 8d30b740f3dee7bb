"""CI builds every demo model in every precision with the real TensorRT-RTX builder, ahead of time on the CPU.

The weights are untrained (random init; ImageNet for EfficientNet-Lite0's backbone): buildability depends on
the graph, not the accuracy. Each model is exported, calibrated on a small real training sample (the real
pipeline), and each precision built: plan non-empty, manifest valid, build time printed.
"""

import pytest

from calibration.calibrate import CalibrationOptions, calibrate_model
from calibration.ranges import Method
from engine.build import BuildOptions, build_engine
from export.onnx_export import export_fp32
from formats.engine_manifest import preflight
from train.cards import get_card

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13` (make install)")

MODELS = {
    "mnist_mlp": None,
    "mnist_cnn": None,
    "asl_cnn": None,
    "efficientnet_lite0_transfer": ("daisy", "dandelion", "roses", "sunflowers", "tulips"),
}
BUILT: dict = {}


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data_dir):
    folders = {}
    for name, labels in MODELS.items():
        entry = get_card(name)
        spec = entry.spec(labels=labels) if labels else entry.spec()
        weights = "imagenet" if labels else "none"
        folder = tmp_path_factory.mktemp(name)
        export_fp32(entry.build(spec, weights), spec, folder)
        calibrate_model(name, folder, data_dir, CalibrationOptions(method=Method.MINMAX, size=32), log=lambda *_: None)
        folders[name] = folder
    return folders


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_builds_in_every_precision(exported, name, precision):
    onnx_path = exported[name] / f"{name}.{precision}.onnx"
    plan, manifest = build_engine(
        onnx_path, options=BuildOptions(1, 8, 32, flavour="tensorrt_rtx"), log=lambda *_: None
    )
    assert plan.stat().st_size > 10_000
    assert preflight(plan).precision == precision and manifest.quantization_path == "strongly-typed"
    BUILT[(name, precision)] = (manifest.build_seconds, manifest.plan_bytes)


def test_print_build_table(capsys):
    if not BUILT:
        pytest.skip("no builds ran in this session (run the whole module)")
    with capsys.disabled():
        print("\nTensorRT-RTX ahead-of-time builds (this CPU machine):")
        for (name, precision), (seconds, size) in sorted(BUILT.items()):
            print(f"  {name:28} {precision:5} {seconds:6.2f} s build  {size / 1e6:7.2f} MB")
    assert len(BUILT) == 3 * len(MODELS)
