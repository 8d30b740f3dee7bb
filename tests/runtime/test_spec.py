import json

import pytest

from formats.errors import SpecError
from runtime.spec import (
    ColorMode,
    Interpolation,
    ModelSpec,
    OutputKind,
    ResizePolicy,
    sidecar_candidates,
    spec_from_sidecar,
)


def make_spec(**overrides) -> ModelSpec:
    fields = dict(name="digits", labels=tuple("0123456789"), height=28, width=28, mean=(0.1307,), std=(0.3081,))
    fields.update(overrides)
    return ModelSpec(**fields)


def test_json_round_trip_keeps_every_field():
    spec = make_spec(
        color_mode=ColorMode.RGB,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        resize=ResizePolicy.SHORTER_SIDE_CENTER_CROP,
        resize_size=32,
        interpolation=Interpolation.BICUBIC,
        output_kind=OutputKind.PROBABILITIES,
    )
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    assert isinstance(again.color_mode, ColorMode) and again.channels == 3
    assert json.loads(spec.to_json())["color_mode"] == "RGB"


def test_save_and_load(tmp_path):
    spec = make_spec()
    spec.save(tmp_path / "digits.json")
    assert ModelSpec.load(tmp_path / "digits.json") == spec


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"labels": ()}, "labels must be a non-empty"),
        ({"labels": ("a", "a")}, "labels must be unique"),
        ({"height": 0}, "height must be an integer from 1 to 8192"),
        ({"mean": (0.1, 0.2)}, "mean has 2 values but color_mode L has 1"),
        ({"std": (0.0,)}, "std must not contain 0"),
        ({"color_mode": "CMYK"}, "field 'color_mode' is 'CMYK'; expected one of"),
        ({"resize": ResizePolicy.SHORTER_SIDE_CENTER_CROP}, "resize_size must be an integer"),
        ({"schema_version": 99}, "re-export the model"),
        ({"scale": -1.0}, "scale must be a positive"),
    ],
)
def test_invalid_specs_are_refused_with_the_reason(overrides, message):
    with pytest.raises(SpecError, match=message):
        make_spec(**overrides)


def test_missing_and_unknown_fields_are_named(tmp_path):
    data = make_spec().to_dict()
    del data["labels"]
    data["colour"] = "L"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError, match=r"bad.json: missing field\(s\) labels; unknown field\(s\) colour"):
        ModelSpec.load(path)


def test_not_json_and_not_an_object(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.load(path)
    path.write_text("[1, 2]")
    with pytest.raises(SpecError, match="expected a JSON object, found list"):
        ModelSpec.load(path)
    with pytest.raises(SpecError, match="spec file not found"):
        ModelSpec.load(tmp_path / "missing.json")


def test_sidecar_lookup_prefers_the_manifest_then_the_model_name(tmp_path):
    model = tmp_path / "digits.fp32.onnx"
    assert sidecar_candidates(model) == [tmp_path / "digits.fp32.onnx.json", tmp_path / "digits.json"]
    assert spec_from_sidecar(model) is None
    make_spec().save(tmp_path / "digits.json")
    assert spec_from_sidecar(model).name == "digits"
    manifest = {"spec": make_spec(name="from_manifest").to_dict(), "precision": "fp32"}
    (tmp_path / "digits.fp32.onnx.json").write_text(json.dumps(manifest))
    assert spec_from_sidecar(model).name == "from_manifest"
