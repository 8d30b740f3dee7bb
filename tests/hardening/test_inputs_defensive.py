"""Inputs opened defensively (issue 13, findings 4-6, 8, 12, 17-20, 28): each through the deploy CLI as users run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import REPO
from tests.hardening.tiny_models import write_model


def run_infer(
    *args: str | Path, timeout: float = 60, env: dict | None = None, prefix: tuple = ()
) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "runtime.infer", *map(str, args)],
        capture_output=True,
        timeout=timeout,
        env=full_env,
    )


def strict_json(text: str | bytes):
    def refuse(constant):
        raise ValueError(f"invalid JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("digit") / "digit.png"
    Image.fromarray(np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))).save(path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("tiny"))


def test_fifo_image_is_refused_and_never_read(tmp_path, tiny, digit):  # finding 4
    fifo = tmp_path / "camera.png"
    os.mkfifo(fifo)
    result = run_infer("--engine", tiny, digit, fifo, "--json", timeout=30)
    doc = strict_json(result.stdout)
    assert result.returncode == 1, result.stderr
    assert [r["input"] for r in doc["results"]] == [str(digit)]
    assert "FIFO" in doc["errors"][0]["error"] and doc["errors"][0]["input"] == str(fifo)


def test_fifo_as_model_is_refused(tmp_path, digit):
    fifo = tmp_path / "model.onnx"
    os.mkfifo(fifo)
    result = run_infer("--engine", fifo, digit, timeout=30)
    assert result.returncode == 2 and b"FIFO" in result.stderr and b"Traceback" not in result.stderr


def test_unconvertible_mode_fails_alone(tmp_path, tiny, digit):  # finding 5
    lab = tmp_path / "lab.tif"
    Image.new("LAB", (20, 20), (50, 0, 0)).save(lab)
    result = run_infer("--engine", tiny, digit, lab, "--json")
    doc = strict_json(result.stdout)
    assert result.returncode == 1 and doc["results"][0]["input"] == str(digit)
    assert "LAB" in doc["errors"][0]["error"] and doc["errors"][0]["input"] == str(lab)


def test_huge_resize_size_is_a_spec_error(tmp_path, digit):  # finding 6
    from formats.errors import SpecError
    from runtime.spec import ModelSpec

    with pytest.raises(SpecError, match="resize_size must be an integer from max"):
        ModelSpec("m", ("a", "b"), 28, 28, resize="shorter_side_center_crop", resize_size=1_000_000)
    with pytest.raises(SpecError, match="height must be an integer from 1 to 8192"):
        ModelSpec("m", ("a", "b"), 100_000, 28)
    model = write_model(tmp_path)
    spec = json.loads((tmp_path / "tiny.json").read_text())
    spec.update(resize="shorter_side_center_crop", resize_size=1_000_000)
    (tmp_path / "tiny.json").write_text(json.dumps(spec))
    result = run_infer("--engine", model, digit)
    assert result.returncode == 2 and b"resize_size" in result.stderr and b"Traceback" not in result.stderr


def test_nan_outputs_are_refused_and_json_stays_valid(tmp_path, digit):  # finding 8
    model = write_model(tmp_path, nan=True)
    result = run_infer("--engine", model, digit, "--json")
    doc = strict_json(result.stdout)
    assert result.returncode == 1 and doc["results"] == []
    assert "NaN or Inf outputs" in doc["errors"][0]["error"]


def test_static_batch_model_classifies_every_input(tmp_path, digit):  # finding 12
    model = write_model(tmp_path, batch=1)
    result = run_infer("--engine", model, digit, digit, digit, "--json")
    assert result.returncode == 0, result.stderr
    assert len(strict_json(result.stdout)["results"]) == 3


def test_output_with_extra_axis_is_refused_before_the_first_batch(tmp_path, digit):  # finding 17
    model = write_model(tmp_path, output_rank=3)
    result = run_infer("--engine", model, digit)
    assert result.returncode == 2 and b"(N, classes)" in result.stderr and b"Traceback" not in result.stderr


def test_labels_and_names_cannot_drive_the_terminal(tmp_path, digit):  # finding 18
    model = write_model(tmp_path / "m", labels=[f"\x1b[2J{i}\nforged: 9 (1.0000)" for i in range(10)])
    odd = tmp_path / "a\nb.png"
    odd.write_bytes(digit.read_bytes())
    raw = Path(os.fsdecode(bytes(tmp_path) + b"/\xff\xfe.png"))
    raw.write_bytes(digit.read_bytes())
    result = run_infer("--engine", model, odd, raw, env={"PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2 and b"\x1b" not in result.stdout, lines
    assert "\\x1b[2J" in lines[0] and "a\\nb.png" in lines[0] and "\\udcff" in lines[1]


def test_float_tiff_in_0_1_is_not_black_and_nan_pixels_are_refused(tmp_path):  # finding 19
    from formats.errors import InputError
    from runtime.preprocess import load_image, to_color_mode
    from runtime.spec import ColorMode

    ramp = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28)
    Image.fromarray(ramp, mode="F").save(tmp_path / "ramp.tif")
    pixels = np.asarray(to_color_mode(load_image(tmp_path / "ramp.tif"), ColorMode.GRAY))
    assert pixels.max() == 255 and pixels.min() == 0
    ramp[3, 3] = np.nan
    Image.fromarray(ramp, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(InputError, match="NaN"):
        to_color_mode(load_image(tmp_path / "nan.tif"), ColorMode.GRAY)


def _without_root_override() -> tuple:
    """As root, file modes are not enforced; dropping CAP_DAC_OVERRIDE/READ_SEARCH makes them apply."""
    if os.geteuid() != 0:
        return ()
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot make a file unreadable to this test")
    caps = "-dac_override,-dac_read_search"
    return ("setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}")


def test_unreadable_files_are_called_unreadable(tmp_path, digit):  # finding 20
    model = write_model(tmp_path / "m")
    image, folder, locked_model = tmp_path / "locked.png", tmp_path / "locked_dir", tmp_path / "locked.onnx"
    image.write_bytes(digit.read_bytes())
    folder.mkdir()
    (folder / "x.png").write_bytes(digit.read_bytes())
    locked_model.write_bytes(model.read_bytes())
    (tmp_path / "locked.json").write_text((tmp_path / "m" / "tiny.json").read_text())
    for path in (image, folder, locked_model):
        path.chmod(0)
    try:
        prefix = _without_root_override()
        result = run_infer("--engine", model, digit, image, folder, "--json", prefix=prefix)
        doc = strict_json(result.stdout)
        assert result.returncode == 1, result.stderr
        errors = {e["input"]: e["error"] for e in doc["errors"]}
        assert "permission denied" in errors[str(image)] and "corrupt" not in errors[str(image)]
        assert "permission denied" in errors[str(folder)] and "no image files" not in errors[str(folder)]
        result = run_infer("--engine", locked_model, digit, prefix=prefix)
        assert result.returncode == 2 and b"permission denied" in result.stderr, result.stderr
        assert b"re-export" not in result.stderr
    finally:
        folder.chmod(0o755)


def test_spec_dtype_and_layout_mismatches_are_named(tmp_path, digit):  # finding 20
    model = write_model(tmp_path / "u8")
    spec = json.loads((tmp_path / "u8" / "tiny.json").read_text())
    (tmp_path / "u8" / "tiny.json").write_text(json.dumps({**spec, "input_dtype": "uint8"}))
    result = run_infer("--engine", model, digit)
    assert result.returncode == 2 and b"input_dtype uint8" in result.stderr and b"float32" in result.stderr
    result = run_infer("--engine", write_model(tmp_path / "nhwc", nhwc=True), digit)
    assert result.returncode == 2 and b"channels-last (NHWC)" in result.stderr


def test_big_jpeg_is_decoded_at_reduced_size(tmp_path):  # finding 28 (memory measured in benchmarks/jpeg_draft.py)
    from runtime.preprocess import load_image, preprocess
    from runtime.spec import ModelSpec

    path = tmp_path / "big.jpg"
    Image.linear_gradient("L").resize((4000, 3000)).convert("RGB").save(path, quality=90)
    assert load_image(path).size == (4000, 3000)
    assert load_image(path, draft_side=448).size == (1000, 750)  # 1/4 scale: never below the side asked for
    spec = ModelSpec(
        "rgb",
        ("a", "b"),
        224,
        224,
        color_mode="RGB",
        resize="shorter_side_center_crop",
        resize_size=224,
        mean=(0.0,) * 3,
        std=(1.0,) * 3,
    )
    full = preprocess(np.asarray(load_image(path)), spec)  # an array: decoded at full size
    drafted = preprocess(path, spec)  # a path: decoded with draft
    assert np.abs(full - drafted).mean() < 2 / 255, np.abs(full - drafted).mean()


def test_a_sidecar_contradicting_the_embedded_spec_is_refused(tmp_path, digit):  # finding 7
    labels = [str(i) for i in range(10)]
    model = write_model(tmp_path, labels=labels[::-1], embed_labels=labels)
    result = run_infer("--engine", model, digit)
    assert result.returncode == 2 and b"differs from the spec embedded in the model in labels" in result.stderr
    (tmp_path / "tiny.json").unlink()  # without the stale sidecar the embedded spec is used
    assert run_infer("--engine", model, digit).returncode == 0


def test_engine_builder_refuses_a_spec_that_does_not_describe_the_graph(tmp_path):  # finding 29 (second half)
    from engine.onnx_info import inspect_onnx
    from engine.options import EngineBuildError

    labels = [str(i) for i in range(10)]
    assert inspect_onnx(write_model(tmp_path / "ok", embed_labels=labels)).spec.labels == tuple(labels)
    with pytest.raises(EngineBuildError, match=r"channels-last \(NHWC\)"):
        inspect_onnx(write_model(tmp_path / "nhwc", nhwc=True, embed_labels=labels))


def test_engine_builder_refuses_an_onnx_from_another_calibration_run(tmp_path):  # finding 9 (engine side)
    import onnx

    from engine.onnx_info import inspect_onnx
    from engine.options import EngineBuildError

    path = write_model(tmp_path, name="mnist_cnn")
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, {"edge_toolkit.calibration_sha256": "a" * 64})
    stamped = tmp_path / "mnist_cnn.int8.onnx"
    onnx.save(proto, str(stamped))
    (tmp_path / "mnist_cnn.calib.json").write_text(json.dumps({"sha256": "a" * 64}))
    assert inspect_onnx(stamped).calibration_sha256 == "a" * 64  # same run: fine
    (tmp_path / "mnist_cnn.calib.json").write_text(json.dumps({"sha256": "b" * 64}))
    with pytest.raises(EngineBuildError, match=r"mnist_cnn.int8.onnx: calibrated on set aaaaaaaaaaaa"):
        inspect_onnx(stamped)
