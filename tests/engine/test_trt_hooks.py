"""What TensorRT calls back into during a build, with the real TensorRT-RTX classes: the progress monitor never
cancels a build, the build logger keeps warnings, a rejected optimization profile is our error (issue 24)."""

import sys
import types

import pytest

from engine.build import EngineBuildError, Network, configure
from engine.options import BuildOptions
from engine.trt_hooks import make_logger, progress_monitor
from formats.artifacts import Precision

trt = pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")


class BrokenBar:
    """A progress display that fails at every call (a closed terminal, a tqdm bug)."""

    n = 0

    def __init__(self, *args, **kwargs):
        raise OSError("terminal went away")


def test_a_failing_progress_display_never_cancels_the_build(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=BrokenBar))
    monitor = progress_monitor(trt)
    assert isinstance(monitor, trt.IProgressMonitor)
    monitor.phase_start("Building", None, 3)  # raised OSError into TensorRT: the build was cancelled
    assert monitor.step_complete("Building", 0) is True
    monitor.phase_finish("Building")
    assert "OSError: terminal went away" in monitor.broken


def _network(logger=None):
    logger = logger or make_logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    network.add_input("x", trt.float32, (-1, 4))
    return Network(trt, "tensorrt_rtx", logger, builder, network, "strongly-typed", False)


def test_a_profile_tensorrt_rejects_is_our_error_not_ignored(monkeypatch):
    import engine.build as build

    net = _network()

    def inverted(net, info, options):  # min > max: TensorRT's add_optimization_profile returns -1
        profile = net.builder.create_optimization_profile()
        profile.set_shape("x", (8, 4), (4, 4), (1, 4))
        return profile, [{"input": "x", "min": [8, 4], "opt": [4, 4], "max": [1, 4]}]

    monkeypatch.setattr(build, "_profile", inverted)
    info = types.SimpleNamespace(path="m.onnx", precision=Precision.FP32)
    with pytest.raises(EngineBuildError, match=r"m.onnx: tensorrt_rtx rejected the optimization profile.*isValid"):
        configure(net, info, BuildOptions(flavour="tensorrt_rtx"))
