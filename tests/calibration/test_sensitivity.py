"""Sensitivity ranking and exclusion on a really broken INT8 file; FP16 overflow blocking; calibration methods."""

import numpy as np
import onnx
import pytest

from calibration.calibrate_and_gate import fix_int8
from calibration.ranges import Method, calibrate, load_ranges
from calibration.variants import Precision, fp16_blocked_nodes, write_int8
from formats.artifacts import Artifacts
from runtime.spec import ModelSpec


@pytest.fixture
def broken(calibrated_cnn, tmp_path):
    """A copy of the calibrated CNN whose INT8 file clips the first Gemm's input range 50×."""
    folder, _ = calibrated_cnn
    for f in folder.iterdir():
        if f.is_file() and f.name.startswith("mnist_cnn."):
            (tmp_path / f.name).write_bytes(f.read_bytes())
    ranges = load_ranges(folder / "mnist_cnn.ranges.json")
    data = ranges.data["view"]  # the flattened features into the first Gemm
    low, high = data.range_value
    data.lowest, data.highest = np.asarray(low) / 50, np.asarray(high) / 50
    write_int8(
        folder / "mnist_cnn.prep.onnx",
        ranges,
        ModelSpec.load(folder / "mnist_cnn.json"),
        Artifacts(tmp_path, "mnist_cnn").onnx(Precision.INT8),
    )
    from calibration.ranges import save_ranges

    save_ranges(ranges, tmp_path / "mnist_cnn.ranges.json")
    from formats.calibration_run import load_run, write_run

    run, files = load_run(
        Artifacts(tmp_path, "mnist_cnn")
    )  # one run that produced the clipped file, not a mixed folder
    write_run(Artifacts(tmp_path, "mnist_cnn"), run, [tmp_path / name for name in files])
    return tmp_path


def test_exclusion_finds_the_clipped_node_and_meets_the_budget(broken, data_dir):
    from calibration.gate import run_gate

    before = {r.precision: r for r in run_gate("mnist_cnn", broken, data_dir, write=False).rows}
    assert not before["int8"].passed
    result = fix_int8(Artifacts(broken, "mnist_cnn"), data_dir, None, [Precision.INT8], log=lambda *_: None)["int8"]
    assert result["passed"] and result["ranking"][0][0] == "node_linear"  # the Gemm fed by the clipped tensor
    assert result["excluded"][0] == "node_linear" and set(result["latency_ms"]) == {
        "bs1_before",
        "bs1_after",
        "bs64_before",
        "bs64_after",
    }
    after = {r.precision: r for r in run_gate("mnist_cnn", broken, data_dir, write=False).rows}
    assert after["int8"].passed
    props = {p.key: p.value for p in onnx.load(str(broken / "mnist_cnn.int8.onnx")).metadata_props}
    assert props["edge_toolkit.int8_excluded"].startswith("node_linear")


def test_fp16_keeps_nodes_near_the_half_limit_in_fp32(calibrated_cnn):
    folder, _ = calibrated_cnn
    ranges = load_ranges(folder / "mnist_cnn.ranges.json")
    proto = onnx.load(str(folder / "mnist_cnn.prep.onnx"))
    assert fp16_blocked_nodes(proto, ranges) == []  # real activations are small
    ranges.data["relu_2"].highest = np.asarray(60000.0, np.float32)  # as if a layer ran hot
    blocked = fp16_blocked_nodes(proto, ranges)
    assert blocked and all(
        any(t == "relu_2" for t in list(n.input) + list(n.output)) for n in proto.graph.node if n.name in blocked
    )


@pytest.mark.parametrize("method", [Method.MINMAX, Method.PERCENTILE])
def test_other_calibration_methods_give_ranges_for_every_activation(calibrated_cnn, method):
    from calibration.calibration_set import load_calibration_set

    folder, _ = calibrated_cnn
    calib = load_calibration_set(Artifacts(folder, "mnist_cnn"))
    spec = ModelSpec.load(folder / "mnist_cnn.json")
    entropy = load_ranges(folder / "mnist_cnn.ranges.json")
    ranges = calibrate(folder / "mnist_cnn.prep.onnx", calib, spec, method)
    assert set(ranges.data) == set(entropy.data)
    if method is Method.MINMAX:  # min/max covers at least what entropy keeps
        for name, data in ranges.items():
            assert float(np.max(data.range_value[1])) >= float(np.max(entropy[name].range_value[1])) - 1e-5
