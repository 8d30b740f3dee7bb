"""Small real ONNX classifiers (28×28 gray → 10 classes) written with onnx.helper in milliseconds, for the
shapes training never produces: a static batch, an extra output axis, NaN outputs, channels-last input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

LABELS = [str(i) for i in range(10)]


def spec_dict(name: str = "tiny", labels: list[str] | None = None, **overrides) -> dict:
    spec = {
        "name": name,
        "labels": labels or LABELS,
        "height": 28,
        "width": 28,
        "color_mode": "L",
        "input_name": "input",
        "output_name": "logits",
    }
    spec.update(overrides)
    return spec


def write_model(
    folder: Path,
    name: str = "tiny",
    batch: int | str = "N",
    output_rank: int = 2,
    nan: bool = False,
    nhwc: bool = False,
    labels: list[str] | None = None,
    embed_labels: list[str] | None = None,
) -> Path:
    """``<folder>/<name>.fp32.onnx`` plus its ``<name>.json`` spec; returns the model path.

    ``embed_labels`` puts a spec in the ONNX metadata too (to test which of the two wins)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    weight = rng.normal(0, 0.05, (784, 10)).astype(np.float32)
    bias = np.full(10, np.nan if nan else 0.0, np.float32)
    in_shape = [batch, 28, 28, 1] if nhwc else [batch, 1, 28, 28]
    out_shape = [batch, 10] if output_rank == 2 else [batch, 1, 10]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["logits" if output_rank == 2 else "pre"]),
    ]
    inits = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")]
    if output_rank != 2:
        nodes.append(helper.make_node("Reshape", ["pre", "shape"], ["logits"]))
        inits.append(numpy_helper.from_array(np.array([-1, 1, 10], np.int64), "shape"))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, out_shape)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if embed_labels is not None:
        from runtime.spec import METADATA_KEY

        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(spec_dict(name, embed_labels))
    path = folder / f"{name}.fp32.onnx"
    onnx.save(model, path)
    if labels is not None or embed_labels is None:
        (folder / f"{name}.json").write_text(json.dumps(spec_dict(name, labels)))
    return path
