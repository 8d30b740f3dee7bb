"""The dynamic batcher under load with the real ONNX Runtime backend: every request answered exactly once,
with the same answer as unbatched inference; cancellation and shutdown mid-stream leave nothing pending."""

import threading
import time
from concurrent.futures import CancelledError

import numpy as np
import pytest

from runtime.backends.table import BackendOptions, OnnxRuntimeOptions
from runtime.batcher import BatcherClosed, DynamicBatcher, QueueFull
from runtime.model import Classifier
from runtime.preprocess import normalize


@pytest.fixture(scope="module")
def classifier(trained_mnist):
    _, onnx_path = trained_mnist["mnist_cnn"]
    with Classifier.from_path(onnx_path, BackendOptions(OnnxRuntimeOptions(threads=1))) as clf:
        yield clf


@pytest.fixture(scope="module")
def inputs(classifier, mnist_test):
    return normalize(mnist_test.images[:1000], classifier.spec)


def test_8_threads_x_1000_requests_match_unbatched(classifier, inputs):
    expected = np.concatenate([classifier.run(inputs[i : i + 1]) for i in range(len(inputs))])
    calls = []

    def run(batch):
        calls.append(len(batch))
        return classifier.run(batch)

    results = [[None] * len(inputs) for _ in range(8)]
    with DynamicBatcher(run, max_batch=32, max_delay_ms=2, queue_size=64) as batcher:

        def client(t):
            futures = [batcher.submit(inputs[i]) for i in range(len(inputs))]
            for i, f in enumerate(futures):
                results[t][i] = f.result(timeout=60)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert sum(calls) == 8 * len(inputs)  # each request ran once, no more
    assert max(calls) <= 32 and batcher.stats.mean_batch > 1.5  # it really batched
    for t in range(8):
        got = np.stack(results[t])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
        assert np.array_equal(got.argmax(1), expected.argmax(1))


def test_cancel_and_shutdown_mid_stream_resolve_everything_once(classifier, inputs):
    gate = threading.Event()

    def slow(batch):
        gate.wait(5)
        return classifier.run(batch)

    batcher = DynamicBatcher(slow, max_batch=4, max_delay_ms=1, queue_size=512)
    futures = [batcher.submit(inputs[i % 100]) for i in range(300)]
    for f in futures[50:100]:
        f.cancel()
    stopper = threading.Thread(target=batcher.shutdown, kwargs={"cancel_pending": True})
    stopper.start()
    time.sleep(0.05)
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive()
    outcomes = {"result": 0, "cancelled": 0}
    for f in futures:
        assert f.done()
        try:
            f.result(timeout=0)
            outcomes["result"] += 1
        except CancelledError:
            outcomes["cancelled"] += 1
    assert outcomes["result"] + outcomes["cancelled"] == 300 and outcomes["cancelled"] >= 50
    with pytest.raises(BatcherClosed):
        batcher.submit(inputs[0])


def test_shutdown_without_cancel_finishes_the_queue(classifier, inputs):
    batcher = DynamicBatcher(classifier.run, max_batch=8, max_delay_ms=5)
    futures = [batcher.submit(inputs[i]) for i in range(100)]
    batcher.shutdown()
    assert all(f.done() and f.exception() is None for f in futures)


def test_backend_errors_reach_every_request_of_the_batch(inputs):
    def broken(batch):
        raise RuntimeError("backend fell over")

    with DynamicBatcher(broken, max_batch=8, max_delay_ms=20) as batcher:
        futures = [batcher.submit(inputs[i]) for i in range(8)]
        for f in futures:
            with pytest.raises(RuntimeError, match="fell over"):
                f.result(timeout=10)


def test_a_wrong_shape_fails_alone(classifier, inputs):
    with DynamicBatcher(classifier.run, max_batch=2, max_delay_ms=50) as batcher:
        a, b = batcher.submit(inputs[0]), batcher.submit(np.zeros((3, 5, 5), np.float32))
        assert b.exception(timeout=10) is not None  # the backend refuses it, in a batch of its own
        assert a.result(timeout=10).shape == (10,)


def test_backpressure_times_out_with_queue_full(inputs):
    release, busy = threading.Event(), threading.Event()

    def stuck(batch):
        busy.set()
        release.wait(5)
        return batch.reshape(len(batch), -1)[:, :10]

    batcher = DynamicBatcher(stuck, max_batch=1, max_delay_ms=0, queue_size=2)
    batcher.submit(inputs[0])
    assert busy.wait(5)  # the worker holds the first request
    batcher.submit(inputs[1])
    batcher.submit(inputs[2])
    with pytest.raises(QueueFull, match="queue stayed full"):
        batcher.submit(inputs[3], timeout=0.1)
    release.set()
    batcher.shutdown()
