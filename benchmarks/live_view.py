"""``edge bench view --engine FILE``: does a browser watching ``--view`` slow inference?

Runs ``edge infer --engine FILE CLIP --loop --max-frames N`` as users run it, in interleaved rounds of three arms:
``off`` (no ``--view``), ``idle`` (``--view``, nobody watching) and ``watched`` (one viewer reading the MJPEG
stream with a plain HTTP client, as fast as it can). Each run's frames/s is the pipeline's own (classified frames
over its run time, model loading excluded). Reports each arm's median frames/s and, per round, the ratios
``watched/off`` and ``idle/off`` (median, min, max) with the machine; the issue's goal is watched/off ≥ 0.9.

Without ``--clip``, the clip is 60 real MNIST test digits as H.264, 112×112 (the stream tests' clip; needs the
data set: ``EDGE_DATA_DIR``). Prints a text report, or one JSON document with ``--json``; writes nothing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import select
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from benchmarks.timing import environment
from formats.cli import EXIT_OK, EXIT_USER_ERROR, describe, error_boundary, positive_int

ARMS = ("off", "idle", "watched")
REPO = Path(__file__).resolve().parent.parent
EXAMPLES = (
    "edge bench view --engine artifacts/mnist_cnn/mnist_cnn.fp32.onnx   # 5 interleaved rounds, a looping digit clip",
    "edge bench view --engine asl_cnn.fp32.onnx --clip hands.mp4 --rounds 9 --json",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", type=Path, required=True, help="model file (.onnx or .plan)")
    parser.add_argument("--clip", type=Path, default=None, help="video to loop (default: 60 MNIST digits, H.264)")
    parser.add_argument("--rounds", type=positive_int(), default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--frames", type=positive_int(), default=600, help="frames classified per run (default 600)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def _viewer(url: str, stop: threading.Event, counts: list[int]) -> None:
    """One MJPEG viewer: reads every part it is sent until ``stop``; counts the frames."""
    match = re.match(r"http://([^:/]+):(\d+)/", url)
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=30)
    try:
        connection.request("GET", "/stream/0.mjpg")
        response = connection.getresponse()
        while not stop.is_set():
            if response.readline() != b"--frame\r\n":
                return
            length = 0
            for line in iter(response.readline, b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            response.read(length + 2)
            counts[0] += 1
    except OSError:
        return
    finally:
        connection.close()


def run_once(engine: Path, clip: Path, frames: int, arm: str) -> dict:
    """One ``edge infer`` run of ``arm``: its summary's frames/s and, when watched, the JPEG frames received."""
    argv = [sys.executable, "-m", "runtime.infer", "--engine", str(engine), str(clip), "--loop"]
    argv += ["--max-frames", str(frames), "--top-k", "3", "--json"] + (["--view", "0"] if arm != "off" else [])
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, counts, viewer = threading.Event(), [0], None
    if arm != "off":
        ready, _, _ = select.select([process.stderr], [], [], 60)
        line = process.stderr.readline() if ready else ""
        url = re.search(r"live view: (http://\S+)", line)
        if url is None:
            process.kill()
            raise RuntimeError(f"edge infer --view printed no URL: {line!r}")
        if arm == "watched":
            viewer = threading.Thread(target=_viewer, args=(url.group(1), stop, counts), daemon=True)
            viewer.start()
    out, err = process.communicate(timeout=600)
    stop.set()
    if process.returncode != 0:
        raise RuntimeError(f"edge infer failed ({process.returncode}): {err.strip()[-500:]}")
    doc = json.loads(out)
    return {"arm": arm, "frames_per_s": doc["frames_per_s"], "classified": doc["classified"], "jpeg": counts[0]}


def default_clip(folder: Path) -> Path:
    from benchmarks.stream import write_video
    from train.data.mnist import load_mnist

    data = Path(os.environ.get("EDGE_DATA_DIR", "data"))
    return write_video(folder / "digits.mp4", load_mnist(data, "test").images[:60], "libx264", (112, 112))


def _spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4), "max": round(max(values), 4)}


def run(args: argparse.Namespace) -> int:
    if not args.engine.is_file():
        print(f"error: --engine {args.engine}: no such file; give an exported model (.onnx)", file=sys.stderr)
        return EXIT_USER_ERROR
    with tempfile.TemporaryDirectory(prefix="edge-view-bench-") as tmp:
        clip = args.clip or default_clip(Path(tmp))
        rounds = []
        for n in range(args.rounds):
            order = ARMS if n % 2 == 0 else tuple(reversed(ARMS))  # interleaved, alternating order: drift cancels
            rounds.append({r["arm"]: r for r in (run_once(args.engine, clip, args.frames, arm) for arm in order)})
    fps = {arm: [r[arm]["frames_per_s"] for r in rounds] for arm in ARMS}
    doc = {
        "engine": str(args.engine),
        "clip": str(args.clip or "60 MNIST digits, H.264 112×112"),
        "frames_per_run": args.frames,
        "rounds": rounds,
        "frames_per_s": {arm: _spread(values) for arm, values in fps.items()},
        "watched_over_off": _spread([w / o for w, o in zip(fps["watched"], fps["off"])]),
        "idle_over_off": _spread([i / o for i, o in zip(fps["idle"], fps["off"])]),
        "jpeg_frames_received": [r["watched"]["jpeg"] for r in rounds],
        "load_average": os.getloadavg(),
        "environment": environment(),
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    env = doc["environment"]
    print(
        f"{args.rounds} interleaved rounds of {args.frames} frames on {env['cpu']} ({env['cores']} cores), "
        f"load average {doc['load_average'][0]:.1f}"
    )
    for arm in ARMS:
        s = doc["frames_per_s"][arm]
        print(f"  {arm:<8} {s['median']:.1f} frames/s (min {s['min']:.1f}, max {s['max']:.1f})")
    for key in ("watched_over_off", "idle_over_off"):
        s = doc[key]
        print(f"  {key.replace('_', ' ')}: {s['median']:.3f} (min {s['min']:.3f}, max {s['max']:.3f})")
    print(f"  the viewer received {statistics.median(doc['jpeg_frames_received']):.0f} JPEG frames per run (median)")
    return EXIT_OK


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks view", description=describe(__doc__))
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
