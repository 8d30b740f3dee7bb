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


def test_the_build_logger_keeps_warnings_and_counts_fallbacks():
    from engine.trt_hooks import warnings_summary

    logger = make_logger(trt)
    logger.log(trt.ILogger.Severity.WARNING, "Layer conv1 cannot run on DLA, falling back to GPU")
    logger.log(trt.ILogger.Severity.WARNING, "Missing scale and zero-point for tensor x, expect fall back to non-int8")
    logger.log(trt.ILogger.Severity.WARNING, "TF32 is disabled")
    logger.log(trt.ILogger.Severity.ERROR, "bad")
    assert len(logger.warnings) == 3 and logger.errors == ["bad"]  # warnings were dropped before
    summary = warnings_summary(logger.warnings)
    assert summary["count"] == 3 and summary["fallbacks"] == 2


def test_which_layers_the_dla_can_run_is_asked_of_the_builder():
    from engine.trt_hooks import dla_layer_placement

    net = _network()
    net.network.add_activation(net.network.get_input(0), trt.ActivationType.RELU)
    placement = dla_layer_placement(net.builder.create_builder_config(), net.network)
    assert placement["layers"] == 1  # TensorRT-RTX has no DLA: its answer is "GPU" for every layer
    assert placement["dla_capable"] + len(placement["gpu_fallback_layers"]) == 1


def test_the_engine_inspector_lists_each_layer_where_it_can_run():
    from engine.trt_hooks import engine_layers

    info = '{"Layers": [{"Name": "{ForeignNode[conv1...fc2]}", "LayerType": "DLA"}, {"Name": "softmax"}]}'
    inspector = types.SimpleNamespace(get_engine_information=lambda fmt: info)
    engine = types.SimpleNamespace(create_engine_inspector=lambda: inspector)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return engine

    fake = types.SimpleNamespace(Runtime=Runtime, LayerInformationFormat=types.SimpleNamespace(JSON=1))
    assert engine_layers(fake, None, b"plan") == [
        {"name": "{ForeignNode[conv1...fc2]}", "type": "DLA"},
        {"name": "softmax"},
    ]
    assert engine_layers(trt, make_logger(trt), b"not a plan") is None  # no GPU here: nothing, not a failure


def _dla_net(cores: int = 2):
    flags = types.SimpleNamespace(GPU_FALLBACK="GPU_FALLBACK")
    fake = types.SimpleNamespace(__version__="10.3.0", DeviceType=types.SimpleNamespace(DLA="DLA"), BuilderFlag=flags)
    return Network(fake, "tensorrt", None, types.SimpleNamespace(num_DLA_cores=cores), None, "strongly-typed", False)


class _Config:
    DLA_core = -1
    default_device_type = None

    def __init__(self):
        self.flags = []

    def set_flag(self, flag):
        self.flags.append(flag)


def test_dla_needs_a_fixed_profile_and_gpu_fallback_for_strongly_typed_files():
    from engine.build import _dla

    with pytest.raises(EngineBuildError, match="the DLA has no dynamic dimensions.*--min-batch 8 --opt-batch 8"):
        BuildOptions(dla_core=0)  # the default 1/8/64 profile was accepted
    info = types.SimpleNamespace(path="m.fp16.onnx", precision=Precision.FP16)
    fixed = dict(min_batch=8, opt_batch=8, max_batch=8, dla_core=1)
    with pytest.raises(EngineBuildError, match="m.fp16.onnx: --dla-core 1 on a strongly typed file needs --gpu-fa"):
        _dla(_dla_net(), _Config(), info, BuildOptions(**fixed))
    config = _Config()
    _dla(_dla_net(), config, info, BuildOptions(gpu_fallback=True, **fixed))
    assert config.DLA_core == 1 and config.default_device_type == "DLA" and config.flags == ["GPU_FALLBACK"]
