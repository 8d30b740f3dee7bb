"""Preflight refuses every bad plan with one line that names the problem and the rebuild command.
Plans here are bytes with TensorRT's magic and a manifest we write: preflight never deserializes."""

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from formats.artifacts import Precision, plan_manifest
from formats.engine_manifest import (
    MANIFEST_FORMAT,
    EngineManifest,
    EnginePreflightError,
    Flavour,
    HardwareCompatibility,
    preflight,
)

CMD = "python -m engine --onnx m.onnx --out m.plan"


def _plan(tmp_path, body=b"ftrt" + bytes(range(256)) * 4, **fields):
    plan = tmp_path / "m.int8.plan"
    plan.write_bytes(body)
    manifest = dict(
        plan_sha256=hashlib.sha256(body).hexdigest(),
        plan_bytes=len(body),
        source_onnx="m.onnx",
        source_sha256="0" * 64,
        flavour="tensorrt",
        trt_version="10.3.0",
        precision="int8",
        quantization_path="strongly-typed",
        profiles=[],
        build_flags={"version_compatible": False},
        spec={},
        device={"name": "Orin", "compute_capability": "8.7"},
        rebuild_command=CMD,
    )
    manifest.update(fields, format=MANIFEST_FORMAT)
    plan_manifest(plan).write_text(EngineManifest.from_dict(manifest, "test manifest").to_json())
    return plan


def test_a_good_plan_passes(tmp_path):
    plan = _plan(tmp_path)
    assert preflight(plan, "tensorrt", "10.3.0", {"name": "Orin", "compute_capability": "8.7"}).precision == "int8"


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), "truncated"),
        (lambda p: p.write_bytes(b"\x08\x08\x12\x0cpytorch" + b"\x00" * 50), "an ONNX model"),
        (lambda p: zipfile.ZipFile(p, "w").writestr("a.txt", "x"), "a zip archive"),
        (lambda p: plan_manifest(p).unlink(), "manifest m.int8.plan.json not found"),
        (lambda p: p.write_bytes(b"ftrt" + b"\x01" * 1024), "do not match its manifest"),
    ],
)
def test_bad_files_are_refused_before_deserializing(tmp_path, mutate, message):
    plan = _plan(tmp_path)
    mutate(plan)
    with pytest.raises(EnginePreflightError, match=message) as info:
        preflight(plan, "tensorrt", "10.3.0")
    assert "\n" not in str(info.value)


def test_other_tensorrt_version_names_the_rebuild_command(tmp_path):
    with pytest.raises(EnginePreflightError, match="has 10.13.0") as info:
        preflight(_plan(tmp_path), "tensorrt", "10.13.0")
    assert str(info.value).endswith(CMD)


def test_version_compatible_engines_may_cross_versions(tmp_path):
    plan = _plan(tmp_path, build_flags={"version_compatible": True})
    assert preflight(plan, "tensorrt", "10.13.0")


@pytest.mark.parametrize(
    "built, running, ok",
    [
        ("10.3.0", "10.13.0", True),
        ("10.3.0", "10.3.0", True),
        ("8.6.1", "10.3.0", True),
        ("10.13.0", "11.4.1", True),
        ("10.13.0", "10.3.0", False),  # an older runtime never loads a newer plan
        ("8.6.1", "11.4.1", False),  # across two majors: not supported by TensorRT
        ("8.5.2", "8.6.1", False),  # version compatibility starts at 8.6
    ],
)
def test_version_compatible_plans_load_only_where_tensorrt_allows(tmp_path, built, running, ok):
    plan = _plan(tmp_path, trt_version=built, build_flags={"version_compatible": True})
    if ok:
        assert preflight(plan, "tensorrt", running)
    else:
        with pytest.raises(EnginePreflightError, match="version-compatible plan .* cannot load"):
            preflight(plan, "tensorrt", running)


def test_hardware_compatible_plans_need_ampere_and_no_jetson(tmp_path):
    plan = _plan(tmp_path, build_flags={"hardware_compatibility": "ampere+"})
    turing = {"name": "T4", "compute_capability": "7.5"}
    with pytest.raises(EnginePreflightError, match="Ampere or newer"):
        preflight(plan, "tensorrt", "10.3.0", turing)
    with pytest.raises(EnginePreflightError, match="JetPack does not support"):
        preflight(plan, "tensorrt", "10.3.0", {"name": "Orin", "compute_capability": "8.7"}, jetson=True)


def test_preflight_hashes_the_plan_once(tmp_path, monkeypatch):
    import formats.engine_manifest as em

    calls = []
    real = em.sha256_file
    monkeypatch.setattr(em, "sha256_file", lambda path: calls.append(path) or real(path))
    preflight(_plan(tmp_path), "tensorrt", "10.3.0", {"name": "Orin", "compute_capability": "8.7"})
    assert len(calls) == 1


def test_other_gpu_is_refused_unless_hardware_compatible(tmp_path):
    other = {"name": "RTX 4090", "compute_capability": "8.9"}
    with pytest.raises(EnginePreflightError, match="compute capability 8.7"):
        preflight(_plan(tmp_path), "tensorrt", "10.3.0", other)
    plan = _plan(tmp_path, build_flags={"hardware_compatibility": "ampere+"})
    assert preflight(plan, "tensorrt", "10.3.0", other)


def test_flavour_mismatch_and_missing_paths(tmp_path):
    with pytest.raises(EnginePreflightError, match="this machine runs tensorrt_rtx"):
        preflight(_plan(tmp_path), "tensorrt_rtx", "1.7")
    with pytest.raises(EnginePreflightError, match="not found"):
        preflight(tmp_path / "nope.plan")
    with pytest.raises(EnginePreflightError, match="is a folder"):
        preflight(tmp_path)


def test_manifest_that_is_not_ours(tmp_path):
    plan = _plan(tmp_path)
    plan_manifest(plan).write_text('{"format": "something-else"}')
    with pytest.raises(EnginePreflightError, match="not an engine manifest"):
        preflight(plan)


MANIFESTS = Path(__file__).parent / "manifests"


@pytest.mark.parametrize("name", ["rtx-int8.plan.json", "jetson-fp16-dla.plan.json"])
def test_a_manifest_written_before_the_typed_manifest_reads_and_writes_back_byte_for_byte(name):
    # rtx-int8: written by engine.build (TensorRT-RTX 1.7, mnist_cnn) before EngineManifest had nested dataclasses;
    # jetson-fp16-dla: the same with the fields a Jetson DLA build fills (device, jetson, optional build flags).
    text = (MANIFESTS / name).read_text()
    manifest = EngineManifest.from_dict(json.loads(text), name)
    assert manifest.to_json() == text  # the JSON on disk is unchanged: bundles built before still open
    assert isinstance(manifest.flavour, Flavour) and isinstance(manifest.precision, Precision)
    assert manifest.profiles[0].max[0] == 64 and manifest.golden.count == 8
    assert manifest.build_flags.hardware_compatibility is HardwareCompatibility.NONE


def test_a_manifest_with_a_flag_this_version_does_not_know_keeps_it():
    data = json.loads((MANIFESTS / "rtx-int8.plan.json").read_text())
    data["build_flags"]["sparsity"] = True
    manifest = EngineManifest.from_dict(data, "m")
    assert manifest.build_flags.other == {"sparsity": True} and json.loads(manifest.to_json()) == data


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"flavour": "openvino"}, r"flavour 'openvino' \(expected one of \['tensorrt', 'tensorrt_rtx'\]\)"),
        ({"precision": "int4"}, r"precision 'int4'"),
        ({"profiles": [{"input": "x", "min": [1], "opt": "8", "max": [64]}]}, r"not lists of integers"),
        ({"build_flags": {"hardware_compatibility": "hopper+"}}, r"hardware_compatibility 'hopper\+'"),
        ({"device": "Orin"}, r"device 'Orin'"),
    ],
)
def test_a_damaged_nested_field_is_refused_by_name(edit, message):
    data = json.loads((MANIFESTS / "rtx-int8.plan.json").read_text())
    data.update(edit)
    with pytest.raises(EnginePreflightError, match=message + ".*edited or damaged"):
        EngineManifest.from_dict(data, "m.plan.json")
