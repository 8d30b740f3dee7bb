"""The bad-input corpus: real files written to a temporary folder, each with the behaviour we promise.

Every case runs the shipped code path (the deploy CLI, the backend, the data loaders, the builder,
preflight, the spec loader) and asserts the promised behaviour. ``docs/BAD_INPUTS.md`` is generated
from this list (``python -m tests.hardening.corpus > docs/BAD_INPUTS.md``) and a test checks that
it matches, so the table cannot drift from what is tested.
"""
# Over 400 lines: the hostile-input corpus is one table (and the generator of docs/BAD_INPUTS.md); its rows are
# data, not logic, and read best in one place.

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@dataclass
class Ctx:
    tmp: Path
    engine: Path  # a real MNIST CNN ONNX export
    good: Path  # a real MNIST test digit as PNG
    capsys: object  # pytest's capsys, to read the CLI's output


@dataclass(frozen=True)
class Case:
    kind: str
    name: str
    behaviour: str
    run: Callable[[Ctx], None]


# --- helpers -------------------------------------------------------------------------------------------


def infer_cli(ctx: Ctx, bad: Path, expect_exit: int, message: str | None = None) -> dict:
    """The deploy CLI on [good digit, bad input]: the good one is always classified."""
    from runtime.infer import main

    code = main(["--engine", str(ctx.engine), str(ctx.good), str(bad), "--json"])
    out = ctx.capsys.readouterr().out
    doc = json.loads(out)
    assert code == expect_exit, (code, doc)
    assert any(r["input"] == str(ctx.good) for r in doc["results"]), doc
    if message is not None:
        assert [e for e in doc["errors"] if e["input"] == str(bad) and re.search(message, e["error"])], doc["errors"]
    else:
        assert any(r["input"] == str(bad) for r in doc["results"]), doc
    return doc


def image_case(name: str, behaviour: str, make: Callable[[Path], None], message: str | None) -> Case:
    def run(ctx: Ctx) -> None:
        path = ctx.tmp / name.replace(" ", "_").replace(",", "")
        make(path)
        infer_cli(ctx, path, 1 if message else 0, message)

    return Case("image file", name, behaviour, run)


def _png(path: Path, image: Image.Image) -> None:
    image.save(path, format="PNG")


def _truncated(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8)).save(buffer, "PNG")
    path.with_suffix(".png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    path.with_suffix(".png").rename(path)


def _exif_rotated(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, format="JPEG", exif=exif)
    from runtime.preprocess import load_image

    assert load_image(path).size == (20, 40)  # transposed as a viewer shows it


def _animated(path: Path) -> None:
    frames = [Image.new("L", (28, 28), v) for v in (0, 128, 255)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _bomb(path: Path) -> None:
    Image.new("1", (10_000, 10_000)).save(path, format="PNG")  # 100 M pixels, a few KB on disk


def tensor_case(name: str, behaviour: str, make: Callable[[], np.ndarray], message: str) -> Case:
    def run(ctx: Ctx) -> None:
        import pytest

        from formats.errors import BackendInputError
        from runtime.backends.onnxruntime import OnnxRuntimeBackend

        with OnnxRuntimeBackend(ctx.engine) as backend:
            with pytest.raises(BackendInputError, match=message):
                backend.infer({"input": make()})
            ok = backend.infer({"input": np.zeros((2, 1, 28, 28), np.float32)})  # still usable afterwards
            assert ok["logits"].shape == (2, 10)

    return Case("tensor", name, behaviour, run)


def _nan() -> np.ndarray:
    x = np.zeros((3, 1, 28, 28), np.float32)
    x[1, 0, 5, 5] = np.nan
    return x


def _inf() -> np.ndarray:
    x = np.zeros((2, 1, 28, 28), np.float32)
    x[0, 0, 0, 0] = np.inf
    return x


SIGN_HEADER = "label," + ",".join(f"pixel{i}" for i in range(1, 785))


def csv_case(name: str, behaviour: str, text: str, message: str) -> Case:
    def run(ctx: Ctx) -> None:
        import pytest

        from train.data.sign_mnist import load_sign_mnist_file
        from train.errors import DataError

        path = ctx.tmp / f"{name.replace(' ', '_')}.csv"
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            load_sign_mnist_file(path)

    return Case("Sign-MNIST CSV", name, behaviour, run)


def _row(label: int = 3, pixels: list[str] | None = None) -> str:
    return ",".join([str(label), *(pixels if pixels is not None else ["7"] * 784)])


def idx_case(name: str, behaviour: str, data: bytes, message: str) -> Case:
    def run(ctx: Ctx) -> None:
        import pytest

        from train.data.mnist import parse_idx, read_idx_bytes
        from train.errors import DataError

        path = ctx.tmp / f"{name.replace(' ', '_')}.idx.gz"
        path.write_bytes(gzip.compress(data))
        with pytest.raises(DataError, match=message):
            parse_idx(read_idx_bytes(path), str(path))

    return Case("MNIST IDX", name, behaviour, run)


def onnx_case(name: str, behaviour: str, make: Callable[[Path], bytes], cli_message: str, build_message: str) -> Case:
    def run(ctx: Ctx) -> None:
        import pytest

        from engine.build import EngineBuildError, inspect_onnx
        from runtime.infer import main

        bad = ctx.tmp / f"{name.replace(' ', '_')}.onnx"
        bad.write_bytes(make(ctx.engine))
        assert main(["--engine", str(bad), str(ctx.good)]) == 2
        assert re.search(cli_message, ctx.capsys.readouterr().err)
        with pytest.raises(EngineBuildError, match=build_message):
            inspect_onnx(bad)

    return Case("ONNX model", name, behaviour, run)


def _plan_with_manifest(folder: Path, body: bytes = b"ftrt" + bytes(range(256)) * 8, **fields) -> Path:
    from formats.engine_manifest import EngineManifest, manifest_path

    plan = folder / "model.int8.plan"
    plan.write_bytes(body)
    manifest = EngineManifest(
        plan_sha256=hashlib.sha256(body).hexdigest(),
        plan_bytes=len(body),
        source_onnx="model.int8.onnx",
        source_sha256="0" * 64,
        flavour="tensorrt",
        trt_version="10.3.0",
        precision="int8",
        quantization_path="strongly-typed",
        profiles=[],
        build_flags={},
        spec={},
        device={"name": "Orin", "compute_capability": "8.7"},
        rebuild_command="python -m engine --onnx model.int8.onnx --out model.int8.plan",
    )
    for key, value in fields.items():
        setattr(manifest, key, value)
    manifest_path(plan).write_text(manifest.to_json())
    return plan


HERE = ("tensorrt", "10.3.0", {"name": "Orin", "compute_capability": "8.7"})


def plan_case(name: str, behaviour: str, mutate: Callable[[Path], None], message: str, here: tuple = HERE) -> Case:
    def run(ctx: Ctx) -> None:
        import pytest

        from formats.engine_manifest import EnginePreflightError, preflight
        from runtime.infer import main

        folder = ctx.tmp / re.sub(r"\W+", "_", name)
        folder.mkdir()
        plan = _plan_with_manifest(folder)
        mutate(plan)
        with pytest.raises(EnginePreflightError, match=message) as info:
            preflight(plan, *here)
        assert "\n" not in str(info.value)
        if here is HERE:  # a problem in the file itself: the deploy CLI says so on any machine, TensorRT or not
            assert main(["--engine", str(plan), str(ctx.good)]) == 2
            assert re.search(message, ctx.capsys.readouterr().err)

    return Case("TensorRT plan", name, behaviour, run)


def _edit_manifest(**fields) -> Callable[[Path], None]:
    def mutate(plan: Path) -> None:
        path = plan.with_name(plan.name + ".json")
        data = json.loads(path.read_text())
        data.update(fields)
        path.write_text(json.dumps(data))

    return mutate


def spec_case(name: str, behaviour: str, edit: Callable[[dict], dict | list], message: str) -> Case:
    def run(ctx: Ctx) -> None:
        from runtime.infer import main
        from runtime.spec import ModelSpec

        spec = json.loads(ModelSpec.load(ctx.engine.with_name("mnist_cnn.json")).to_json())
        folder = ctx.tmp / re.sub(r"\W+", "_", name)
        folder.mkdir()
        model = folder / "mnist_cnn.fp32.onnx"
        model.write_bytes(ctx.engine.read_bytes())
        (folder / "mnist_cnn.json").write_text(json.dumps(edit(spec)))
        assert main(["--engine", str(model), str(ctx.good)]) == 2
        err = ctx.capsys.readouterr().err
        assert re.search(message, err), err

    return Case("ModelSpec", name, behaviour, run)


def _without(key):
    def edit(spec):
        spec.pop(key)
        return spec

    return edit


def _with(**values):
    def edit(spec):
        spec.update(values)
        return spec

    return edit


def path_case(name: str, behaviour: str, argv: Callable[[Ctx], list[str]], code: int, message: str) -> Case:
    def run(ctx: Ctx) -> None:
        from runtime.infer import main

        assert main(argv(ctx)) == code
        captured = ctx.capsys.readouterr()
        assert re.search(message, captured.err + captured.out), captured

    return Case("path", name, behaviour, run)


def media_case(
    kind: str, name: str, behaviour: str, make: Callable[[Path], str], message: str, was: str | None = None
) -> Case:
    """The real ``edge infer`` (``python -m runtime.infer --json``, a subprocess) on a source ``make`` writes with
    PyAV (or names): exit 1, no traceback, ``message`` in its error or stream problem, and not the old words."""

    def run(ctx: Ctx) -> None:
        source = make(ctx.tmp)
        done = subprocess.run(
            [sys.executable, "-m", "runtime.infer", "--engine", str(ctx.engine), source, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ctx.tmp,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        assert done.returncode == 1 and "Traceback" not in done.stderr, (done.returncode, done.stderr)
        doc = json.loads(done.stdout)
        said = [e["error"] if isinstance(e, dict) else e for e in doc["errors"]]  # images: dicts; streams: lines
        assert len(said) == 1 and said[0].startswith(f"{source}: ") and re.search(message, said[0]), said
        assert was is None or was not in said[0], said
        assert all(s["reconnects"] == 0 for s in doc.get("sources", [])), doc["sources"]  # no retry of the hopeless

    return Case(kind, name, behaviour, run)


def _audio(path: Path, codec: str = "pcm_s16le") -> str:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return str(path)


def _no_frames(path: Path) -> str:
    """A video file with a stream header and not one frame: a recording stopped before its first frame."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
    return str(path)


def _srt(tmp: Path) -> str:
    import av

    try:
        av.open("srt://127.0.0.1:1", timeout=(0.5, 0.5)).close()
    except av.error.ProtocolNotFoundError:
        return "srt://127.0.0.1:1"
    except av.error.FFmpegError:
        pass
    pytest.skip("this FFmpeg build has SRT: the missing-protocol message cannot be shown")


# --- the corpus ----------------------------------------------------------------------------------------

CASES: list[Case] = [
    image_case(
        "truncated PNG", "reported by name, other inputs classified, exit 1", _truncated, r"truncated or corrupt"
    ),
    image_case(
        "zero-byte file",
        "reported by name, other inputs classified, exit 1",
        lambda p: p.write_bytes(b""),
        r"not a readable image",
    ),
    image_case(
        "not an image",
        "reported by name, other inputs classified, exit 1",
        lambda p: p.write_text("hello, I am a text file"),
        r"not a readable image",
    ),
    image_case(
        "16-bit grayscale PNG",
        "decoded (scaled to 8 bit) and classified",
        lambda p: _png(p, Image.fromarray((np.arange(784).reshape(28, 28) * 80).astype(np.uint16))),
        None,
    ),
    image_case(
        "CMYK JPEG",
        "converted to the spec's colour mode and classified",
        lambda p: Image.new("CMYK", (30, 30), (0, 50, 100, 0)).save(p, format="JPEG"),
        None,
    ),
    image_case(
        "RGBA PNG",
        "alpha composited on black, classified",
        lambda p: _png(p, Image.new("RGBA", (28, 28), (255, 255, 255, 128))),
        None,
    ),
    image_case(
        "palette PNG",
        "palette expanded, classified",
        lambda p: _png(p, Image.new("RGB", (28, 28), (10, 200, 30)).convert("P")),
        None,
    ),
    image_case(
        "huge dimensions",
        "refused before decoding (decompression-bomb limit), exit 1",
        _bomb,
        r"too large to decode safely",
    ),
    image_case("EXIF-rotated JPEG", "rotated as a viewer shows it, then classified", _exif_rotated, None),
    image_case("animated GIF", "first frame classified", _animated, None),
    tensor_case(
        "wrong shape",
        "BackendInputError naming the expected shape",
        lambda: np.zeros((2, 3, 28, 28), np.float32),
        r"shape \(2, 3, 28, 28\), expected input: float32\[\?, 1, 28, 28\]",
    ),
    tensor_case(
        "wrong dtype",
        "BackendInputError naming the expected dtype",
        lambda: np.zeros((2, 1, 28, 28), np.float64),
        r"dtype float64, expected float32",
    ),
    tensor_case(
        "NaN in a sample", "BackendInputError naming the sample", _nan, r"sample\(s\) \[1\] contain NaN or Inf"
    ),
    tensor_case(
        "Inf in a sample", "BackendInputError naming the sample", _inf, r"sample\(s\) \[0\] contain NaN or Inf"
    ),
    tensor_case(
        "empty batch", "BackendInputError: empty batch", lambda: np.zeros((0, 1, 28, 28), np.float32), r"empty batch"
    ),
    csv_case(
        "short row",
        "DataError with the line number, nothing dropped silently",
        f"{SIGN_HEADER}\n{_row()}\n{_row(pixels=['7'] * 700)}\n",
        r"line 3",
    ),
    csv_case("long row", "DataError with the line number", f"{SIGN_HEADER}\n{_row(pixels=['7'] * 790)}\n", r"line 2"),
    csv_case(
        "non-numeric value",
        "DataError with the line number",
        f"{SIGN_HEADER}\n{_row(pixels=['x'] + ['7'] * 783)}\n",
        r"line 2",
    ),
    csv_case(
        "pixel out of range",
        "DataError with the line number",
        f"{SIGN_HEADER}\n{_row(pixels=['300'] + ['7'] * 783)}\n",
        r"line 2",
    ),
    csv_case(
        "unknown label", "DataError (J and Z are not in Sign-MNIST)", f"{SIGN_HEADER}\n{_row(label=9)}\n", r"line 2"
    ),
    csv_case("empty file", "DataError: empty", "", r"empty|no rows|header"),
    csv_case("no header", "DataError: header expected", f"{_row()}\n", r"header"),
    idx_case("wrong magic", "DataError: not an IDX file", b"\x12\x34\x08\x01" + bytes(8), r"not an IDX file"),
    idx_case(
        "short body",
        "DataError: truncated, with the byte counts and the fetch command",
        b"\x00\x00\x08\x03" + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(100),
        r"IDX body has 100 bytes",
    ),
    onnx_case(
        "truncated ONNX",
        "runtime exit 2 with one line; the builder refuses it before the parser",
        lambda good: good.read_bytes()[: len(good.read_bytes()) // 3],
        r"cannot load this file",
        r"not a valid ONNX model",
    ),
    onnx_case(
        "random bytes",
        "runtime exit 2 with one line; the builder refuses it before the parser",
        lambda good: np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes(),
        r"cannot load this file",
        r"not a valid ONNX model",
    ),
    plan_case(
        "ONNX file passed as a plan",
        "refused before deserializing; says it is an ONNX model and how to build",
        lambda p: p.write_bytes(b"\x08\x08\x12\x07pytorch" + bytes(64)),
        r"an ONNX model",
    ),
    plan_case(
        "zip passed as a plan",
        "refused before deserializing",
        lambda p: zipfile.ZipFile(p, "w").writestr("x", "y"),
        r"a zip archive",
    ),
    plan_case(
        "truncated plan",
        "refused: size differs from the manifest; rebuild command",
        lambda p: p.write_bytes(p.read_bytes()[:500]),
        r"truncated or replaced",
    ),
    plan_case(
        "plan from another TensorRT version",
        "refused with the exact rebuild command",
        lambda p: None,
        r"built by tensorrt 10.3.0, this machine has 10.13.0.*python -m engine",
        here=("tensorrt", "10.13.0", None),
    ),
    plan_case(
        "plan from another GPU",
        "refused with the exact rebuild command",
        lambda p: None,
        r"compute capability 8.7.*\(8.9\); rebuild here",
        here=("tensorrt", "10.3.0", {"name": "RTX 4090", "compute_capability": "8.9"}),
    ),
    plan_case(
        "plan without its manifest",
        "refused: cannot be checked",
        lambda p: p.with_name(p.name + ".json").unlink(),
        r"manifest .* not found",
    ),
    plan_case(
        "manifest of a different plan",
        "refused: contents do not match the manifest",
        lambda p: p.write_bytes(b"ftrt" + bytes(2048)),
        r"do not match its manifest",
    ),
    plan_case(
        "manifest with plan_bytes as a string",
        "refused: names the field, says rebuild",
        lambda p: _edit_manifest(plan_bytes=str(p.stat().st_size))(p),
        r"plan_bytes '2052' \(expected a byte",
    ),
    plan_case(
        "manifest golden entry without sha256",
        "refused: names the golden entry, says rebuild",
        _edit_manifest(golden={"file": "model.int8.plan.golden.npz", "count": 8}),
        r"golden entry without its file name and sha256",
    ),
    plan_case(
        "manifest not UTF-8",
        "refused: unreadable manifest, rebuild",
        lambda p: p.with_name(p.name + ".json").write_bytes(b"\xff\xfe{not utf-8"),
        r"unreadable engine manifest",
    ),
    spec_case("spec missing a field", "exit 2 naming the field", _without("labels"), r"missing field\(s\) labels"),
    spec_case(
        "spec with an unknown field", "exit 2 naming the field", _with(colour="blue"), r"unknown field\(s\) colour"
    ),
    spec_case("spec with a wrong value", "exit 2 naming the field", _with(height=-3), r"height"),
    spec_case(
        "spec for another model",
        "exit 2: labels do not match the outputs",
        _with(labels=["a", "b", "c"]),
        r"outputs 10 classes but the spec lists 3",
    ),
    spec_case("spec that is not an object", "exit 2", lambda spec: [1, 2, 3], r"expected a JSON object"),
    media_case(
        "media file",
        "audio file (WAV) given as an image",
        "exit 1: says it is audio, what is read (images, videos) and the fix (was: 'not a readable image')",
        lambda tmp: _audio(tmp / "voice_memo.wav"),
        r"is an audio file \(WAV\), not an image; this reads images .* and videos",
        was="not a readable image",
    ),
    media_case(
        "media file",
        "audio-only .mkv given as a video",
        "exit 1: says it holds only audio, and its codec",
        lambda tmp: _audio(tmp / "song.mkv"),
        r"holds only audio \(pcm_s16le\), no video stream; give a video file",
    ),
    media_case(
        "media file",
        "0-frame .mkv (a header, no frame)",
        "exit 1: says it has no video frames and the fix (was: 'cannot be opened (End of file)')",
        lambda tmp: _no_frames(tmp / "stopped.mkv"),
        r"has no video frames .*; record or export it again",
        was="End of file",
    ),
    media_case(
        "media file",
        "a FIFO named clip.mp4",
        "exit 1 at once: is a FIFO, expected a video file (was: FFmpeg blocked on it for ever)",
        lambda tmp: os.mkfifo(tmp / "clip.mp4") or str(tmp / "clip.mp4"),
        r"is a FIFO \(named pipe\), expected a video file",
    ),
    media_case(
        "stream source",
        "srt:// with an FFmpeg built without SRT",
        "exit 1 at once, no reconnects: names the missing protocol and the schemes to use (was: 'stream "
        "unreachable… check the camera' after 5 retries)",
        _srt,
        r"this FFmpeg build \(PyAV's\) has no 'srt' protocol.*use one of rtsp://",
        was="unreachable",
    ),
    path_case(
        "image path that does not exist",
        "reported by name, others classified, exit 1",
        lambda c: ["--engine", str(c.engine), str(c.good), str(c.tmp / "nope.png")],
        1,
        r"nope.png.*(no such|not)",
    ),
    path_case(
        "empty folder of images",
        "reported, others classified, exit 1",
        lambda c: (c.tmp / "empty_dir").mkdir() or ["--engine", str(c.engine), str(c.good), str(c.tmp / "empty_dir")],
        1,
        r"folder holds no image files",
    ),
    path_case(
        "model path that does not exist",
        "exit 2 with one line",
        lambda c: ["--engine", str(c.tmp / "missing.onnx"), str(c.good)],
        2,
        r"missing.onnx: model file not found",
    ),
    path_case(
        "model path is a folder",
        "exit 2 with one line",
        lambda c: ["--engine", str(c.tmp), str(c.good)],
        2,
        r"(not found|folder|directory)",
    ),
]


def table() -> str:
    lines = [
        "# Bad inputs and what happens",
        "",
        "Generated from `tests/hardening/corpus.py` (`python -m tests.hardening.corpus > docs/BAD_INPUTS.md`); "
        "every row is a test that writes the input and checks the behaviour.",
        "",
        "| input kind | case | behaviour |",
        "|---|---|---|",
    ]
    lines += [f"| {c.kind} | {c.name} | {c.behaviour} |" for c in CASES]
    from tests.hardening.cli_cases import CASES as CLI_CASES

    lines += [
        "",
        "## Every command-line entry point",
        "",
        "From `tests/hardening/cli_cases.py`: each row runs the real entry point (`python -m ...`) and checks "
        "the contract of `tests/hardening/test_cli_contract.py`: no traceback, exit status 1 or 2, an "
        "`error:` line naming the input, a valid JSON document on stdout with `--json`, no file changed "
        "outside the output folder. An unexpected exception prints one line and the path of its saved "
        "traceback (`--debug` prints it).",
        "",
        "| command | bad input | behaviour | finding (issue 13; 21.N: issue 21) |",
        "|---|---|---|---|",
    ]
    for c in CLI_CASES:
        command, _, bad = c.id.partition(": ")
        lines.append(f"| `{command}` | {bad} | {c.behaviour} | {c.finding} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
