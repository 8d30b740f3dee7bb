import json
import shutil

import numpy as np
import pytest
from PIL import Image

from runtime.infer import main
from runtime.spec import METADATA_KEY


@pytest.fixture(scope="module")
def digits(tmp_path_factory, mnist_test):
    """Ten real test digits as PNG files, named by their true label."""
    folder = tmp_path_factory.mktemp("digits")
    for i in range(10):
        Image.fromarray(mnist_test.images[i]).save(folder / f"{i:02d}_{mnist_test.labels[i]}.png")
    return folder


@pytest.fixture(scope="module")
def engine(trained_mnist):
    return trained_mnist["mnist_cnn"][1]


def test_classifies_a_folder_with_json_output(engine, digits, capsys):
    assert main(["--engine", str(engine), str(digits), "--json", "--top-k", "3", "--batch-size", "4"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "mnist_cnn" and doc["errors"] == []
    assert len(doc["results"]) == 10
    right = sum(r["label"] == r["input"].rsplit("_", 1)[1][0] for r in doc["results"])
    assert right >= 9  # a briefly trained CNN on real digits
    first = doc["results"][0]
    assert len(first["top_k"]) == 3 and first["top_k"][0]["probability"] >= first["top_k"][1]["probability"]


def test_batch_size_does_not_change_results(engine, digits, capsys):
    outs = []
    for bs in ("1", "7"):
        main(["--engine", str(engine), str(digits), "--json", "--batch-size", bs])
        outs.append([r["probability"] for r in json.loads(capsys.readouterr().out)["results"]])
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5)


def test_bad_inputs_are_listed_and_good_ones_still_classified(engine, digits, tmp_path, capsys):
    (tmp_path / "notes.png").write_text("not an image")
    good = sorted(digits.iterdir())[:2]
    rc = main(
        ["--engine", str(engine), str(good[0]), str(tmp_path / "notes.png"), str(tmp_path / "nope.png"), str(good[1])]
    )
    out, err = capsys.readouterr()
    assert rc == 1
    assert out.count("\n") == 2 and good[0].name in out and good[1].name in out
    assert "2 of 4 input(s) could not be used" in err
    assert "notes.png: not a readable image" in err and "nope.png: no such file" in err
    assert "Traceback" not in err


def test_spec_from_metadata_when_no_sidecar(engine, digits, tmp_path, capsys):
    lone = tmp_path / "lone.onnx"
    shutil.copyfile(engine, lone)
    assert main(["--engine", str(lone), str(next(digits.iterdir())), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == "mnist_cnn"


def test_missing_spec_is_a_clear_error(engine, digits, tmp_path, capsys):
    import onnx

    model = onnx.load(engine)
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    assert main(["--engine", str(tmp_path / "bare.onnx"), str(digits)]) == 2
    err = capsys.readouterr().err
    assert "no ModelSpec found" in err and "bare.json" in err and METADATA_KEY in err
    assert "Traceback" not in err


def test_spec_of_another_model_is_refused(engine, digits, tmp_path, capsys):
    from runtime.spec import ModelSpec

    shutil.copyfile(engine, tmp_path / "m.onnx")
    ModelSpec(name="other", labels=("a", "b"), height=28, width=28).save(tmp_path / "m.json")
    assert main(["--engine", str(tmp_path / "m.onnx"), str(digits)]) == 2
    assert "model outputs 10 classes but the spec lists 2 labels" in capsys.readouterr().err


def test_a_file_that_is_not_a_model(tmp_path, digits, capsys):
    (tmp_path / "fake.onnx").write_bytes(b"PK\x03\x04 zip, not onnx")
    assert main(["--engine", str(tmp_path / "fake.onnx"), str(digits)]) == 2
    assert "fake.onnx: ONNX Runtime cannot load this file as an ONNX model" in capsys.readouterr().err


def test_a_plan_that_is_not_a_plan_is_refused_before_tensorrt(tmp_path, digits, capsys):
    (tmp_path / "asl.plan").write_bytes(b"\0" * 64)
    assert main(["--engine", str(tmp_path / "asl.plan"), str(digits)]) == 2
    assert "asl.plan: not a TensorRT plan, not a serialized TensorRT engine" in capsys.readouterr().err


def test_self_test_needs_a_plan(engine, capsys):
    assert main(["--engine", str(engine), "--self-test"]) == 2
    assert "--self-test checks TensorRT plans" in capsys.readouterr().err


def test_no_inputs_without_self_test_is_a_usage_error(engine, capsys):
    with pytest.raises(SystemExit):
        main(["--engine", str(engine)])
    assert "give image files or folders" in capsys.readouterr().err


def test_usage_errors_exit_2(engine, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--engine", str(engine), "x.png", "--batch-size", "0"])
    assert info.value.code == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def test_module_runs_as_a_program(engine, digits):
    import subprocess
    import sys

    from tests.conftest import REPO

    out = subprocess.run(
        [sys.executable, "-m", "runtime.infer", "--engine", str(engine), str(digits)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.strip().splitlines()) == 10


@pytest.mark.parametrize(
    "options, named",
    [
        (["--roi", "center"], "--roi"),
        (["--smoothing", "5", "--fps", "10"], "--fps, --smoothing"),
        (["--view", "0"], "--view"),
    ],
)
def test_stream_options_with_image_files_are_refused_not_ignored(engine, digits, options, named, capsys):
    assert main(["--engine", str(engine), str(digits), *options]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {named}: only for video, camera and network sources")
    assert "'DIR/*.png'" in err


@pytest.mark.parametrize("text, expected", [("8090", ("127.0.0.1", 8090)), ("0.0.0.0:0", ("0.0.0.0", 0))])
def test_view_address_defaults_to_loopback(text, expected):
    from runtime.stream.cli import view_address

    assert view_address(text) == expected


def test_a_bad_view_address_is_a_usage_error(engine, digits, capsys):
    with pytest.raises(SystemExit):
        main(["--engine", str(engine), str(digits), "--view", "host:port"])
    assert "expected [HOST:]PORT such as 8090 or 0.0.0.0:8090, got 'host:port'" in capsys.readouterr().err
