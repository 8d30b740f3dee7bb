"""Per-request validation in the Python-backend model, through the real Triton server (issue 21, finding 2): a
request whose preprocessed ``input`` tensor holds NaN or Inf fails alone, with one clean line (no traceback, no
server path), while the good requests Triton batched with it in the same ``execute()`` are answered."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.hardening.tiny_models import write_model
from tests.serving.test_serve import _NO_SERVER, ServeProcess

pytestmark = pytest.mark.skipif(_NO_SERVER is not None, reason=f"no Triton server here: {_NO_SERVER}")


@pytest.fixture(scope="module")
def served_tiny(tmp_path_factory):
    from serving.repository import ServingBackend, TritonOptions, write_repository

    root = tmp_path_factory.mktemp("tiny_repo")
    model = write_model(root / "model")
    # A long queue delay makes the concurrent requests below share execute() calls: bad ones beside good ones.
    options = TritonOptions(max_batch=32, preferred_batches=(), max_queue_delay_us=300_000, top_k=3)
    write_repository(model, root / "repo", options=options, backend=ServingBackend.PYTHON)
    server = ServeProcess.start(root / "repo", "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0")
    yield server, model
    assert server.stop() == 0, server.process.stderr.read()


def test_a_nan_or_inf_tensor_fails_only_its_own_request(served_tiny):
    from tritonclient.utils import InferenceServerException

    from runtime.model import Classifier
    from runtime.postprocess import to_probabilities
    from serving.triton_client import Protocol, TritonClassifier

    server, model = served_tiny
    rng = np.random.default_rng(0)
    good = [rng.random((2, 1, 28, 28), dtype=np.float32) for _ in range(12)]
    bad = {"nan": np.full((1, 1, 28, 28), np.nan, np.float32), "inf": np.zeros((3, 1, 28, 28), np.float32)}
    bad["inf"][2, 0, 5, 5] = np.inf

    def send(request_id: str, batch: np.ndarray):
        with TritonClassifier(server.info["grpc"], "tiny", Protocol.GRPC) as client:
            try:
                return client.classify_tensor(batch, "input", request_id=request_id)
            except InferenceServerException as exc:
                return exc

    def executions() -> int:
        with urllib.request.urlopen(f"http://{server.info['http']}/v2/models/tiny/stats", timeout=5) as response:
            return json.loads(response.read())["model_stats"][0]["execution_count"]

    before = executions()
    with ThreadPoolExecutor(16) as pool:
        futures = {f"good-{i}": pool.submit(send, f"good-{i}", batch) for i, batch in enumerate(good)}
        futures.update({f"bad-{kind}": pool.submit(send, f"bad-{kind}", batch) for kind, batch in bad.items()})
        answers = {name: future.result(timeout=120) for name, future in futures.items()}
    assert executions() - before < len(answers), "no two requests shared an execute(): the test proves nothing"
    with Classifier.from_path(model) as classifier:
        for i, batch in enumerate(good):
            answer = answers[f"good-{i}"]
            assert not isinstance(answer, Exception), answer
            want = to_probabilities(classifier.run(batch), classifier.spec)
            np.testing.assert_allclose(answer.probabilities, want, rtol=1e-5, atol=1e-6)
    for kind, sample in (("nan", 0), ("inf", 2)):
        error = answers[f"bad-{kind}"]
        assert isinstance(error, InferenceServerException), error
        message = error.message()
        assert message == (
            f"request 'bad-{kind}': 'input' sample(s) [{sample}] hold NaN or Inf; send finite values "
            "(preprocessed as the model's spec.json says)"
        ), message
        assert error.status() == "StatusCode.INVALID_ARGUMENT"
