"""A dynamic batcher: single requests from many threads become batched backend calls.

``DynamicBatcher(run_batch, max_batch=32, max_delay_ms=2.0, queue_size=256)``; ``submit(x)``
returns a ``concurrent.futures.Future`` resolved with that request's row of the output. One worker
thread takes the first waiting request, then gathers more until the batch is full or
``max_delay_ms`` has passed since that first request, and calls ``run_batch`` on the stacked batch.

- Backpressure: the queue is bounded; ``submit`` blocks while it is full (or raises ``QueueFull``
  after ``timeout`` seconds).
- Cancellation: a cancelled future is skipped, never run.
- Errors: if ``run_batch`` raises, every request of that batch gets the exception.
- Shutdown: ``shutdown()`` stops intake, then finishes every queued request (or cancels them with
  ``cancel_pending=True``); every future ends resolved — a result, an error or cancelled — exactly once.

Works with any backend: ``Classifier.run`` or a bare ``backend.infer`` wrapped in a function.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from runtime.errors import RuntimeToolkitError


class QueueFull(RuntimeToolkitError):
    """The batcher's queue stayed full for the whole submit timeout."""


class BatcherClosed(RuntimeToolkitError):
    """submit() after shutdown()."""


@dataclass
class BatcherStats:
    requests: int = 0
    batches: int = 0
    cancelled: int = 0
    failed: int = 0

    @property
    def mean_batch(self) -> float:
        return self.requests / self.batches if self.batches else 0.0


_STOP = object()


class DynamicBatcher:
    def __init__(self, run_batch: Callable[[np.ndarray], np.ndarray], max_batch: int = 32,
                 max_delay_ms: float = 2.0, queue_size: int = 256) -> None:
        if max_batch < 1 or queue_size < 1 or max_delay_ms < 0:
            raise ValueError("max_batch and queue_size must be ≥ 1 and max_delay_ms ≥ 0")
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_delay = max_delay_ms / 1000.0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._closed = threading.Event()
        self._cancel_pending = False
        self._lock = threading.Lock()
        self.stats = BatcherStats()
        self._worker = threading.Thread(target=self._loop, name="edge-batcher", daemon=True)
        self._worker.start()

    # public ------------------------------------------------------------------------------

    def submit(self, item: np.ndarray, timeout: float | None = None) -> Future:
        if self._closed.is_set():
            raise BatcherClosed("the batcher is shut down; create a new one")
        future: Future = Future()
        try:
            self._queue.put((np.asarray(item), future), timeout=timeout)
        except queue.Full:
            raise QueueFull(f"the request queue stayed full ({self._queue.maxsize}) for {timeout} s; "
                            "slow down, raise queue_size or max_batch") from None
        if self._closed.is_set():  # raced with shutdown: make sure the worker's final drain saw it
            self._worker.join()
            self._drain_after_stop()
        return future

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._cancel_pending = cancel_pending
            self._closed.set()
        self._queue.put((_STOP, None))  # blocks while full: the worker keeps draining
        if wait:
            self._worker.join()
            self._drain_after_stop()

    def __enter__(self) -> "DynamicBatcher":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    # worker ------------------------------------------------------------------------------

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            item, future = self._queue.get()
            if item is _STOP:
                break
            batch = [(item, future)]
            deadline = time.perf_counter() + self.max_delay
            while len(batch) < self.max_batch:
                remaining = deadline - time.perf_counter()
                try:
                    item, future = self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else \
                        self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append((item, future))
            self._execute(batch)
        self._drain_after_stop()

    def _execute(self, batch: list[tuple[np.ndarray, Future]]) -> None:
        if self._closed.is_set() and self._cancel_pending:
            for _, future in batch:
                if future.cancel():
                    self.stats.cancelled += 1
            batch = []
        live = [(x, f) for x, f in batch if f.set_running_or_notify_cancel()]
        self.stats.cancelled += len(batch) - len(live)
        if not live:
            return
        try:
            shapes = {x.shape for x, _ in live}
            if len(shapes) != 1:
                raise ValueError(f"requests in one batch have different shapes {sorted(shapes)}; "
                                 "submit preprocessed arrays of the model's input shape")
            outputs = self._run_batch(np.stack([x for x, _ in live]))
            if len(outputs) != len(live):
                raise RuntimeError(f"run_batch returned {len(outputs)} rows for {len(live)} requests")
        except BaseException as exc:  # every request of the batch learns why
            self.stats.failed += len(live)
            for _, future in live:
                future.set_exception(exc)
            return
        self.stats.requests += len(live)
        self.stats.batches += 1
        for row, (_, future) in zip(outputs, live):
            future.set_result(row)

    def _drain_after_stop(self) -> None:
        """Resolve anything still queued once the worker has stopped (requests that raced shutdown)."""
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            return
        while True:
            try:
                item, future = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP or future is None:
                continue
            if self._cancel_pending:
                if future.cancel():
                    self.stats.cancelled += 1
            elif future.set_running_or_notify_cancel():
                future.set_exception(BatcherClosed("the batcher shut down before this request ran"))
