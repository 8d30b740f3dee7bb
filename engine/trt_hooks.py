"""The objects TensorRT calls back into during a build: logger, progress monitor, cache calibrator; and
what the build records about the machine (GPU, Jetson)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

from formats.calib_cache import retag, version_tag

_logger = logging.getLogger(__name__)


def build_device() -> dict | None:
    """The GPU the build targets, or None on a machine without one (TensorRT-RTX ahead-of-time builds).

    A driver that cannot run this cuda-python is an error (``runtime.cuda.CudaError`` names the fix), not
    "no GPU": a plan built as if there were none would be recorded wrongly.
    """
    from runtime import cuda

    try:
        count = cuda.device_count()
    except cuda.CudaError as exc:
        if "not installed" in str(exc):  # cuda-python absent: an ahead-of-time build
            return None
        raise
    if not count:
        return None
    info = cuda.device_info(0)
    return {"name": info["name"], "compute_capability": info["compute_capability"]}


def jetson_info() -> dict | None:
    release = Path("/etc/nv_tegra_release")
    model = Path("/proc/device-tree/model")
    if not release.is_file():
        return None
    return {
        "l4t": release.read_text(errors="replace").splitlines()[0][:120],
        "model": model.read_text(errors="replace").strip("\x00\n") if model.is_file() else None,
    }


def make_logger(trt, verbose: bool = False):
    """A TensorRT logger that keeps errors for our message and warnings for the manifest, instead of dumping
    them. Warnings matter: TensorRT says "layer … cannot run on DLA, falling back to GPU" and "missing scale
    … fall back to non-INT8" only as warnings, so they are logged (``logging``, WARNING) and counted."""

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.warnings: list[str] = []

        def log(self, severity, msg):
            if severity <= trt.ILogger.Severity.ERROR:
                self.errors.append(str(msg))
            elif severity == trt.ILogger.Severity.WARNING:
                self.warnings.append(str(msg))
                _logger.warning("[TensorRT] %s", msg)
            elif verbose:
                _logger.info("[TensorRT] %s", msg)

    return Logger()


def warnings_summary(warnings: list[str], keep: int = 20) -> dict:
    """What the manifest records about the build's warnings: how many, how many say something fell back (DLA
    to GPU, INT8 to a wider type), and the first ``keep`` of them."""
    fallback = [w for w in warnings if "fall" in w.lower() and "back" in w.lower()]
    return {"count": len(warnings), "fallbacks": len(fallback), "first": [w[:300] for w in warnings[:keep]]}


def dla_layer_placement(config, network) -> dict:
    """Which layers the DLA can run (``IBuilderConfig.can_run_on_DLA``, asked before the build), so the
    manifest says how much of a ``--dla-core`` plan runs on the GPU through ``--gpu-fallback``."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    gpu = [layer.name for layer in layers if not config.can_run_on_DLA(layer)]
    return {"layers": len(layers), "dla_capable": len(layers) - len(gpu), "gpu_fallback_layers": gpu[:50]}


def engine_layers(trt, runtime_logger, data: bytes) -> list[dict] | None:
    """Each layer of the built plan as TensorRT's ``IEngineInspector`` reports it (name, type), or None where
    that needs what is missing: the inspector (TensorRT ≥ 8.2), or a GPU to deserialize the plan on. A DLA
    subgraph shows as one ``{ForeignNode[...]}`` layer (as do Myelin subgraphs on the GPU): read it together
    with ``dla.gpu_fallback_layers``."""
    if not hasattr(trt, "Runtime") or not hasattr(trt, "LayerInformationFormat"):
        return None
    try:
        engine = trt.Runtime(runtime_logger).deserialize_cuda_engine(data)
        if engine is None or not hasattr(engine, "create_engine_inspector"):
            return None
        info = json.loads(engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON))
    except Exception as exc:  # no GPU, an old TensorRT: the manifest says nothing rather than the build failing
        _logger.debug("engine inspector unavailable: %s", exc)
        return None
    layers = info.get("Layers", []) if isinstance(info, dict) else []
    return [
        {"name": str(layer.get("Name", layer)) if isinstance(layer, dict) else str(layer)}
        | ({"type": str(layer["LayerType"])} if isinstance(layer, dict) and "LayerType" in layer else {})
        for layer in layers
    ]


def progress_monitor(trt):
    """A progress bar per build phase where TensorRT has ``IProgressMonitor`` (≥ 10), tqdm is installed and
    stderr is a terminal; otherwise None (a Jetson has no tqdm, and a log file wants no ``\\r`` updates).

    TensorRT cancels the build when ``step_complete`` raises (or returns False), so every callback is
    exception-proof: a broken progress bar turns itself off, it never stops a build."""
    if not hasattr(trt, "IProgressMonitor") or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}
            self.broken: str | None = None  # why the bars were turned off, if they were

        def _safely(self, update) -> None:
            if self.broken is not None:
                return
            try:
                update()
            except Exception as exc:  # never let a display problem reach TensorRT
                self.broken = f"{type(exc).__name__}: {exc}"
                _logger.debug("build progress display turned off: %s", self.broken)

        def phase_start(self, phase_name, parent_phase, num_steps):
            def start():
                self.bars[phase_name] = tqdm(total=num_steps, desc=f"build: {phase_name}", leave=False)

            self._safely(start)

        def step_complete(self, phase_name, step):
            def update():
                bar = self.bars.get(phase_name)
                if bar is not None:
                    bar.update(step + 1 - bar.n)

            self._safely(update)
            return True  # keep building, whatever the display did

        def phase_finish(self, phase_name):
            def finish():
                bar = self.bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

            self._safely(finish)

    return Monitor()


def cache_calibrator(trt, cache_text: str):
    """``IInt8EntropyCalibrator2`` that only serves the cache (no data: every range is in the cache)."""
    cache = retag(cache_text, version_tag(trt.__version__)).encode()

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            return None  # nothing to calibrate: the cache has the ranges

        def read_calibration_cache(self):
            return cache

        def write_calibration_cache(self, cache_bytes):
            return None

    return CacheCalibrator()
