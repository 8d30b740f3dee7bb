"""runtime/ ships alone to a Jetson: importing it must not pull in torch, onnx or our other packages."""

import json
import subprocess
import sys

from tests.conftest import REPO

FORBIDDEN = ("torch", "torchvision", "onnx", "train", "export", "calibration", "benchmarks", "pytriton", "tritonclient")


def test_runtime_imports_no_heavy_or_sibling_packages():
    code = (
        "import sys, json, runtime, runtime.infer, runtime.model, runtime.preprocess, runtime.spec,"
        " runtime.backends.onnxruntime, runtime.backends.tensorrt, runtime.cuda, formats.engine_manifest,"
        " runtime.batcher, runtime.self_test, runtime.doctor, runtime.trt_import, runtime.providers,"
        " runtime.backends.ort_binding, runtime.stream.cli, runtime.stream.uri, runtime.stream.sources,"
        " runtime.stream.pipeline, runtime.stream.sinks, runtime.stream.report,"
        " serving.serve, serving.triton_install, serving.triton_server, serving.triton_model, formats.cli,"
        " formats.files, formats.artifacts, formats.errors, formats.logs, formats.writer, formats.calibration_run;"
        "print(json.dumps(sorted(m for m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    bad = sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN)
    assert bad == [], f"runtime imported {bad}"
    # the decoder libraries are imported lazily, only when a video source is opened (PyAV is an extra)
    assert not {"av", "cv2"} & {m.split(".")[0] for m in loaded}
    assert "numpy" in loaded and "PIL" in loaded  # the check itself sees real imports


def test_running_inference_loads_onnxruntime_but_not_torch(trained_mnist, mnist_test, tmp_path):
    from PIL import Image

    Image.fromarray(mnist_test.images[0]).save(tmp_path / "d.png")
    engine = trained_mnist["mnist_mlp"][1]
    code = (
        "import sys, json; from runtime.infer import main;"
        f"rc = main(['--engine', {str(engine)!r}, {str(tmp_path / 'd.png')!r}, '--json']);"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime', 'av'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "onnxruntime" in loaded and not any(m.split(".")[0] in ("torch", "onnx", "av") for m in loaded)
