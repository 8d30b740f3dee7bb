"""Video files through the stream path: accuracy within codec loss, exact frame accounting, batching across
streams, selection options, ROI, smoothing and the annotated video."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from runtime.infer import main
from tests.runtime.stream.conftest import FRAMES, by_source, labels, read_jsonl, run_cli

# PyAV comes with the stream extra (`make install` installs it through dev); without it these tests skip
av = pytest.importorskip("av", reason="PyAV is not installed: pip install '.[stream]'")


def _run(capsys, *args: str) -> tuple[int, dict]:
    rc = main(list(args) + ["--json"])
    out = capsys.readouterr().out
    return rc, json.loads(out)


def test_h264_and_mjpeg_accuracy_within_codec_loss_and_exact_accounting(
    engine, clips, per_image_labels, mnist_test, tmp_path, capsys
):
    jsonl = tmp_path / "frames.jsonl"
    rc, doc = _run(
        capsys, "--engine", str(engine), str(clips["h264"]), str(clips["mjpeg"]), "--jsonl", str(jsonl), "--top-k", "3"
    )
    assert rc == 0 and doc["errors"] == []
    truth = labels(mnist_test)
    image_accuracy = np.mean(np.asarray(per_image_labels) == truth)
    results = by_source(read_jsonl(jsonl))
    for codec in ("h264", "mjpeg"):
        source = next(s for s in doc["sources"] if s["source"] == str(clips[codec]))
        assert (source["decoded"], source["classified"], source["dropped"], source["skipped"]) == (FRAMES, FRAMES, 0, 0)
        assert source["accounted"] and source["undecodable"] == 0
        rows = results[str(clips[codec])]
        assert sorted(rows) == list(range(FRAMES))  # every frame once, by index
        stream_labels = np.asarray([rows[i]["label"] for i in range(FRAMES)])
        agreement = np.mean(stream_labels == np.asarray(per_image_labels))
        assert agreement >= 0.95, f"{codec}: only {agreement:.0%} of frames agree with the per-image labels"
        assert np.mean(stream_labels == truth) >= image_accuracy - 2 / FRAMES
        assert [r["pts"] for r in (rows[0], rows[30])] == [0.0, pytest.approx(1.0, abs=1e-3)]  # 30 fps
        assert len(rows[0]["top_k"]) == 3 and rows[0]["latency_ms"] > 0
    assert doc["classified"] == 2 * FRAMES and doc["mean_batch"] >= 1


def test_four_concurrent_streams_give_the_results_of_four_single_runs(engine, clips, tmp_path, capsys):
    sources = [str(clips[c]) for c in ("h264", "mjpeg", "vp9", "h265")]
    single = {}
    for n, source in enumerate(sources):
        out = tmp_path / f"single{n}.jsonl"
        assert _run(capsys, "--engine", str(engine), source, "--jsonl", str(out))[0] == 0
        single.update(by_source(read_jsonl(out)))
    out = tmp_path / "four.jsonl"
    rc, doc = _run(capsys, "--engine", str(engine), *sources, "--jsonl", str(out))
    assert rc == 0
    together = by_source(read_jsonl(out))
    assert sorted(together) == sorted(single)
    for source in sources:
        assert sorted(together[source]) == list(range(FRAMES))
        for i in range(FRAMES):
            a, b = together[source][i], single[source][i]
            assert a["label"] == b["label"]
            assert a["probability"] == pytest.approx(b["probability"], abs=1e-5)
    assert doc["mean_batch"] > 1  # frames of different streams shared backend calls


def test_every_max_frames_and_fps_select_frames_and_account_for_the_rest(engine, clips, tmp_path, capsys):
    out = tmp_path / "every.jsonl"
    rc, doc = _run(
        capsys, "--engine", str(engine), str(clips["h264"]), "--every", "3", "--max-frames", "10", "--jsonl", str(out)
    )
    assert rc == 0
    assert sorted(r["frame"] for r in read_jsonl(out)) == list(range(0, 30, 3))
    source = doc["sources"][0]
    assert source["classified"] == 10 and source["decoded"] == 28 and source["skipped"] == 18 and source["accounted"]

    rc, doc = _run(capsys, "--engine", str(engine), str(clips["mjpeg"]), "--fps", "10", "--jsonl", str(out))
    frames = sorted(r["frame"] for r in read_jsonl(out))
    assert rc == 0 and frames == list(range(0, FRAMES, 3))  # 30 fps capped at 10: every third frame
    assert doc["sources"][0]["skipped"] == FRAMES - len(frames)


def test_roi_crops_before_the_specs_preprocessing(engine, clips, tmp_path, capsys, mnist_test):
    from runtime.model import Classifier

    out = tmp_path / "roi.jsonl"
    rc, _ = _run(
        capsys,
        "--engine",
        str(engine),
        str(clips["mjpeg"]),
        "--roi",
        "0,0,56,56",
        "--max-frames",
        "8",
        "--jsonl",
        str(out),
    )
    assert rc == 0
    got = [r["label"] for r in sorted(read_jsonl(out), key=lambda r: r["frame"])]
    corners = [
        Image.fromarray(img).resize((112, 112), Image.Resampling.NEAREST).crop((0, 0, 56, 56))
        for img in mnist_test.images[:8]
    ]
    with Classifier.from_path(engine) as classifier:
        expected = [p.label for p in classifier.predict(corners)]
    # MJPEG loss may flip a corner or two: a quarter of a digit is a weak input, and the stroke step (issue 27)
    # thresholds its width (here 6 of 8 agreed in CI). Without the crop the labels would be the whole digits'
    # (7 2 1 0 4 1 4 9 here): about 1 of 8 agrees with the corners.
    assert np.mean(np.asarray(got) == np.asarray(expected)) >= 6 / 8, (got, expected)

    rc, doc = _run(capsys, "--engine", str(engine), str(clips["mjpeg"]), "--roi", "100,100,50,50")
    assert rc == 1 and "--roi 100,100,50,50 leaves the 112×112 frame" in doc["errors"][0]
    assert doc["errors"][0].startswith(str(clips["mjpeg"]))


def test_smoothing_averages_the_last_n_probabilities(engine, clips, tmp_path, capsys):
    raw, smooth = tmp_path / "raw.jsonl", tmp_path / "smooth.jsonl"
    assert _run(capsys, "--engine", str(engine), str(clips["h264"]), "--top-k", "10", "--jsonl", str(raw))[0] == 0
    assert _run(capsys, "--engine", str(engine), str(clips["h264"]), "--smoothing", "5", "--jsonl", str(smooth))[0] == 0
    probs = {r["frame"]: {t["label"]: t["probability"] for t in r["top_k"]} for r in read_jsonl(raw)}
    for row in read_jsonl(smooth):
        i = row["frame"]
        window = [probs[j][row["label"]] for j in range(max(0, i - 4), i + 1)]
        assert row["probability"] == pytest.approx(np.mean(window), abs=1e-5)


def test_annotated_video_has_every_frame_with_the_label_drawn(engine, clips, tmp_path, capsys):
    target = tmp_path / "annotated.mp4"
    rc, doc = _run(capsys, "--engine", str(engine), str(clips["h264"]), "--annotate", str(target), "--top-k", "3")
    assert rc == 0 and target.is_file() and not list(tmp_path.glob(".annotated*"))  # renamed into place
    # a file source waits for the encoder thread instead of dropping: every frame is in the file, and it says so
    assert doc["outputs"] == [{"annotated": str(target), "frames": FRAMES, "dropped": 0}]
    with av.open(str(target)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (112, 112)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == FRAMES
    with av.open(str(clips["h264"])) as container:
        original = next(container.decode(video=0)).to_ndarray(format="rgb24")
    banner = frames[0][2:12, 2:50].astype(int)  # the top-1 label's white text on its green bar, top left
    assert banner.max() > 200 and np.abs(banner - original[2:12, 2:50]).mean() > 20
    red, green, blue = (banner[..., c].mean() for c in range(3))
    assert green > red + 20 and green > blue + 40, "no probability bar drawn"


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_damaged_file_decodes_what_it_can_and_names_the_bad_part(engine, clips, tmp_path, capsys, damage):
    data = bytearray(clips["mjpeg" if damage == "corrupt" else "h265"].read_bytes())
    if damage == "truncated":
        bad = tmp_path / "cut.mkv"
        bad.write_bytes(bytes(data[: len(data) // 2]))
    else:
        bad = tmp_path / "corrupt.avi"
        start = len(data) // 3
        data[start : start + 3000] = bytes(3000)
        bad.write_bytes(bytes(data))
    out = tmp_path / "bad.jsonl"
    rc, doc = _run(capsys, "--engine", str(engine), str(bad), "--jsonl", str(out))
    source = doc["sources"][0]
    assert rc == 1 and 0 < source["classified"] < FRAMES and source["accounted"]
    assert len(read_jsonl(out)) == source["classified"]
    assert doc["errors"] and all(e.startswith(f"{bad}: ") for e in doc["errors"])
    if damage == "truncated":  # Matroska: the header's duration says how much is missing
        assert "truncated or corrupt: frames stop at" in doc["errors"][0]
    else:  # AVI: the header's frame count does (FFmpeg conceals damage inside a frame, which is not reported)
        assert f"truncated or corrupt: decoded {source['decoded']} of the {FRAMES} frames" in doc["errors"][-1]


def test_unsupported_codec_missing_file_and_not_a_video_are_one_line_each(clips, engine, tmp_path):
    unknown = tmp_path / "unknown.avi"
    unknown.write_bytes(clips["mjpeg"].read_bytes().replace(b"MJPG", b"QZX1"))  # a FourCC no decoder knows
    (tmp_path / "notes.mp4").write_text("not a video")
    out = run_cli(
        "--engine",
        str(engine),
        str(unknown),
        str(tmp_path / "notes.mp4"),
        str(tmp_path / "gone.mp4"),
        str(clips["h264"]),
        "--max-frames",
        "3",
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == 3  # the good source still ran
    err = out.stderr
    assert f"{unknown}: its video codec cannot be decoded by this FFmpeg build" in err
    assert f"{tmp_path / 'notes.mp4'}: not a video FFmpeg can read" in err
    assert f"{tmp_path / 'gone.mp4'}: no such file; check the path" in err
