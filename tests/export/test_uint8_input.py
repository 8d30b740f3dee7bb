"""The folded-normalisation export: uint8 pixels in, the same logits out, and TensorRT parses it."""

import numpy as np
import onnx
import pytest

from export.onnx_export import export_fp32
from runtime.model import Classifier
from runtime.preprocess import preprocess


@pytest.mark.parametrize("name", ["mnist_cnn"])
def test_uint8_form_matches_the_float_form(trained_mnist, mnist_test, tmp_path, name):
    ckpt, float_onnx = trained_mnist[name]
    path = export_fp32(ckpt.model, ckpt.spec, tmp_path, uint8_input=True)
    assert path.name == f"{name}_u8.fp32.onnx" and (tmp_path / f"{name}_u8.json").is_file()
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    images = mnist_test.images[:64]
    with Classifier.from_path(float_onnx) as f32, Classifier.from_path(path) as u8:
        assert u8.spec.input_dtype.value == "uint8"
        batch_u8 = np.stack([preprocess(i, u8.spec) for i in images])
        assert (
            batch_u8.dtype == np.uint8
            and batch_u8.nbytes * 4 == np.stack([preprocess(i, f32.spec) for i in images]).nbytes
        )
        np.testing.assert_allclose(
            u8.run(batch_u8), f32.run(np.stack([preprocess(i, f32.spec) for i in images])), atol=1e-4
        )


def test_uint8_form_builds_with_tensorrt_rtx(trained_mnist, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX not installed: `pip install tensorrt-rtx-cu13`")
    from engine.build import BuildOptions, build_engine

    ckpt, _ = trained_mnist["mnist_cnn"]
    path = export_fp32(ckpt.model, ckpt.spec, tmp_path, uint8_input=True)
    plan, manifest = build_engine(path, options=BuildOptions(1, 4, 16, flavour="tensorrt_rtx"), log=lambda *_: None)
    assert plan.stat().st_size > 1000 and manifest.spec["input_dtype"] == "uint8"
