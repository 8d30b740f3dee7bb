import json

import numpy as np
import onnx
import pytest

from export.__main__ import main as export_main
from export.onnx_export import DEFAULT_OPSET
from runtime.backends.onnxruntime import OnnxRuntimeBackend
from runtime.spec import METADATA_KEY, ModelSpec


@pytest.mark.parametrize("name", ["mnist_mlp", "mnist_cnn"])
def test_export_is_checked_opset_pinned_with_spec_inside_and_beside(trained_mnist, name):
    ckpt, path = trained_mnist[name]
    assert path.name == f"{name}.fp32.onnx"
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert {o.domain: o.version for o in model.opset_import}[""] == DEFAULT_OPSET >= 17
    props = {p.key: p.value for p in model.metadata_props}
    assert ModelSpec.from_json(props[METADATA_KEY]) == ckpt.spec
    assert ModelSpec.load(path.with_name(f"{name}.json")) == ckpt.spec
    assert [i.name for i in model.graph.input] == [ckpt.spec.input_name]
    assert [o.name for o in model.graph.output] == [ckpt.spec.output_name]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")


def test_dynamic_batch_gives_the_same_rows(trained_mnist, mnist_test):
    from runtime.preprocess import normalize

    ckpt, path = trained_mnist["mnist_cnn"]
    x = normalize(mnist_test.images[:9], ckpt.spec)
    with OnnxRuntimeBackend(path) as backend:
        whole = backend.infer({"input": x})["logits"]
        one = np.concatenate([backend.infer({"input": x[i : i + 1]})["logits"] for i in range(9)])
    np.testing.assert_allclose(whole, one, atol=1e-5)


def test_cli_exports_a_checkpoint(trained_mnist, tmp_path, capsys):
    ckpt_dir = trained_mnist["mnist_mlp"][1].parent
    assert export_main(["--checkpoint", str(ckpt_dir / "mnist_mlp.pt"), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "mnist_mlp.fp32.onnx").is_file()
    assert json.loads((tmp_path / "mnist_mlp.json").read_text())["name"] == "mnist_mlp"
    assert "wrote" in capsys.readouterr().out


def test_cli_refuses_a_missing_checkpoint(tmp_path, capsys):
    assert export_main(["--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
