"""The bad-input matrix of the CLI contract test: one row per (entry point, bad input), with the issue-13
finding it reproduces. ``World`` holds the real files the rows point at (a tiny ONNX model, checkpoints broken
in the ways users break them, an empty folder, an empty baseline)."""
# Over 400 lines: a data table (one Case per bad input per CLI) plus the world it runs in; splitting it by CLI
# would scatter the matrix that docs/BAD_INPUTS.md is generated from.

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import _data_dir
from tests.hardening.tiny_models import write_model

DATA = _data_dir()


@dataclass
class World:
    root: Path
    model: Path
    static_model: Path
    digit: Path
    checkpoints: dict[str, Path]
    mnist_spec: Path

    def __truediv__(self, name: str) -> Path:
        return self.root / name


@dataclass(frozen=True)
class Case:
    id: str
    finding: str  # the finding(s) this row reproduces: issue 13's number, "21.N" for issue 21's ("-": contract only)
    behaviour: str
    argv: Callable[[World, Path], list[str]]
    names: Callable[[World], str]  # what the error line must name
    check: Callable[[World, Path], None] | None = None


def _checkpoints(folder: Path) -> dict[str, Path]:
    import torch

    from train.cards import get_card
    from train.checkpoint import FORMAT

    entry = get_card("mnist_mlp")
    spec = json.loads(entry.spec().to_json())
    state = entry.build().state_dict()
    cnn_state = get_card("mnist_cnn").build().state_dict()
    variants = {
        "good": {},
        "traversal": {"spec": json.dumps({**spec, "name": "../../escaped"})},
        "absolute": {"spec": json.dumps({**spec, "name": str(folder / "abs" / "escaped")})},
        "no_spec": {"spec": None},
        "shape_mismatch": {"state_dict": cnn_state},
        "bad_metrics": {"metrics": "{not json"},
        "eleven_labels": {"spec": json.dumps({**spec, "labels": [str(i) for i in range(11)]})},
        "wrong_size": {"spec": json.dumps({**spec, "height": 32, "width": 32, "resize_size": 32})},
    }
    paths = {}
    for name, change in variants.items():
        payload = {
            "format": FORMAT,
            "model_name": "mnist_mlp",
            "state_dict": state,
            "spec": json.dumps(spec),
            "metrics": "{}",
            **change,
        }
        payload = {k: v for k, v in payload.items() if v is not None}
        path = folder / name / "mnist_mlp.pt"
        path.parent.mkdir(parents=True)
        torch.save(payload, path)
        paths[name] = path
    cnn = get_card("mnist_cnn")  # another model's checkpoint, to be passed off as mnist_mlp's
    paths["mnist_cnn"] = folder / "cnn" / "mnist_cnn.pt"
    paths["mnist_cnn"].parent.mkdir()
    payload = {"format": FORMAT, "model_name": "mnist_cnn", "state_dict": cnn_state, "metrics": "{}"}
    torch.save({**payload, "spec": cnn.spec().to_json()}, paths["mnist_cnn"])
    return paths


def make_world(root: Path) -> World:
    from train.cards import get_card

    digit = root / "digit.png"
    Image.fromarray(np.tile(np.arange(28, dtype=np.uint8) * 9, (28, 1))).save(digit)
    (root / "empty").mkdir()
    (root / "baseline_empty.json").write_text("{}")
    os.mkfifo(root / "baseline.fifo")
    try:  # a /dev/zero twin inside the world (never a system path); a FIFO where mknod is not allowed
        os.mknod(root / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        os.mkfifo(root / "zero")
    spec = root / "specs" / "mnist_cnn.json"
    spec.parent.mkdir()
    get_card("mnist_cnn").spec().save(spec)
    return World(
        root,
        write_model(root / "tiny"),
        write_model(root / "static", name="static", batch=1),
        digit,
        _checkpoints(root / "ckpt"),
        spec,
    )


def _sentinel_checkpoint(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "mnist_cnn.pt"
    path.write_bytes(b"a trained checkpoint the user wants to keep")
    return path


def _checkpoint_kept(world: World, out: Path) -> None:
    assert (out / "mnist_cnn.pt").read_bytes() == b"a trained checkpoint the user wants to keep"


def _calibration_folder(world: World, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.mnist_spec, out / "mnist_cnn.json")
    return out


def _impostor_checkpoint(w: World, out: Path) -> Path:
    """mnist_cnn.pt copied as mnist_mlp.pt beside mnist_mlp's spec (finding 21.7)."""
    from train.cards import get_card

    out.mkdir(parents=True, exist_ok=True)
    get_card("mnist_mlp").spec().save(out / "mnist_mlp.json")
    shutil.copy(w.checkpoints["mnist_cnn"], out / "mnist_mlp.pt")
    return out


def _keep_with_notes(w: World, out: Path) -> list[str]:
    """robustness --keep DIR where DIR already holds the user's notes at the first re-shot's path (finding 21.12)."""
    from calibration.robustness import CONDITIONS, subset

    model = write_model(out / "m", name="mnist_mlp")
    first = int(subset(10000, 2, 0)[0])
    for suffix in ("png", "jpg"):
        _plant(out, f"keep/{CONDITIONS[0][0]}/{first:05d}.{suffix}", NOTES)
    argv = ["calibration.robustness", "--model", str(model), "--data-dir", str(DATA), "--samples", "2"]
    return [*argv, "--keep", str(out / "keep"), "--json"]


def _notes_kept(w: World, out: Path) -> None:
    from calibration.robustness import CONDITIONS

    kept = list((out / "keep" / CONDITIONS[0][0]).iterdir())
    assert len(kept) == 2 and all(path.read_text() == NOTES for path in kept), kept


def _one_class_folder(w: World, out: Path) -> Path:
    folder = out / "photos" / "only_class"
    folder.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 32, 3), 50 * i, np.uint8)).save(folder / f"{i}.png")
    return out / "photos"


def _one_row_csv(w: World, out: Path) -> Path:
    path = out / "one_row.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    path.write_text(header + "\n" + "3," + ",".join(["128"] * 784) + "\n")
    return path


def _export(name: str) -> Callable[[World, Path], list[str]]:
    return lambda w, out: ["export", "--checkpoint", str(w.checkpoints[name]), "--out", str(out / "sub")]


# --- one writer (issue 13): a file of another kind at an output path is refused, kept, and --force is named ---

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00a holiday photo"
NOTES = "my notes, not a TensorRT calibration cache\n"


def _plant(out: Path, name: str, data: bytes | str) -> Path:
    path = out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _kept(name: str, data: bytes | str) -> Callable[[World, Path], None]:
    def check(world: World, out: Path) -> None:
        assert (out / name).read_bytes() == (data.encode() if isinstance(data, str) else data), name

    return check


def _foreign_onnx(w: World, out: Path) -> list[str]:
    shutil.copy(w.model, _plant(out, "sub/mnist_mlp.fp32.onnx", b""))  # a model without our metadata
    return _export("good")(w, out)


def _foreign_onnx_kept(world: World, out: Path) -> None:
    assert (out / "sub" / "mnist_mlp.fp32.onnx").read_bytes() == world.model.read_bytes()


def _triton_folder(w: World, out: Path) -> list[str]:
    _plant(out, "repo/tiny/keep.txt", "a folder of the user's, not a Triton model")
    return ["serving.repository", "--model", str(w.model), "--repo", str(out / "repo"), "--name", "tiny"]


def _labelled_photos(w: World, out: Path) -> Path:
    """A folder edge evaluate reads: a real digit under its class folder."""
    folder = out / "photos" / "7"
    folder.mkdir(parents=True)
    shutil.copy(w.digit, folder / "digit.png")
    return out / "photos"


CASES: list[Case] = [
    Case(
        "infer: model file missing",
        "21",
        "exit 2, one line, JSON error document",
        lambda w, out: ["runtime.infer", "--engine", str(w / "missing.onnx"), str(w.digit), "--json"],
        lambda w: "missing.onnx",
    ),
    Case(
        "infer: --batch-size 0",
        "-",
        "usage error exit 2, JSON error document",
        lambda w, out: ["runtime.infer", "--engine", str(w.model), str(w.digit), "--batch-size", "0", "--json"],
        lambda w: "--batch-size",
    ),
    Case(
        "doctor: unknown option",
        "-",
        "usage error exit 2, JSON error document",
        lambda w, out: ["runtime.doctor", "--bogus", "--json"],
        lambda w: "--bogus",
    ),
    Case(
        "engine: ONNX file missing",
        "21",
        "exit 2, one line, JSON error document",
        lambda w, out: ["engine", "--onnx", str(w / "missing.onnx"), "--out", str(out / "m.plan"), "--json"],
        lambda w: "missing.onnx",
    ),
    Case(
        "engine.bundle: archive missing",
        "-",
        "exit 2, one line, JSON error document",
        lambda w, out: ["engine.bundle", "unpack", str(w / "nope.tar.gz"), "--out", str(out / "b"), "--json"],
        lambda w: "nope.tar.gz",
    ),
    Case(
        "export: checkpoint missing",
        "-",
        "exit 2 naming the file",
        lambda w, out: ["export", "--checkpoint", str(w / "missing.pt"), "--out", str(out)],
        lambda w: "missing.pt",
    ),
    Case(
        "export: spec name '../../escaped'",
        "2",
        "refused: the name is not a plain file name; nothing written",
        _export("traversal"),
        lambda w: "escaped",
    ),
    Case(
        "export: spec name is an absolute path",
        "2",
        "refused: the name is not a plain file name",
        _export("absolute"),
        lambda w: "escaped",
    ),
    Case(
        "export: checkpoint without a spec",
        "14",
        "exit 2 naming the missing entry",
        _export("no_spec"),
        lambda w: "lacks spec",
    ),
    Case(
        "export: weights of another model",
        "14",
        "exit 2: the weights do not fit",
        _export("shape_mismatch"),
        lambda w: "do not fit",
    ),
    Case(
        "export: metrics not JSON",
        "14",
        "exit 2: metrics are not valid JSON",
        _export("bad_metrics"),
        lambda w: "metrics",
    ),
    Case(
        "export: 11 labels for 10 outputs",
        "14",
        "exit 2: the spec does not belong to the weights",
        _export("eleven_labels"),
        lambda w: "lists 11 labels",
    ),
    Case(
        "export: spec size differs from the model",
        "14",
        "exit 2: the model does not accept the spec's input",
        _export("wrong_size"),
        lambda w: "(1, 32, 32)",
    ),
    Case(
        "calibration: no spec in --artifacts",
        "21",
        "exit 2, JSON error document",
        lambda w, out: ["calibration", "--model", "mnist_cnn", "--artifacts", str(w / "empty"), "--json"],
        lambda w: "mnist_cnn.json",
    ),
    Case(
        "calibration: --calib-size 10000000",
        "22",
        "refused (larger than the training split), not clamped",
        lambda w, out: [
            "calibration",
            "--model",
            "mnist_cnn",
            "--artifacts",
            str(_calibration_folder(w, out)),
            "--data-dir",
            str(DATA),
            "--calib-size",
            "10000000",
            "--json",
        ],
        lambda w: "exceeds the 60000 training samples",
    ),
    Case(
        "calibration.gate: no checkpoint",
        "-",
        "exit 2, JSON error document",
        lambda w, out: ["calibration.gate", "--model", "mnist_cnn", "--artifacts", str(w / "empty"), "--json"],
        lambda w: "mnist_cnn.pt",
    ),
    Case(
        "calibration.robustness: model file missing",
        "-",
        "exit 2, JSON error document",
        lambda w, out: ["calibration.robustness", "--model", str(w / "empty" / "absent.fp32.onnx"), "--json"],
        lambda w: "absent.fp32.onnx",
    ),
    Case(
        "calibration.real_photos: model file missing",
        "-",
        "exit 2, one line naming the model file",
        lambda w, out: [
            "calibration.real_photos",
            "--model",
            str(w / "empty" / "absent.fp32.onnx"),
            str(w / "nowhere"),
        ],
        lambda w: "absent.fp32.onnx",
    ),
    Case(
        "train.dream: image missing",
        "-",
        "exit 2, one line naming the image",
        lambda w, out: ["train.dream", "--image", str(w / "empty" / "absent.jpg"), "--layer", "block6"],
        lambda w: "absent.jpg",
    ),
    Case(
        "benchmarks latency: --iterations 0",
        "24",
        "usage error exit 2, JSON error document",
        lambda w, out: ["benchmarks", "latency", "--engine", str(w.model), "--iterations", "0", "--json"],
        lambda w: "--iterations",
    ),
    Case(
        "benchmarks latency: --batch 100000000",
        "24",
        "refused before allocating, exit 2",
        lambda w, out: ["benchmarks", "latency", "--engine", str(w.model), "--batch", "100000000", "--json"],
        lambda w: "100000000",
    ),
    Case(
        "benchmarks latency: negative --threshold",
        "24",
        "usage error exit 2",
        lambda w, out: ["benchmarks", "latency", "--engine", str(w.model), "--threshold", "-1", "--json"],
        lambda w: "--threshold",
    ),
    Case(
        "benchmarks latency: negative --duration-s",
        "24",
        "usage error exit 2",
        lambda w, out: ["benchmarks", "latency", "--engine", str(w.model), "--duration-s", "-1", "--json"],
        lambda w: "--duration-s",
    ),
    Case(
        "benchmarks latency: empty {} baseline",
        "24",
        "refused: not a latency report",
        lambda w, out: [
            "benchmarks",
            "latency",
            "--engine",
            str(w.model),
            "--baseline",
            str(w / "baseline_empty.json"),
            "--out",
            str(out),
            "--json",
        ],
        lambda w: "baseline_empty.json",
    ),
    Case(
        "benchmarks latency: static-batch model, --batch 1,8",
        "12",
        "refused before measuring: names the batch",
        lambda w, out: [
            "benchmarks",
            "latency",
            "--engine",
            str(w.static_model),
            "--batch",
            "1,8",
            "--out",
            str(out),
            "--json",
        ],
        lambda w: "static batch of 1",
    ),
    Case(
        "benchmarks compare: no models in --artifacts",
        "21",
        "exit 2, one line, JSON error document",
        lambda w, out: [
            "benchmarks",
            "compare",
            "--model",
            "mnist_cnn",
            "--artifacts",
            str(w / "empty"),
            "--no-torch",
            "--json",
        ],
        lambda w: "empty",
    ),
    Case(
        "benchmarks.device_check: unknown option",
        "-",
        "usage error exit 2, JSON error document",
        lambda w, out: ["benchmarks.device_check", "--bogus", "--json"],
        lambda w: "--bogus",
    ),
    Case(
        "train: --epochs 0",
        "25",
        "usage error; the checkpoint in --out is kept",
        lambda w, out: _sentinel_checkpoint(out) and ["train", "mnist", "--epochs", "0", "--out", str(out)],
        lambda w: "--epochs",
        _checkpoint_kept,
    ),
    Case(
        "train: --batch-size 0",
        "25",
        "usage error exit 2",
        lambda w, out: ["train", "mnist", "--batch-size", "0", "--out", str(out)],
        lambda w: "--batch-size",
    ),
    Case(
        "train: --grid-lr without --kfold",
        "25",
        "refused instead of ignored",
        lambda w, out: ["train", "mnist", "--grid-lr", "0.1", "--out", str(out)],
        lambda w: "--grid-lr",
    ),
    # the entry points added with streams, Triton and ONNX Runtime on the GPU
    Case(
        "infer: --providers cuda on a CPU-only onnxruntime",
        "-",
        "exit 2 naming the provider and the fix",
        lambda w, out: ["runtime.infer", "--engine", str(w.model), str(w.digit), "--providers", "cuda", "--json"],
        lambda w: "cuda",
    ),
    Case(
        "serving.serve: repository missing",
        "-",
        "exit 2, one line, JSON error document",
        lambda w, out: ["serving.serve", "--repo", str(w / "no_repo"), "--json"],
        lambda w: "no_repo",
    ),
    Case(
        "serving.repository: model missing",
        "-",
        "exit 2 naming the file, no repository written",
        lambda w, out: ["serving.repository", "--model", str(w / "missing.onnx"), "--repo", str(out / "repo")],
        lambda w: "missing.onnx",
    ),
    Case(
        "benchmarks stream: model missing",
        "-",
        "exit 2, one line, JSON error document",
        lambda w, out: ["benchmarks", "stream", "--engine", str(w / "missing.onnx"), "--json"],
        lambda w: "missing.onnx",
    ),
    Case(
        "benchmarks triton: model missing",
        "-",
        "exit 2, one line, JSON error document",
        lambda w, out: ["benchmarks", "triton", "--model", str(w / "missing.onnx"), "--json"],
        lambda w: "missing.onnx",
    ),
    Case(
        "benchmarks ortgpu: model missing",
        "-",
        "exit 2, one line, JSON error document",
        lambda w, out: ["benchmarks", "ortgpu", "--engine", str(w / "missing.onnx"), "--json"],
        lambda w: "missing.onnx",
    ),
    Case(
        "export: a JPEG at the model's .fp32.onnx path",
        "one writer",
        "refused (looks like a JPEG image), the file kept; --force replaces it",
        lambda w, out: _plant(out, "sub/mnist_mlp.fp32.onnx", JPEG) and _export("good")(w, out),
        lambda w: "looks like a JPEG image, not an ONNX model; pass --force to replace it",
        _kept("sub/mnist_mlp.fp32.onnx", JPEG),
    ),
    Case(
        "export: somebody's own ONNX model at the .fp32.onnx path",
        "one writer",
        "refused (an ONNX model without our metadata), the file kept",
        _foreign_onnx,
        lambda w: "not written by this toolkit",
        _foreign_onnx_kept,
    ),
    Case(
        "train: a JPEG at the .metrics.json path",
        "one writer",
        "refused before training, the file kept",
        lambda w, out: (
            _plant(out, "mnist_cnn.metrics.json", JPEG)
            and ["train", "mnist", "--data-dir", str(DATA), "--limit", "64", "--epochs", "1", "--out", str(out)]
        ),
        lambda w: "mnist_cnn.metrics.json: already exists and looks like a JPEG image",
        _kept("mnist_cnn.metrics.json", JPEG),
    ),
    Case(
        "calibration: notes at the .calib.cache path",
        "one writer",
        "refused before the run writes anything, the file kept",
        lambda w, out: (
            _plant(_calibration_folder(w, out), "mnist_cnn.calib.cache", NOTES)
            and ["calibration", "--model", "mnist_cnn", "--artifacts", str(out), "--data-dir", str(DATA), "--json"]
        ),
        lambda w: "mnist_cnn.calib.cache: already exists and looks like a text file",
        _kept("mnist_cnn.calib.cache", NOTES),
    ),
    Case(
        "engine: --out names the model's spec JSON",
        "one writer",
        "refused before TensorRT is needed, the spec kept",
        lambda w, out: (
            _plant(out, "mnist_cnn.json", w.mnist_spec.read_bytes())
            and ["engine", "--onnx", str(w.model), "--out", str(out / "mnist_cnn.json"), "--json"]
        ),
        lambda w: "looks like a model spec (JSON), not a TensorRT plan; pass --force",
        lambda w, out: _kept("mnist_cnn.json", w.mnist_spec.read_bytes())(w, out),
    ),
    Case(
        "serving.repository: --repo/--name is a folder that is not a Triton model",
        "one writer",
        "refused (the folder would be replaced), kept",
        _triton_folder,
        lambda w: "is a folder that is not a Triton model (no config.pbtxt)",
        _kept("repo/tiny/keep.txt", "a folder of the user's, not a Triton model"),
    ),
    # issue 21: numbers from the command line are bounded by one shared set of argparse types (formats/cli.py)
    Case(
        "infer: --threads 20000",
        "21.9",
        "usage error exit 2 (at most 4 × the cores), before the model is opened",
        lambda w, out: ["runtime.infer", "--engine", str(w.model), str(w.digit), "--threads", "20000", "--json"],
        lambda w: "--threads",
    ),
    Case(
        "train.dream: --threads 100000",
        "21.9",
        "usage error exit 2 (was SIGSEGV, exit 139)",
        lambda w, out: ["train.dream", "--image", str(w.digit), "--layer", "block6", "--threads", "100000"],
        lambda w: "--threads",
    ),
    Case(
        "calibration: --seed -1",
        "21.22",
        "usage error exit 2 naming --seed",
        lambda w, out: ["calibration", "--model", "mnist_cnn", "--artifacts", str(w / "empty"), "--seed", "-1"],
        lambda w: "--seed",
    ),
    Case(
        "calibration.robustness: --seed -1",
        "21.22",
        "usage error exit 2 naming --seed",
        lambda w, out: ["calibration.robustness", "--model", str(w.model), "--seed", "-1", "--json"],
        lambda w: "--seed",
    ),
    Case(
        "train: --seed -1",
        "21.22",
        "usage error exit 2 naming --seed",
        lambda w, out: ["train", "mnist", "--seed", "-1", "--out", str(out)],
        lambda w: "--seed",
    ),
    Case(
        "benchmarks stream: --size 1x1",
        "21.23",
        "usage error exit 2 (even sides of at least 16)",
        lambda w, out: ["benchmarks", "stream", "--engine", str(w.model), "--size", "1x1", "--json"],
        lambda w: "--size",
    ),
    Case(
        "benchmarks stream: --size 20000x20000",
        "21.23",
        "usage error exit 2 (within the pixel bound images have)",
        lambda w, out: ["benchmarks", "stream", "--engine", str(w.model), "--size", "20000x20000", "--json"],
        lambda w: "--size",
    ),
    Case(
        "benchmarks stream: --images missing",
        "21.23",
        "exit 2 naming the file (was: benchmarked random noise, exit 0)",
        lambda w, out: [
            "benchmarks",
            "stream",
            "--engine",
            str(w.model),
            "--images",
            str(w / "nope.npz"),
            "--streams",
            "1",
            "--frames",
            "2",
            "--out",
            str(out),
            "--json",
        ],
        lambda w: "nope.npz",
    ),
    Case(
        "benchmarks latency: --baseline is a FIFO",
        "21.8",
        "refused at once (was: hung)",
        lambda w, out: [
            "benchmarks",
            "latency",
            "--engine",
            str(w.model),
            "--baseline",
            str(w / "baseline.fifo"),
            "--json",
        ],
        lambda w: "baseline.fifo: is a FIFO",
    ),
    Case(
        "benchmarks latency: --baseline is a character device",
        "21.8",
        "refused at once (was: /dev/zero read until OOM-killed)",
        lambda w, out: ["benchmarks", "latency", "--engine", str(w.model), "--baseline", str(w / "zero"), "--json"],
        lambda w: "zero: is a",
    ),
    Case(
        "calibration.gate: another model's checkpoint as the FP32 reference",
        "21.7",
        "refused before judging: names both models; no gate report written",
        lambda w, out: [
            "calibration.gate",
            "--model",
            "mnist_mlp",
            "--artifacts",
            str(_impostor_checkpoint(w, out)),
            "--data-dir",
            str(DATA),
            "--json",
        ],
        lambda w: "a checkpoint of model 'mnist_cnn' (mnist_cnn), not 'mnist_mlp'",
        lambda w, out: None if not list(out.glob("*.gate.*")) else pytest.fail("a gate report was written"),
    ),
    Case(
        "calibration.robustness: --keep DIR holds a text file at a re-shot's path",
        "21.12",
        "refused (looks like a text file, not a rendered image), the file kept; --force replaces it",
        _keep_with_notes,
        lambda w: "already exists and looks like a text file, not a rendered image; pass --force",
        _notes_kept,
    ),
    Case(
        "serving.serve: --log-file is a photo",
        "21.17",
        "refused before the server starts (was: the log appended to the JPEG), the photo kept",
        lambda w, out: (
            _plant(out, "photo.jpg", JPEG)
            and ["serving.serve", "--repo", str(w / "empty"), "--log-file", str(out / "photo.jpg"), "--json"]
        ),
        lambda w: "photo.jpg: already exists and looks like a JPEG image, not a log file; pass --force",
        _kept("photo.jpg", JPEG),
    ),
    # a hostile pass on the commands added last (issue 21, round three)
    Case(
        "serving.client: port 99999",
        "-",
        "usage error exit 2 naming the address (was: unexpected ValueError, a crash file, a tritonclient traceback)",
        lambda w, out: ["serving.client", "127.0.0.1:99999", str(w.digit), "--json"],
        lambda w: "127.0.0.1:99999",
    ),
    Case(
        "export.hands: --wheel is a FIFO",
        "-",
        "refused at once naming the FIFO (was: hung reading it)",
        lambda w, out: ["export.hands", "--out", str(out), "--wheel", str(w / "baseline.fifo"), "--json"],
        lambda w: "baseline.fifo: is a FIFO (named pipe), expected a mediapipe==0.10.14 wheel",
    ),
    Case(
        "calibration.real_photos: --out is a FIFO",
        "-",
        "exit 2: the path is not a folder (was: 'File exists')",
        lambda w, out: [
            "calibration.real_photos",
            "--model",
            str(w.model),
            str(_labelled_photos(w, out)),
            "--out",
            str(w / "baseline.fifo"),
            "--json",
        ],
        lambda w: "baseline.fifo: already exists and is not a folder; give a folder path there",
    ),
    Case(
        "runtime.apps.capture: --label with --keys",
        "-",
        "usage error exit 2, JSON error document (was: the error printed on stdout, no JSON)",
        lambda w, out: ["runtime.apps.capture", str(w.digit), "--out", str(out), "--label", "a", "--keys", "--json"],
        lambda w: "--label and --keys exclude each other",
    ),
    Case(
        "train transfer: an image folder with one class",
        "21.18",
        "refused before training: a classifier needs at least 2 classes (was: a 1-class spec written)",
        lambda w, out: ["train", "transfer", "--data", str(_one_class_folder(w, out)), "--out", str(out / "m")],
        lambda w: "only one class folder (only_class); a classifier needs at least 2 classes",
    ),
    Case(
        "train asl: a 1-row Sign-MNIST CSV",
        "21.18",
        "refused: the validation split would be empty (was: val_loss NaN in metrics.json)",
        lambda w, out: [
            "train",
            "asl",
            "--train-csv",
            str(_one_row_csv(w, out)),
            "--test-csv",
            str(out / "one_row.csv"),
            "--epochs",
            "1",
            "--out",
            str(out / "m"),
        ],
        lambda w: "leave an empty validation split",
    ),
]
