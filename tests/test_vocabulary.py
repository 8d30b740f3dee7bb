"""One vocabulary: artifact file names, precision strings and metadata keys come from ``formats.artifacts`` only.

The package sources are read with ``ast`` (docstrings skipped: they describe the names); a string literal or
f-string that builds an artifact file name by hand, a precision value written as a literal, or an
``edge_toolkit.*`` metadata key outside ``formats/artifacts.py`` fails here, naming file and line. Messages
that mention a pattern in prose (``pass *.fp32.onnx``) are not names and pass.
"""

import ast
import re
from pathlib import Path

import pytest

from formats.artifacts import (
    ONNX_PRECISIONS,
    PLAN_SUFFIXES,
    Artifacts,
    Precision,
    is_plan,
    plan_beside,
    plan_golden,
    plan_manifest,
)
from formats.errors import ArtifactNameError, RuntimeToolkitError
from tests.conftest import REPO
from tests.test_import_graph import ORDER

PACKAGES = ORDER  # every package of the pipeline order, so a new package cannot escape
VOCABULARY = REPO / "formats" / "artifacts.py"

_PRECISION = r"(?:fp32|fp16|int8|int8\.ort|int8-implicit|prep)"
_SUFFIX = (
    rf"(?:\.{_PRECISION}\.onnx|\.{_PRECISION}\.plan|\.calib\.(?:npz|json|cache)|\.ranges\.json|\.gate\.(?:json|md)"
    r"|\.confusion\.png|\.real\.(?:json|md|png)|\.compare\.(?:json|md|png)|\.golden\.npz|\.metrics\.json|\.exclusion\.json|\.bundle\.tar\.gz"
    r"|\.pt)"
)
RULES = (
    # a literal that is (or ends in) an artifact suffix, without spaces: a file name, not prose
    ("artifact suffix", re.compile(rf"""^[rbuf]*["'][^"'\s]*{_SUFFIX}["']$""")),
    # a bare suffix literal: ".onnx", ".plan", ".json" glued to a name elsewhere
    ("bare suffix", re.compile(r"""^[rbuf]*["']\.(?:onnx|plan|engine|trt|json|pt)["']$""")),
    # an f-string gluing a model name to a suffix: f"{model}.json", f"{spec.name}_u8", f"{name}.{p}.onnx"
    (
        "model name + suffix",
        re.compile(
            r"\{[^{}]*(?:model|name)[^{}]*\}"
            r"(?:_u8|(?:\.\{[^{}]*\})*[^\"'{}\s<>]*\.(?:json|pt|onnx|plan|npz|cache|md|png|tar\.gz))"
        ),
    ),
    # a precision glued to a suffix: f"{precision}.onnx"
    ("precision + suffix", re.compile(r"\{[^{}]*precision[^{}]*\}\.(?:onnx|plan)")),
    ("precision literal", re.compile(r"""^[rbu]*["'](?:fp32|fp16|int8|int8\.ort|int8-implicit|fp32\+tf32)["']$""")),
    ("metadata key literal", re.compile(r"""^[rbuf]*["']edge_toolkit\.""")),
)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                ids.add(id(body[0].value))
    return ids


def _segment(lines: list[str], node: ast.expr) -> str:
    """The node's source text (``ast.get_source_segment`` re-splits the whole file on every call: too slow here)."""
    first, last = node.lineno - 1, node.end_lineno - 1
    if first == last:
        return lines[first].encode()[node.col_offset : node.end_col_offset].decode()
    text = [lines[first].encode()[node.col_offset :].decode(), *lines[first + 1 : last]]
    return "".join(text + [lines[last].encode()[: node.end_col_offset].decode()])


def _strings(source: str, path: Path):
    """(line, source text) of every string literal and f-string that is not a docstring or inside an f-string."""
    tree = ast.parse(source, str(path))
    lines = source.splitlines(keepends=True)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            yield node.lineno, _segment(lines, node)


def violations(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    found = []
    for line, text in _strings(source, path):
        for rule, pattern in RULES:
            if pattern.search(text):
                found.append(f"{path.relative_to(REPO)}:{line}: {rule}: {text[:90]}")
                break
    for number, line in enumerate(source.splitlines(), 1):  # a suffix glued on with +: name + ".json"
        if re.search(r"""\+\s*[rbu]*["']\.(?:json|onnx|plan|pt|golden\.npz)["']""", line):
            found.append(f"{path.relative_to(REPO)}:{number}: suffix concatenation: {line.strip()[:90]}")
    return found


def test_no_hand_built_artifact_names_or_precision_strings():
    files = [p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py")) if p != VOCABULARY]
    assert len(files) > 50  # the scan sees the tree
    found = [v for path in files for v in violations(path)]
    assert found == [], "build these names with formats.artifacts (Artifacts, Precision, *_KEY):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "code",
    [
        'p = folder / f"{model}.int8.ort.onnx"\n',
        'p = folder / f"{model}.{precision}.onnx"\n',
        'p = artifacts / f"{spec.name}_u8"\n',
        'p = folder / f"{name}.calib.cache"\n',
        'CONTENTS = ((".gate.json", True),)\n',
        'if suffix == ".onnx":\n    pass\n',
        'p = plan.with_name(plan.name + ".json")\n',
        'PRECISIONS = ("fp32", "fp16", "int8")\n',
        'meta = {"edge_toolkit.precision": value}\n',
    ],
)
def test_the_scan_catches_hand_built_names(tmp_path, code):
    path = REPO / "tests" / f".vocab_probe_{tmp_path.name}.py"  # under REPO: violations() names paths relative to it
    try:
        path.write_text(code)
        assert violations(path), code
    finally:
        path.unlink(missing_ok=True)


def test_the_scan_lets_prose_and_docstrings_pass(tmp_path):
    code = (
        '"""Writes ``<name>.fp16.onnx`` and ``<name>.int8.plan``."""\n'
        'msg = f"{path}: pass *.prep.onnx or *.fp32.onnx"\n'
        'help = "model file (.onnx or .plan)"\n'
    )
    path = REPO / "tests" / f".vocab_probe_{tmp_path.name}.py"
    try:
        path.write_text(code)
        assert violations(path) == []
    finally:
        path.unlink(missing_ok=True)


def test_artifacts_name_every_file():
    a = Artifacts(Path("art"), "asl_cnn")
    assert a.onnx(Precision.INT8_ORT) == Path("art/asl_cnn.int8.ort.onnx")
    assert a.onnx("fp16") == Path("art/asl_cnn.fp16.onnx")
    assert a.plan(Precision.INT8) == Path("art/asl_cnn.int8.plan")
    assert plan_manifest(a.plan(Precision.INT8)) == Path("art/asl_cnn.int8.plan.json")
    assert plan_golden(a.plan(Precision.INT8)) == Path("art/asl_cnn.int8.plan.golden.npz")
    assert (a.spec, a.checkpoint, a.calibration_set, a.calib_cache) == (
        Path("art/asl_cnn.json"),
        Path("art/asl_cnn.pt"),
        Path("art/asl_cnn.calib.npz"),
        Path("art/asl_cnn.calib.cache"),
    )
    assert a.uint8().onnx(Precision.FP32) == Path("art/asl_cnn_u8.fp32.onnx")
    assert Artifacts.of("art/asl_cnn.int8.plan") == a
    assert plan_beside("art/asl_cnn.int8.onnx") == Path("art/asl_cnn.int8.plan")
    assert is_plan("x.ENGINE") and not is_plan("x.onnx") and ".trt" in PLAN_SUFFIXES
    assert Precision.INT8_IMPLICIT not in ONNX_PRECISIONS
    assert f"{Precision.INT8_ORT}" == str(Precision.INT8_ORT) == "int8.ort"
    with pytest.raises(ValueError):
        a.onnx(Precision.INT8_IMPLICIT)


@pytest.mark.parametrize("name", ["", "..", "a/b", "../x"])
def test_a_path_is_not_a_model_name(name):
    with pytest.raises(ArtifactNameError) as info:
        Artifacts(Path("art"), name)
    assert isinstance(info.value, RuntimeToolkitError) and isinstance(info.value, ValueError)
