"""Latency measurement shared by the benchmarks: warm-up, then timed iterations, robust statistics.

Numbers are only compared as ratios taken in the same run on the same machine; the
environment goes with every result (``environment()``).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class LatencyStats:
    name: str
    batch: int
    iterations: int
    median_ms: float
    mean_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    std_ms: float = 0.0

    @property
    def cov(self) -> float:
        """Coefficient of variation (std / mean); trtexec warns above 2.5 %."""
        return self.std_ms / self.mean_ms if self.mean_ms else 0.0

    @property
    def throughput(self) -> float:
        return 1000.0 * self.batch / self.median_ms if self.median_ms else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "cov": self.cov, "throughput": self.throughput}


MAX_BATCH = 4096  # far above any profile we build; 10**8 would allocate until the OOM killer stops it


def parse_batches(text: str) -> list[int]:
    """``"1,8,64"`` → ``[1, 8, 64]``; ValueError with the fix for anything else."""
    try:
        batches = [int(b) for b in text.split(",") if b.strip()]
    except ValueError:
        batches = []
    if not batches or min(batches) < 1 or max(batches) > MAX_BATCH:
        raise ValueError(f"--batch {text!r}: expected integers from 1 to {MAX_BATCH} like 1,8,64")
    return batches


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))]


def stats_from_samples(name: str, samples_ms: list[float], batch: int = 1) -> LatencyStats:
    ordered = sorted(samples_ms)
    return LatencyStats(
        name=name,
        batch=batch,
        iterations=len(ordered),
        median_ms=statistics.median(ordered),
        mean_ms=statistics.fmean(ordered),
        p90_ms=percentile(ordered, 90),
        min_ms=ordered[0],
        max_ms=ordered[-1],
        p95_ms=percentile(ordered, 95),
        p99_ms=percentile(ordered, 99),
        std_ms=statistics.pstdev(ordered) if len(ordered) > 1 else 0.0,
    )


def measure(
    name: str,
    fn: Callable[[], object],
    batch: int = 1,
    warmup_s: float = 0.3,
    duration_s: float = 1.5,
    min_iterations: int = 20,
    max_iterations: int | None = None,
) -> LatencyStats:
    """Call ``fn`` repeatedly: ``warmup_s`` untimed, then at least ``duration_s`` of timed calls
    (and at least ``min_iterations``; at most ``max_iterations`` when given)."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        fn()
    samples: list[float] = []
    end = time.perf_counter() + duration_s
    while (time.perf_counter() < end or len(samples) < min_iterations) and (
        max_iterations is None or len(samples) < max_iterations
    ):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return stats_from_samples(name, samples, batch)


# CPU features that decide int8/fp16 kernel speed (x86 VNNI/AMX, Arm dot-product / fp16)
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "fphp",
    "i8mm",
)


def _run(argv: list[str]) -> str | None:
    """A tool's stdout, or None when it is absent or fails (never a shell)."""
    import shutil
    import subprocess

    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def gpu_environment() -> dict | None:
    query = _run(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,persistence_mode",
            "--format=csv,noheader",
        ]
    )
    if not query:
        return None
    name, driver, sm, mem, max_sm, persistence = [x.strip() for x in query.splitlines()[0].split(",")]
    return {
        "name": name,
        "driver": driver,
        "sm_clock": sm,
        "mem_clock": mem,
        "max_sm_clock": max_sm,
        "persistence_mode": persistence,
    }


def jetson_environment() -> dict | None:
    release = Path("/etc/nv_tegra_release")
    if not release.is_file():
        return None
    return {
        "l4t": release.read_text(errors="replace").splitlines()[0][:120],
        "power_mode": _run(["nvpmodel", "-q"]),
        "clocks": _run(["jetson_clocks", "--show"]),
    }


def environment() -> dict:
    """What ran the numbers: CPU model and flags, cores, threads, library versions, GPU and Jetson state."""
    cpu = platform.processor() or ""
    flags: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith(("flags", "Features")) and not flags:
                    present = set(line.split(":", 1)[1].split())
                    flags = [f for f in CPU_FLAGS if f in present]
    except OSError:
        pass
    versions = {}
    for module in ("numpy", "onnxruntime", "torch", "PIL"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    for module in ("tensorrt", "tensorrt_rtx"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            continue
    return {
        "cpu": cpu,
        "cpu_flags": flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "gpu": gpu_environment(),
        "jetson": jetson_environment(),
    }
