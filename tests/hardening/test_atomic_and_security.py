"""Atomic writes under interruption, and the security rules checked over the whole source tree."""

import ast
import os
from pathlib import Path

import pytest

from formats.atomic import safe_child, write_bytes_atomic, write_text_atomic

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("runtime", "train", "export", "calibration", "benchmarks")


def _sources():
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def test_an_interrupted_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "model.json"
    write_text_atomic(target, "good")

    def interrupted(src, dst):
        raise KeyboardInterrupt  # Ctrl-C at the worst moment

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "half-written")
    monkeypatch.undo()
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"]


def test_a_failing_writer_keeps_the_previous_onnx(tmp_path, trained_mnist):
    import onnx

    from export.onnx_export import save_onnx

    _, onnx_path = trained_mnist["mnist_mlp"]
    target = tmp_path / "m.onnx"
    save_onnx(onnx.load(str(onnx_path)), target)
    before = target.read_bytes()
    with pytest.raises(AttributeError):  # a str has no SerializeToString: the write fails before the rename
        save_onnx("not a model proto", target)
    assert target.read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_written_bytes_are_read_back(tmp_path):
    path = write_bytes_atomic(tmp_path / "x.bin", b"\x00\x01" * 1000)
    assert path.read_bytes() == b"\x00\x01" * 1000


@pytest.mark.parametrize("name", ["../escape.json", "/etc/passwd", "..", "a/b.json", "a\\b.json", ""])
def test_output_names_cannot_leave_the_output_folder(tmp_path, name):
    with pytest.raises(ValueError):
        safe_child(tmp_path, name)


def test_model_names_from_the_command_line_cannot_escape(tmp_path, capsys):
    from calibration.__main__ import main

    assert main(["--model", "../../outside", "--artifacts", str(tmp_path)]) == 2
    assert "not a plain file name" in capsys.readouterr().err


def test_no_shell_true_anywhere():
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                assert isinstance(node.value, ast.Constant) and node.value.value is False, f"{path}: shell=True"


def test_every_torch_load_is_weights_only_and_no_plain_pickle_load():
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if owner == "torch" and node.func.attr == "load":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True, path
                if owner == "pickle" and node.func.attr in ("load", "loads"):
                    raise AssertionError(f"{path}: plain pickle.{node.func.attr}; use the restricted unpickler")
                if node.func.attr == "load" and owner == "np":
                    kw = {k.arg: k.value for k in node.keywords}
                    assert "allow_pickle" not in kw or kw["allow_pickle"].value is False, path
