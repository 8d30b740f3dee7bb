"""``edge bench power``: which power source this machine has, and its reading over a few seconds (energy per inference).

One interface over several sources (``benchmarks.power_sources``): a Jetson's INA3221 rails through sysfs or
``tegrastats`` (``VDD_IN`` on Orin, ``POM_5V_IN`` on the Nano), a discrete GPU's NVML energy counter, an x86
CPU's RAPL counters. A benchmark wraps its timed loop in a window::

    meter = find_meter()                       # None where nothing is readable here
    if meter is not None:
        meter.idle(1.0)                        # idle watts, subtracted from every window after
        with meter.window() as w:              # a thread samples while the block runs
            for _ in range(n): infer(batch)
        print(w.joules_per(n * len(batch)), w.avg_watts, w.conditions)

Counter sources (NVML, RAPL) give joules as the counter's difference; sampled sources (INA3221, tegrastats)
integrate the samples (trapezoids). Every window records the power mode (``nvpmodel``, or the GPU's power limit,
or the CPU governor), whether ``jetson_clocks`` pinned the clocks, and whether anything throttled during it.
Torch-free, numpy-free: it runs in the device venv and on a bare Jetson.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from benchmarks.power_sources import (
    JETSON_SYSFS,
    NVML,
    SOURCES,
    TEGRASTATS,
    PowerConditions,
    probe_jetson_sysfs,
    probe_nvml,
    probe_rapl,
    probe_tegrastats,
)
from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary, positive_float

__all__ = ["PowerConditions", "PowerMeter", "PowerWindow", "find_meter", "probe"]

DEFAULT_INTERVAL_S = 0.02  # 50 Hz: INA3221 averages ~1 ms conversions; tegrastats itself runs at 10 Hz


class Reader(Protocol):
    """What the meter needs of a source: instantaneous watts, or a cumulative energy counter (``counter``)."""

    source: str
    rail: str
    counter: bool

    def watts(self) -> float: ...
    def joules(self) -> float | None: ...
    def conditions(self) -> PowerConditions: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class PowerWindow:
    """Energy over one timed block: ``joules`` is gross (idle included), ``joules_per`` is net of idle per item."""

    seconds: float
    joules: float
    avg_watts: float
    idle_watts: float
    source: str
    conditions: PowerConditions
    samples: int = 0

    @property
    def net_joules(self) -> float:
        """Energy above idle over the window (never below 0: a window quieter than idle costs nothing)."""
        return max(0.0, self.joules - self.idle_watts * self.seconds)

    def joules_per(self, n: int) -> float:
        """Joules per inference (``n`` items run in the window), net of idle."""
        if n <= 0:
            raise ValueError(f"joules_per needs the number of inferences run in the window (> 0), got {n}")
        return self.net_joules / n

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "net_joules": self.net_joules}


class PendingWindow:
    """What ``with meter.window() as w`` binds: the ``PowerWindow``'s fields and ``joules_per`` once the block ended.

    ``w.result`` is the frozen ``PowerWindow`` itself; reading a field inside the block raises, since the window
    is not measured yet.
    """

    def __init__(self) -> None:
        self.result: PowerWindow | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "result":
            raise AttributeError(name)
        if self.result is None:
            raise RuntimeError(f"power window still open: read .{name} after the `with meter.window()` block")
        return getattr(self.result, name)


def integrate(samples: Sequence[tuple[float, float]]) -> float:
    """Joules from (seconds, watts) samples by trapezoids; one sample counts as constant over nothing."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(samples, samples[1:], strict=False))


class PowerMeter:
    """Samples one source (``source`` says which) in a background thread while a ``window()`` block runs."""

    def __init__(self, reader: Reader, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        self.reader = reader
        self.source: str = reader.source
        self.interval_s = interval_s
        self.idle_watts: float | None = None

    def __repr__(self) -> str:
        return f"PowerMeter({self.source}: {self.reader.rail})"

    def idle(self, seconds: float = 1.0) -> float:
        """Average watts over ``seconds`` of doing nothing; later windows subtract it."""
        with self._measure(0.0) as pending:
            time.sleep(seconds)
        assert pending.result is not None
        self.idle_watts = pending.result.avg_watts
        return self.idle_watts

    @contextlib.contextmanager
    def window(self) -> Iterator[PendingWindow]:
        """Measure the block's energy; idle is measured first (1 s) when ``idle()`` was never called."""
        if self.idle_watts is None:
            self.idle(1.0)
        with self._measure(self.idle_watts or 0.0) as pending:
            yield pending

    @contextlib.contextmanager
    def _measure(self, idle_watts: float) -> Iterator[PendingWindow]:
        pending = PendingWindow()
        before = self.reader.conditions()
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        errors: list[BaseException] = []

        def sample() -> None:
            while not stop.wait(self.interval_s):
                try:
                    if self.reader.counter:
                        self.reader.joules()  # keeps a wrapping counter unfolded; energy is the difference below
                    else:
                        samples.append((time.perf_counter(), self.reader.watts()))
                except OSError as exc:  # a sensor vanishing mid-run fails the window, not the benchmark
                    errors.append(exc)
                    return

        start_j = self.reader.joules() if self.reader.counter else None
        t0 = time.perf_counter()
        if not self.reader.counter:
            samples.append((t0, self.reader.watts()))
        thread = threading.Thread(target=sample, name=f"power-{self.source}", daemon=True)
        thread.start()
        try:
            yield pending
        finally:
            stop.set()
            thread.join()
            t1 = time.perf_counter()
            if self.reader.counter:
                joules = (self.reader.joules() or 0.0) - (start_j or 0.0)
            else:
                samples.append((t1, self.reader.watts()))
                joules = integrate(samples)
            seconds = t1 - t0
            conditions = before.merged(self.reader.conditions())
            if errors:
                conditions = conditions.merged(PowerConditions(None, None, None, f"sampling stopped: {errors[0]}"))
            pending.result = PowerWindow(
                seconds=seconds,
                joules=joules,
                avg_watts=joules / seconds if seconds > 0 else math.nan,
                idle_watts=idle_watts,
                source=self.source,
                conditions=conditions,
                samples=len(samples),
            )

    def close(self) -> None:
        self.reader.close()


@dataclass(frozen=True)
class Probe:
    """One source tried on this machine: found (``reason`` empty) or why not."""

    source: str
    reason: str = ""
    rail: str = field(default="")

    @property
    def found(self) -> bool:
        return not self.reason


def _probe_one(source: str, root: Path) -> Reader | str:
    if source == JETSON_SYSFS:
        return probe_jetson_sysfs(root)
    if source == TEGRASTATS:
        return probe_tegrastats(root)
    if source == NVML:
        return probe_nvml()
    return probe_rapl(root)


def probe(source: str = "auto", root: Path | None = None) -> tuple[PowerMeter | None, list[Probe]]:
    """The first readable source (``auto``: Jetson sysfs, tegrastats, NVML, RAPL) and what each attempt found."""
    if source != "auto" and source not in SOURCES:
        raise ValueError(f"power source {source!r}: expected auto or one of {', '.join(SOURCES)}")
    root = Path("/") if root is None else root
    probes = []
    for name in SOURCES if source == "auto" else (source,):
        found = _probe_one(name, root)
        if isinstance(found, str):
            probes.append(Probe(name, found))
            continue
        probes.append(Probe(name, "", found.rail))
        return PowerMeter(found), probes
    return None, probes


def find_meter(source: str = "auto", root: Path | None = None) -> PowerMeter | None:
    """A meter on the first readable source, or None (``probe()`` says why each source was not usable)."""
    return probe(source, root)[0]


def unavailable_reason(probes: Sequence[Probe]) -> str:
    """One line: why no source was readable, source by source."""
    return "; ".join(f"{p.source}: {p.reason}" for p in probes if not p.found)


# ---- CLI ----------------------------------------------------------------------------------------------------------

EXAMPLES = (
    "edge bench power                    # which source, idle watts and a 3 s reading",
    "edge bench power --source nvml --seconds 10 --json",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", choices=("auto", *SOURCES), default="auto", help="power source (default: auto)")
    p.add_argument("--seconds", type=positive_float(3600), default=3.0, help="reading length (default 3)")
    p.add_argument("--idle-seconds", type=positive_float(600), default=1.0, help="idle measurement (default 1)")
    p.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)  # a recorded sysfs tree (tests)
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    meter, probes = probe(args.source, args.root)
    report: dict[str, Any] = {"source": None, "probes": [asdict(p) for p in probes]}
    if meter is None:
        report["reason"] = unavailable_reason(probes)
        print(json.dumps(report, indent=2) if args.json else f"no power source readable here: {report['reason']}")
        return EXIT_USER_ERROR if args.source != "auto" else EXIT_OK
    try:
        idle = meter.idle(args.idle_seconds)
        with meter.window() as w:
            time.sleep(args.seconds)
    finally:
        meter.close()
    report |= {"source": meter.source, "rail": meter.reader.rail, "idle_watts": idle, "window": w.result.to_dict()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        c = w.conditions
        print(f"source: {meter.source} ({meter.reader.rail})")
        print(f"idle: {idle:.2f} W; {w.seconds:.1f} s: {w.avg_watts:.2f} W avg, {w.joules:.2f} J, {w.samples} samples")
        print(f"power mode: {c.power_mode}; jetson_clocks: {c.jetson_clocks}; throttled: {c.throttled}; {c.note}")
    return EXIT_OK


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = command_parser("bench power", __doc__, EXAMPLES)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
