"""A dynamic batcher: single requests from many threads become batched backend calls.

``DynamicBatcher(run_batch, max_batch=32, max_delay_ms=2.0, queue_size=256)``; ``submit(x)``
returns a ``concurrent.futures.Future`` resolved with that request's row of the output. One worker
thread takes the first waiting request, then gathers more until the batch is full or
``max_delay_ms`` has passed since that first request, and calls ``run_batch`` on the stacked batch.

- Backpressure: the queue is bounded; ``submit`` blocks while it is full (or raises ``QueueFull``
  after ``timeout`` seconds).
- Cancellation: a cancelled future is skipped, never run.
- Validation: each request is checked when submitted (a numeric array, finite, and of ``sample_shape`` /
  ``dtype`` when given); a bad one gets an ``InputError`` on its own future and never joins a batch.
  Requests of different shapes or dtypes are run as separate batches, so one odd request fails alone.
- Errors: if ``run_batch`` raises, every request of that batch gets the exception.
- Shutdown: ``shutdown()`` stops intake, then finishes every queued request (or cancels them with
  ``cancel_pending=True``); every future ends resolved — a result, an error or cancelled — exactly once.
  It may be called from a future's done-callback (which runs on the worker thread): it then returns at once.

Works with any backend: ``Classifier.run`` or a bare ``backend.infer`` wrapped in a function.
"""

from __future__ import annotations

import math
import numbers
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from formats.errors import InputError, RuntimeToolkitError


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
    def __init__(
        self,
        run_batch: Callable[[np.ndarray], np.ndarray],
        max_batch: int = 32,
        max_delay_ms: float = 2.0,
        queue_size: int = 256,
        sample_shape: tuple[int, ...] | None = None,
        dtype: np.dtype | str | None = None,
    ) -> None:
        for name, value in (("max_batch", max_batch), ("queue_size", queue_size)):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        if not isinstance(max_delay_ms, numbers.Real) or not math.isfinite(max_delay_ms) or max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be a finite number ≥ 0, got {max_delay_ms!r}")
        self.sample_shape = tuple(sample_shape) if sample_shape is not None else None
        self.dtype = np.dtype(dtype) if dtype is not None else None
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
        array = np.asarray(item)
        problem = self._problem(array)
        if problem:  # fails alone, before it can share a batch with good requests
            future.set_running_or_notify_cancel()
            future.set_exception(InputError(f"request rejected: {problem}"))
            with self._lock:
                self.stats.failed += 1
            return future
        try:
            self._queue.put((array, future), timeout=timeout)
        except queue.Full:
            raise QueueFull(
                f"the request queue stayed full ({self._queue.maxsize}) for {timeout} s; "
                "slow down, raise queue_size or max_batch"
            ) from None
        if self._closed.is_set():  # raced with shutdown: make sure the worker's final drain saw it
            self._worker.join()
            self._drain_after_stop()
        return future

    def _problem(self, array: np.ndarray) -> str | None:
        """Why this request cannot be batched, or None."""
        if array.dtype.kind not in "biuf":
            return f"dtype {array.dtype} is not numeric; submit a preprocessed numeric array"
        if self.dtype is not None and array.dtype != self.dtype:
            return f"dtype {array.dtype}, expected {self.dtype}"
        if self.sample_shape is not None and array.shape != self.sample_shape:
            return f"shape {array.shape}, expected {self.sample_shape}"
        if array.size == 0:
            return f"empty array (shape {array.shape})"
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            return "contains NaN or Inf"
        return None

    def shutdown(self, wait: bool = True, cancel_pending: bool = False) -> None:
        with self._lock:
            if self._closed.is_set():
                return
            self._cancel_pending = cancel_pending
            self._closed.set()
        if threading.current_thread() is self._worker:
            # Called from a done-callback: the worker cannot join itself, and a blocking put on a full queue
            # would wait for the worker. A helper thread enqueues the stop; the worker drains when we return.
            threading.Thread(target=self._queue.put, args=((_STOP, None),), daemon=True).start()
            return
        self._queue.put((_STOP, None))  # blocks while full: the worker keeps draining
        if wait:
            self._worker.join()
            self._drain_after_stop()

    def __enter__(self) -> DynamicBatcher:
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
                    item, future = (
                        self._queue.get(timeout=max(remaining, 0)) if remaining > 0 else self._queue.get_nowait()
                    )
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
        groups: dict[tuple, list[tuple[np.ndarray, Future]]] = {}
        for x, f in live:  # an odd shape or dtype runs (and fails, if it must) without the others
            groups.setdefault((x.shape, x.dtype.str), []).append((x, f))
        for group in groups.values():
            self._execute_group(group)

    def _execute_group(self, live: list[tuple[np.ndarray, Future]]) -> None:
        try:
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
