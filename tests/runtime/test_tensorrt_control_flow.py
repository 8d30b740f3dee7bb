"""The TensorRT backend's control flow on the fake-TensorRT double (tests/runtime/fake_tensorrt.py) under the real
``runtime.cuda`` code: CUDA-graph capture failure, one context per graphed batch size, checked TensorRT returns,
a deactivate that frees everything, the device id, DLA padding (issue 24, findings 1, 2, 3, 7, 10)."""

import numpy as np
import pytest

from formats.errors import ModelLoadError
from runtime import cuda
from runtime.backends.tensorrt import TensorRTBackend
from tests.runtime.fake_tensorrt import OK, EngineBehaviour, expected, install

SEQUENCE = (1, 8, 16, 8)  # the sequence: back to 8 after 16


def _x(rows: int) -> np.ndarray:
    return np.random.default_rng(rows).random((rows, 4), np.float32)


def test_a_failed_capture_runs_without_a_graph_and_says_why(monkeypatch, tmp_path):
    # execute_async_v3 returns False while capturing: trtexec ends the capture, clears the error, runs plain.
    plan, cudart, _ = install(monkeypatch, tmp_path, EngineBehaviour(uncapturable=True))
    with TensorRTBackend(plan, cuda_graphs=True) as backend:
        for rows in SEQUENCE:
            np.testing.assert_array_equal(backend.infer({"x": _x(rows)})["y"], expected(_x(rows)))
        assert set(backend.graph_fallbacks) == {1, 8, 16}
        assert "not permitted in a CUDA graph" in backend.graph_fallbacks[8]
        assert backend._graphs == {}
    assert cudart.sticky == OK and not cudart.capturing  # capture ended, sticky error cleared
    assert cudart.graphs_launched == 0


def test_graphed_batch_sizes_1_8_16_8_match_plain_runs(monkeypatch, tmp_path):
    # One context re-planned by set_input_shape (8 → 16 → 8) would replay graph 8 against moved state.
    plan, cudart, engine = install(monkeypatch, tmp_path)
    with TensorRTBackend(plan) as plain, TensorRTBackend(plan, cuda_graphs=True) as graphed:
        for _ in range(2):
            for rows in SEQUENCE:
                want = plain.infer({"x": _x(rows)})["y"]
                np.testing.assert_array_equal(want, expected(_x(rows)))
                np.testing.assert_array_equal(graphed.infer({"x": _x(rows)})["y"], want)
        assert set(graphed._graphs) == {1, 8, 16} and not graphed.graph_fallbacks
        assert len(graphed._graph_contexts) == 3  # one execution context per graphed batch size
    assert cudart.graphs_launched == 2 * len(SEQUENCE) - 3  # every call after each size's first is a replay


def test_no_execution_context_is_a_clear_error_and_frees_what_was_made(monkeypatch, tmp_path):
    plan, cudart, _ = install(monkeypatch, tmp_path, EngineBehaviour(no_context=True))
    with pytest.raises(ModelLoadError, match="could not create an execution context.*GPU memory"):
        TensorRTBackend(plan).activate()
    assert cudart.streams == 0 and not cudart.live


def test_a_refused_tensor_address_is_an_error(monkeypatch, tmp_path):
    plan, cudart, _ = install(monkeypatch, tmp_path, EngineBehaviour(refuse_address=True))
    with pytest.raises(ModelLoadError, match="refused the device address of tensor 'x'"):
        TensorRTBackend(plan).activate()
    assert not cudart.live  # the buffers allocated before the refusal were freed


def test_deactivate_frees_everything_when_one_free_fails(monkeypatch, tmp_path):
    plan, cudart, _ = install(monkeypatch, tmp_path, fail_free=0)
    backend = TensorRTBackend(plan).activate()
    assert len(cudart.live) == 4  # pinned + device for x and y
    with pytest.raises(cuda.CudaError, match="cudaErrorInvalidValue"):
        backend.deactivate()
    assert len(cudart.live) == 1 and cudart.frees == 4  # only the failed one is left: every other free ran
    assert cudart.streams == 0


def test_the_device_id_is_made_current(monkeypatch, tmp_path):
    plan, cudart, _ = install(monkeypatch, tmp_path, devices=2)
    with TensorRTBackend(plan, device_id=1) as backend:
        assert cudart.current_device == 1
        np.testing.assert_array_equal(backend.infer({"x": _x(3)})["y"], expected(_x(3)))
    with pytest.raises(ModelLoadError, match=r"cudaSetDevice\(2\) failed: this machine has 2 GPU\(s\)"):
        TensorRTBackend(plan, device_id=2).activate()


def test_a_dla_plan_pads_the_last_chunk_to_its_build_shape(monkeypatch, tmp_path):
    # A DLA plan has min = opt = max: a 20-row request runs as 8 + 8 + (4 padded to 8).
    plan, _, engine = install(monkeypatch, tmp_path, EngineBehaviour(profile=((8, 4), (8, 4), (8, 4))))
    x = _x(20)
    with TensorRTBackend(plan) as backend:
        np.testing.assert_array_equal(backend.infer({"x": x})["y"], expected(x))
    assert engine.enqueues == 3


def test_stage_times_and_the_trtexec_figure(monkeypatch, tmp_path):
    # time_stages: the split trtexec reports; compute_only_ms: one graph launch between two events, no copies.
    from benchmarks.stages import trtexec_equivalent

    plan, cudart, _ = install(monkeypatch, tmp_path)
    with TensorRTBackend(plan, cuda_graphs=True, time_stages=True) as backend:
        backend.infer({"x": _x(8)})
        assert list(backend.last_stage_ms) == ["stage_in", "h2d", "gpu_compute", "d2h", "enqueue", "sync", "copy_out"]
        launched = cudart.graphs_launched
        figure = trtexec_equivalent(backend, {"x": _x(8)}, duration_s=0.0, min_iterations=3)
        assert figure.median_ms == 0.5 and figure.iterations == 3  # the fake's event time
        assert cudart.graphs_launched - launched == 2 * 3  # per sample: the warm infer, then the bare launch


def test_no_memory_for_a_graph_context_runs_that_size_plain(monkeypatch, tmp_path):
    plan, _, engine = install(monkeypatch, tmp_path)
    with TensorRTBackend(plan, cuda_graphs=True) as backend:
        engine.behaviour.no_context = True  # the shared context exists; a second one cannot be made
        np.testing.assert_array_equal(backend.infer({"x": _x(4)})["y"], expected(_x(4)))
        assert "could not create an execution context" in backend.graph_fallbacks[4]
