"""A small client for the Python-backend classifier (``python -m serving.repository --backend python``).

``TritonClassifier(url, model, Protocol.GRPC).classify([png_bytes, ...], request_id="r1")`` sends
encoded images (or ``classify_tensor`` a preprocessed batch) with ``tritonclient`` and returns the
probabilities and top-k labels. ``RetryPolicy`` retries what a restarting server causes (connection
refused or reset, gRPC UNAVAILABLE), with a fresh connection each time, a bounded number of times
and within a deadline; a request the server rejected (a bad image) is never retried. The server
echoes the request id, and the client checks it, so a retried request is counted once.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from serving.triton_model import IMAGE_INPUT, PROBABILITIES, TOP_K_INDICES, TOP_K_LABELS

T = TypeVar("T")
OUTPUTS = (PROBABILITIES, TOP_K_LABELS, TOP_K_INDICES)


class Protocol(str, enum.Enum):
    HTTP = "http"
    GRPC = "grpc"


@dataclass(frozen=True)
class Classified:
    """One answered request: ``probabilities`` (n, classes), ``labels`` and ``indices`` (n, k), best first."""

    request_id: str
    probabilities: np.ndarray
    labels: list[list[str]]
    indices: np.ndarray
    attempts: int = 1


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1  # 1 = no retries
    backoff_s: float = 0.05  # doubled after each failure, up to max_backoff_s
    max_backoff_s: float = 1.0
    deadline_s: float = 60.0


def _module(protocol: Protocol):
    if protocol is Protocol.GRPC:
        import tritonclient.grpc as module
    else:
        import tritonclient.http as module
    return module


def is_transient(exc: BaseException) -> bool:
    """A failure of the connection (server down or restarting), not an answer from the server."""
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return True
    status = str(getattr(exc, "status", lambda: "")() or "")
    message = str(getattr(exc, "message", lambda: "")() or exc)
    if status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"):
        return True
    # The HTTP client reports refused or reset connections as messages rather than OSErrors.
    return any(
        s in message
        for s in ("Connection refused", "connection reset", "Connection reset", "failed to connect", "Broken pipe")
    )


class TritonClassifier:
    """One connection (HTTP or gRPC) to one model; reopened after a transient failure."""

    def __init__(
        self,
        url: str,
        model: str,
        protocol: Protocol = Protocol.GRPC,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url, self.model, self.protocol, self.timeout_s = url, model, Protocol(protocol), timeout_s
        self.retry = retry or RetryPolicy()
        self._module = _module(self.protocol)
        self._client = None

    def _connect(self):
        if self._client is None:
            if self.protocol is Protocol.GRPC:
                self._client = self._module.InferenceServerClient(self.url)
            else:
                self._client = self._module.InferenceServerClient(
                    self.url, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
                )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            finally:
                self._client = None

    def __enter__(self) -> TritonClassifier:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def classify(self, images: Sequence[bytes], request_id: str) -> Classified:
        """Encoded images (PNG, JPEG, …) → top-k; ``tritonclient.utils.InferenceServerException`` if rejected."""
        data = np.empty((len(images), 1), dtype=np.object_)
        data[:, 0] = list(images)
        return self._infer(IMAGE_INPUT, data, "BYTES", request_id)

    def classify_tensor(self, batch: np.ndarray, input_name: str, request_id: str) -> Classified:
        """A preprocessed (n, C, H, W) float32 batch → top-k."""
        return self._infer(input_name, np.ascontiguousarray(batch, np.float32), "FP32", request_id)

    def _infer(self, name: str, data: np.ndarray, datatype: str, request_id: str) -> Classified:
        def once() -> Classified:
            m = self._module
            tensor = m.InferInput(name, list(data.shape), datatype)
            tensor.set_data_from_numpy(data)
            outputs = [m.InferRequestedOutput(o) for o in OUTPUTS]
            kwargs = {"client_timeout": self.timeout_s} if self.protocol is Protocol.GRPC else {}
            result = self._connect().infer(self.model, [tensor], outputs=outputs, request_id=request_id, **kwargs)
            answered = (
                result.get_response().id if self.protocol is Protocol.GRPC else result.get_response().get("id", "")
            )
            if answered != request_id:  # an answer to another request would be a duplicate here
                raise RuntimeError(f"asked with request id {request_id!r}, answered for {answered!r}")
            labels = result.as_numpy(TOP_K_LABELS)
            return Classified(
                request_id,
                result.as_numpy(PROBABILITIES),
                [[x.decode() for x in row] for row in labels],
                result.as_numpy(TOP_K_INDICES),
            )

        return with_retries(once, self.retry, on_transient=self.close)


def with_retries(call: Callable[[], T], policy: RetryPolicy, on_transient: Callable[[], None] | None = None) -> T:
    """``call()``, retried after transient failures only; the last error when attempts or time run out.

    A result that is a ``Classified`` records how many attempts it took.
    """
    deadline = time.monotonic() + policy.deadline_s
    delay = policy.backoff_s
    for attempt in range(1, max(1, policy.attempts) + 1):
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 — classified right below; anything else is re-raised
            if not is_transient(exc) or attempt >= policy.attempts or time.monotonic() + delay > deadline:
                raise
            if on_transient is not None:
                on_transient()  # a fresh connection: no stale pooled socket, no long gRPC reconnect backoff
            time.sleep(delay)
            delay = min(delay * 2, policy.max_backoff_s)
            continue
        if isinstance(result, Classified) and attempt > 1:
            result = Classified(result.request_id, result.probabilities, result.labels, result.indices, attempt)
        return result
    raise AssertionError("unreachable")
