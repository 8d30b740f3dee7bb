"""The stream options of ``python -m runtime.infer`` and the run they start.

Per-frame results are JSON Lines on stdout (or ``--jsonl FILE``); the summary goes to stderr, or to
stdout as one JSON document with ``--json`` (then per-frame lines go only to ``--jsonl``); it names every output
(annotated videos, the JSON Lines file, the browser view) with its frame counts. ``--view [HOST:]PORT`` serves
the annotated streams to browsers (``runtime.stream.view``) and says where on stderr. Exit status:
0 every source read cleanly, 1 a source failed or was damaged (the others still ran), 2 usage, model or
missing-decoder errors, 130 interrupted (after the frames in flight were finished and the summary printed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path

from formats.cli import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_INPUTS_BAD,
    EXIT_USER_ERROR,
    non_negative_int,
    positive_float,
    positive_int,
    safe,
)
from formats.writer import add_force_argument, declare_inputs, set_force
from runtime.providers import CudaOptions
from runtime.stream.uri import SourceKind, SourceSyntaxError, is_stream_source, parse_source


def add_stream_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "video, camera and network sources",
        "clip.mp4, 'frames/%05d.png', 'frames/*.png', /dev/video0, v4l2:///dev/video0?width=1280&height=720&fps=30, "
        "rtsp://…, http(s)://…, csi://0, gst://PIPELINE",
    )
    group.add_argument(
        "--fps", type=positive_float(), default=None, help="classify at most this many frames/s per source"
    )
    group.add_argument("--every", type=positive_int(), default=1, help="classify every Nth decoded frame (default 1)")
    group.add_argument("--max-frames", type=positive_int(), default=None, help="stop each source after N frames")
    group.add_argument("--loop", action="store_true", help="restart files and image sequences at their end")
    group.add_argument("--roi", default=None, help="region of interest: x,y,w,h in pixels, or 'center' (centre square)")
    group.add_argument(
        "--smoothing",
        type=positive_int(),
        default=1,
        help="average probabilities over the last N frames of each source (default 1: off)",
    )
    group.add_argument("--jsonl", type=Path, default=None, help="write per-frame JSON Lines to this file")
    group.add_argument(
        "--annotate",
        type=Path,
        default=None,
        help="write the frames with label and confidence drawn on them (.mp4 .mkv .avi .webm)",
    )
    group.add_argument(
        "--reconnect",
        type=non_negative_int(),
        default=5,
        help="network sources: reconnect attempts (back-off 0.5 s doubling, capped at 8 s; default 5)",
    )
    group.add_argument("--queue-size", type=positive_int(), default=8, help="frames queued per source (default 8)")
    add_force_argument(group)
    group.add_argument(
        "--view",
        type=view_address,
        default=None,
        metavar="[HOST:]PORT",
        help="watch the annotated streams in a browser at http://HOST:PORT/ (HOST defaults to 127.0.0.1, "
        "loopback only; 0.0.0.0 for every interface; PORT 0 picks a free one). Viewers never slow inference: "
        "their frames are dropped, not queued",
    )


# options that mean something only for frames of a stream; given with image files they are refused, not ignored
STREAM_ONLY = (
    "fps",
    "every",
    "max_frames",
    "loop",
    "roi",
    "smoothing",
    "jsonl",
    "annotate",
    "reconnect",
    "queue_size",
    "view",
)


def view_address(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` → (host, port); the host defaults to 127.0.0.1 (loopback only)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535 or (sep and not host):
        raise argparse.ArgumentTypeError(f"expected [HOST:]PORT such as 8090 or 0.0.0.0:8090, got {text!r}")
    return host, number


def stream_only_options(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """The stream options given (not at their default) — they mean nothing for image files."""
    given = [name for name in STREAM_ONLY if getattr(args, name) != parser.get_default(name)]
    return ["--" + name.replace("_", "-") for name in given]


def wants_stream(inputs: list[str]) -> bool:
    return any(is_stream_source(text) for text in inputs)


def run_streams(args: argparse.Namespace, providers: str | None, cuda: CudaOptions | None = None) -> int:
    """Classify the frames of ``args.inputs``; prints results and summary, returns the exit status."""
    images = [text for text in args.inputs if not is_stream_source(text)]
    if images:
        return _usage(
            f"{images[0]}: image files and folders cannot be mixed with video, camera or network sources "
            "in one run; run them separately, or give the images as a sequence ('DIR/*.png')"
        )
    try:
        specs = [parse_source(text) for text in args.inputs]
        options = _options(args)
        _check_outputs(args)
    except (SourceSyntaxError, ValueError) as exc:
        return _usage(str(exc))
    set_force(args.force)
    declare_inputs(args.engine, *(path for spec in specs for path in _input_files(spec)))
    from formats.errors import RuntimeToolkitError
    from runtime.stream.sources import check_gstreamer, import_av

    try:
        if any(spec.kind is not SourceKind.GSTREAMER for spec in specs) or args.annotate:
            import_av()
        for spec in specs:
            if spec.kind is SourceKind.GSTREAMER:
                check_gstreamer(spec.uri)
        return _run(args, specs, options, providers, cuda)
    except RuntimeToolkitError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted again: stopped without finishing the frames in flight", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # an output that cannot be written (disk full, a folder that cannot be created)
        print(f"error: cannot write the output: {exc}; free space or choose another path", file=sys.stderr)
        return EXIT_USER_ERROR


def _run(args, specs, options, providers, cuda) -> int:
    from runtime.model import Classifier
    from runtime.stream.pipeline import StreamPipeline
    from runtime.stream.report import LiveLine, format_summary, summary
    from runtime.stream.sinks import AnnotatedVideoSink, JsonLinesSink

    sinks = []
    view = None
    if args.view is not None:  # bound before the model loads: a busy port fails at once
        from runtime.stream.view import LiveView

        view = LiveView(*args.view, [spec.uri for spec in specs], options.roi)
        url = view.start()
        where = f"listening on {args.view[0]}"
        if _loopback(args.view[0]):
            where = "loopback only; --view 0.0.0.0:PORT listens on every interface"
        print(f"live view: {url} ({where})", file=sys.stderr, flush=True)
        sinks.append(view)
    try:
        with (
            Classifier.from_path(args.engine, providers=providers, threads=args.threads, cuda=cuda) as classifier,
            _hand_stage(args, classifier, providers) as prepare,
        ):
            if view is not None:
                view.model = classifier.spec.name
            if args.annotate is not None:
                sinks.append(
                    AnnotatedVideoSink(
                        args.annotate, len(specs), args.fps or 30.0, options.roi, [spec.live for spec in specs]
                    )
                )
            if args.jsonl is not None or not args.json:
                sinks.append(JsonLinesSink(path=args.jsonl))
            live = LiveLine()

            def write(result, image) -> None:
                for sink in list(sinks):
                    try:
                        sink.write(result, image)
                    except BrokenPipeError:  # `... | head`: the reader left; stop like any Unix filter
                        sinks.remove(sink)
                        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                        pipeline.stop()

            pipeline = StreamPipeline(classifier, specs, options, write, on_tick=live, prepare=prepare)
            if view is not None:
                view.attach(pipeline.stats)
            interrupted = _run_interruptible(pipeline)
            live.clear()
            model = classifier.spec.name
    except ValueError as exc:
        return _usage(str(exc))
    finally:
        for sink in sinks:
            sink.close()
    outputs = [entry for sink in sinks if hasattr(sink, "outputs") for entry in sink.outputs()]
    doc = summary(pipeline, model, str(args.engine), interrupted, outputs)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print("\n".join(safe(line) for line in format_summary(doc).splitlines()), file=sys.stderr)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_SOME_INPUTS_BAD if doc["errors"] else EXIT_OK


@contextlib.contextmanager
def _hand_stage(args, classifier, providers):
    """Per-frame preparation through the hand stage (``--hands``, or a landmark model), else None (the spec's
    preprocessing). A fallback model is for photos (``runtime.infer`` on files); frames without a hand say so."""
    from runtime.spec import InputKind

    if not (getattr(args, "hands", False) or classifier.spec.input_kind is InputKind.HAND_LANDMARKS):
        yield None
        return
    if getattr(args, "fallback", None) is not None:
        raise ValueError(
            "--fallback applies to image files; on video and cameras a frame without a hand says 'no hand'"
        )
    from runtime.hand_classify import HandClassifier
    from runtime.hands import HandFinder, HandModels

    folder = args.hand_models if getattr(args, "hand_models", None) is not None else Path(args.engine).parent
    with HandFinder(HandModels.in_folder(folder), providers, args.threads) as finder:
        reader = HandClassifier(finder, classifier)
        yield lambda image: reader.sample(image)[0]


def _run_interruptible(pipeline) -> bool:
    """Run; the first Ctrl-C stops decoding and lets the frames in flight finish, a second one aborts."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        pipeline.run()
        return False

    def on_sigint(signum, frame) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()
        pipeline.stop()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        pipeline.run()
    finally:
        signal.signal(signal.SIGINT, previous)
    return interrupted.is_set()


def _options(args):
    from runtime.stream.pipeline import Roi, StreamOptions
    from runtime.stream.sources import ReadOptions

    return StreamOptions(
        fps=args.fps,
        every=args.every,
        max_frames=args.max_frames,
        roi=Roi.parse(args.roi) if args.roi else None,
        smoothing=args.smoothing,
        top_k=args.top_k,
        max_batch=args.batch_size,
        queue_size=args.queue_size,
        keep_images=args.annotate is not None or args.view is not None,
        read=ReadOptions(loop=args.loop, reconnect_attempts=args.reconnect),
    )


def _check_outputs(args) -> None:
    if args.jsonl is not None and args.annotate is not None:
        if os.path.abspath(args.jsonl) == os.path.abspath(args.annotate):
            raise ValueError(f"--jsonl and --annotate both name {args.jsonl}; give each its own file")


def _input_files(spec) -> list[Path]:
    """The files a source reads (a video file, the frames of an image sequence): outputs must not replace them."""
    if spec.kind is SourceKind.FILE:
        return [Path(spec.target)]
    if spec.kind is SourceKind.IMAGE_SEQUENCE:
        from runtime.stream.sources import sequence_files

        return [Path(name) for name in sequence_files(spec.target)]
    return []


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _usage(message: str) -> int:
    print(f"error: {safe(message)}", file=sys.stderr)
    return EXIT_USER_ERROR
