"""The batcher validates each request before batching it (issue 13, findings 11 and 26): a bad request fails
alone, shutdown works from a done-callback, and nonsense parameters are refused. Real ONNX Runtime backend."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from formats.errors import InputError
from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
from runtime.batcher import DynamicBatcher
from runtime.model import Classifier
from tests.hardening.tiny_models import write_model


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    with Classifier.from_path(
        write_model(tmp_path_factory.mktemp("tiny")), BackendOptions(OnnxRuntimeOptions(threads=1))
    ) as clf:
        yield clf


def good(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((1, 28, 28), dtype=np.float32)


@pytest.mark.parametrize(
    "bad, reason",
    [
        (np.full((1, 28, 28), np.nan, np.float32), "NaN or Inf"),
        (np.zeros((1, 28, 28), np.float64), "dtype float64, expected float32"),
        (np.zeros((3, 28, 28), np.float32), r"shape \(3, 28, 28\), expected \(1, 28, 28\)"),
        (np.array(["x"], dtype=object), "not numeric"),
    ],
)
def test_one_bad_request_fails_alone(classifier, bad, reason):
    expected = classifier.run(np.stack([good(i) for i in range(6)]))
    with DynamicBatcher(
        classifier.run, max_batch=8, max_delay_ms=50, sample_shape=(1, 28, 28), dtype=np.float32
    ) as batcher:
        futures = (
            [batcher.submit(good(i)) for i in range(3)]
            + [batcher.submit(bad)]
            + [batcher.submit(good(i)) for i in range(3, 6)]
        )
        with pytest.raises(InputError, match=reason):
            futures[3].result(timeout=10)
        rows = [f.result(timeout=10) for f in futures[:3] + futures[4:]]
    np.testing.assert_allclose(np.stack(rows), expected, rtol=1e-5, atol=1e-6)
    assert batcher.stats.failed == 1 and batcher.stats.requests == 6


def test_odd_shapes_without_a_declared_shape_run_in_their_own_batch(classifier):
    with DynamicBatcher(classifier.run, max_batch=8, max_delay_ms=50) as batcher:
        ok = [batcher.submit(good(i)) for i in range(3)]
        odd = batcher.submit(np.zeros((2, 28, 28), np.float32))
        assert odd.exception(timeout=10) is not None
        assert all(f.result(timeout=10).shape == (10,) for f in ok)


def test_shutdown_from_a_done_callback(classifier):
    batcher = DynamicBatcher(classifier.run, max_batch=4, max_delay_ms=1)
    errors, done = [], threading.Event()

    def stop(_future):
        try:
            batcher.shutdown()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)
        done.set()

    first = batcher.submit(good(0))
    first.add_done_callback(stop)
    assert done.wait(10) and errors == []
    batcher.shutdown()  # from the caller's thread afterwards: returns, nothing left pending
    assert first.result(timeout=1).shape == (10,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_delay_ms": float("nan")},
        {"max_batch": 2.5},
        {"max_batch": True},
        {"queue_size": 0},
        {"max_delay_ms": float("inf")},
    ],
)
def test_nonsense_parameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        DynamicBatcher(lambda x: x, **kwargs)
