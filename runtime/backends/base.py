"""The one backend lifecycle shared by every backend (the Polygraphy pattern).

A backend is built from a path or a zero-argument loader and touches nothing until
``activate()`` (or ``with backend:``). The public ``infer`` checks the feed against the model's
I/O table — names, dtypes, ranks and fixed dimensions — then calls the private ``_infer``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from formats.errors import BackendInputError


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a model. ``None`` in ``shape`` is a dynamic dimension."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]"


class Backend(abc.ABC):
    """activate / infer / deactivate, usable as a context manager.

    What a backend may add, declared here with defaults so callers never probe with ``hasattr``: ``metadata()``
    (the model's string metadata), ``execution()`` (how it runs, for result files) and stage timing (a backend
    that can split its time into stages fills ``last_stage_ms`` while ``time_stages`` is on: set from its options,
    or switched on by a measurement).
    """

    time_stages: bool = False  # measure the stages of each call (costs a little per call)

    def __init__(self) -> None:
        self._active = False
        self.last_stage_ms: dict[str, float] = {}  # stage → milliseconds of the last call; empty: not measured

    # lifecycle ---------------------------------------------------------------------------

    def activate(self) -> Backend:
        if not self._active:
            self._activate()
            self._expected = {t.name: t for t in self.inputs}  # the feed check's table, built once
            self._active = True
        return self

    def deactivate(self) -> None:
        if self._active:
            self._deactivate()
            self._active = False

    def __enter__(self) -> Backend:
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    @property
    def active(self) -> bool:
        return self._active

    # what a backend may tell ----------------------------------------------------------------

    def metadata(self) -> dict[str, str]:
        """The model file's string metadata (an ONNX file's ``metadata_props``); none by default."""
        return {}

    def execution(self) -> dict | None:
        """How the backend runs (providers, IOBinding, CUDA graphs…) for result files; None: nothing to say."""
        return None

    # I/O ---------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def inputs(self) -> tuple[TensorInfo, ...]:
        """The input table (valid once active)."""

    @property
    @abc.abstractmethod
    def outputs(self) -> tuple[TensorInfo, ...]:
        """The output table (valid once active)."""

    def infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on ``feed`` (name → array); returns name → array for every output."""
        if not self._active:
            raise RuntimeError(f"{type(self).__name__} is not active; use `with backend:` or activate()")
        self._check_feed(feed)
        return self._infer(feed)

    def _check_feed(self, feed: Mapping[str, np.ndarray]) -> None:
        expected = self._expected
        if feed.keys() != expected.keys():
            missing = sorted(set(expected) - set(feed))
            extra = sorted(set(feed) - set(expected))
            raise BackendInputError(
                f"inputs do not match the model: missing {missing}, unexpected {extra}; "
                f"the model takes {', '.join(t.describe() for t in self.inputs)}"
            )
        for name, array in feed.items():
            info = expected[name]
            if not isinstance(array, np.ndarray):
                raise BackendInputError(f"input {name!r}: expected a numpy array, got {type(array).__name__}")
            if array.dtype != info.dtype:
                raise BackendInputError(
                    f"input {name!r}: dtype {array.dtype}, expected {np.dtype(info.dtype).name} ({info.describe()})"
                )
            if array.shape[1:] != info.shape[1:] and (
                array.ndim != len(info.shape)
                or any(want is not None and got != want for got, want in zip(array.shape, info.shape))
            ):
                raise BackendInputError(f"input {name!r}: shape {tuple(array.shape)}, expected {info.describe()}")
            if array.ndim and array.shape[0] == 0:
                raise BackendInputError(f"input {name!r}: empty batch (shape {tuple(array.shape)})")
            # One cheap pass (a sum) for the common all-finite case; the exact check only when it fails.
            if array.dtype.kind == "f" and not math.isfinite(
                array.sum()
            ):  # an overflowing sum only costs the slow path
                bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
                if len(bad):
                    raise BackendInputError(
                        f"input {name!r}: sample(s) {bad[:10].tolist()} contain NaN or Inf; "
                        "check the data or the preprocessing that produced it"
                    )

    # hooks -------------------------------------------------------------------------------

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...
