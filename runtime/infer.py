"""Classify images with an exported model: ``python -m runtime.infer --engine mnist_cnn.fp32.onnx IMG|DIR ...``

Finds the model's spec beside it (or in its metadata), preprocesses every input as the spec
says, runs them in batches and prints the label and probability of each. Bad inputs are listed
and skipped; the good ones are still classified; the exit status is then 1.
Exit status: 0 all inputs classified, 1 some inputs were bad, 2 the model or arguments are wrong.
Video files, image sequences, cameras and network streams go to ``runtime.stream`` (see its ``cli``);
``--view 8090`` then shows them annotated in a browser (``runtime.stream.view``). Stream-only options given
with image files are refused, not ignored.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from formats.cli import (
    EXIT_CHECK_FAILED,
    EXIT_OK,
    EXIT_SOME_INPUTS_BAD,
    EXIT_USER_ERROR,
    command_parser,
    dumps,
    error_boundary,
    positive_int,
    safe,
    thread_count,
)
from formats.errors import InputError, RuntimeToolkitError
from runtime.model import Classifier
from runtime.postprocess import Prediction, checked_top_k
from runtime.preprocess import find_images, preprocess
from runtime.providers import add_provider_arguments, cuda_options_from_args
from runtime.stream.cli import add_stream_arguments, run_streams, stream_only_options, wants_stream


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "infer",
        None,
        [
            "edge infer --engine artifacts/mnist_cnn/mnist_cnn.fp32.onnx digits/ --top-k 3",
            "edge infer --engine asl_cnn.int8.ort.onnx photo.jpg --json     # INT8 on the CPU",
            "edge infer --engine asl_cnn.fp32.onnx clip.mp4 --fps 15       # a video: JSON Lines on stdout",
            "edge infer --engine asl_cnn.int8.plan /dev/video0 --roi center # a camera, TensorRT (GPU)",
            "edge infer --engine asl_cnn.int8.plan --self-test             # golden I/O of the manifest",
        ],
        description="Classify images with an exported model (.onnx; spec JSON beside it or embedded).",
    )
    parser.add_argument("--engine", required=True, type=Path, help="model file (.onnx, or a TensorRT .plan)")
    parser.add_argument(
        "inputs", nargs="*", help="image files or folders of images, or video/camera/network sources (see below)"
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check a .plan against the golden inputs/outputs in its manifest and exit",
    )
    parser.add_argument("--batch-size", type=positive_int(), default=32, help="inputs per inference call (default 32)")
    parser.add_argument("--top-k", type=positive_int(), default=1, help="classes to print per input (default 1)")
    add_provider_arguments(parser)
    parser.add_argument("--threads", type=thread_count(), default=None, help="intra-op threads (default: ORT's choice)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    hands = parser.add_argument_group(
        "hand stage",
        "find the hand first (MediaPipe's palm detector and landmarker as ONNX; `edge hands` makes them), "
        "classify it, and answer 'no hand' instead of a letter when none is found",
    )
    hands.add_argument(
        "--hands", action="store_true", help="crop the hand before an image model (always on for a landmark model)"
    )
    hands.add_argument(
        "--hand-models",
        type=Path,
        default=None,
        help="folder of hand_palm/hand_landmark.fp32.onnx (default: --engine's)",
    )
    hands.add_argument(
        "--fallback", type=Path, default=None, help="an image model that reads the whole photo when no hand is found"
    )
    add_stream_arguments(parser)
    return parser


def expand_inputs(inputs: Sequence[Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files and the images of folders, in order; (input, message) for a folder that cannot be used."""
    files, errors = [], []
    for item in inputs:
        if item.is_dir():
            try:
                found = find_images(item)
            except InputError as exc:
                errors.append((str(item), str(exc)))
                continue
            if not found:
                errors.append((str(item), f"{item}: folder holds no image files"))
            files.extend(found)
        else:
            files.append(item)
    return files, errors


def _chunks(items: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def classify_files(
    classifier: Classifier, files: list[Path], batch_size: int, k: int
) -> Iterator[tuple[Path, Prediction | InputError]]:
    """Yield (file, prediction) or (file, the InputError that made it unusable), in input order."""
    spec = classifier.spec
    for chunk in _chunks(files, batch_size):
        samples, results = [], []
        for path in chunk:
            try:
                samples.append(preprocess(path, spec))
                results.append(None)
            except InputError as exc:
                results.append(exc)
        predictions = iter(())
        if samples:
            outputs = classifier.run(np.stack(samples))
            sources = [str(path) for path, error in zip(chunk, results) if error is None]
            predictions = iter(checked_top_k(outputs, spec, k, sources))
        for path, error in zip(chunk, results):
            yield path, (error if error is not None else next(predictions))


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test:
        return self_test_main(args)
    if not args.inputs:
        parser.error("give image files or folders to classify (or --self-test)")
    try:
        cuda = cuda_options_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    if wants_stream(args.inputs):
        return run_streams(args, args.providers, cuda)
    ignored = stream_only_options(args, parser)
    if ignored:
        print(
            f"error: {', '.join(ignored)}: only for video, camera and network sources, and the inputs are image "
            "files; drop the option, or give the images as a sequence ('DIR/*.png') to run them as a stream",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    files, errors = expand_inputs([Path(text) for text in args.inputs])
    total = len(files) + len(errors)
    results = []
    try:
        with Classifier.from_path(args.engine, providers=args.providers, threads=args.threads, cuda=cuda) as classifier:
            if wants_hands(args, classifier):
                outcomes = classify_hands(classifier, files, args)
            else:
                outcomes = classify_files(classifier, files, args.batch_size, args.top_k)
            for path, outcome in outcomes:
                if isinstance(outcome, InputError):
                    errors.append((str(path), str(outcome)))
                else:
                    results.append((str(path), outcome))
                    if not args.json:
                        print(format_prediction(path, outcome))
            model_name = classifier.spec.name
            backend = classifier.backend
            execution = backend.execution() if hasattr(backend, "execution") else None
    except RuntimeToolkitError as exc:
        print(f"error: {safe(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.json:
        doc = {
            "model": model_name,
            "engine": str(args.engine),
            "execution": execution,
            "results": [{"input": p, **pred.to_dict()} for p, pred in results],
            "errors": [{"input": p, "error": msg} for p, msg in errors],
        }
        print(dumps(doc))
    if errors:
        if not args.json:
            print(f"\n{len(errors)} of {total} input(s) could not be used:", file=sys.stderr)
            for _, message in errors:
                print(f"  {safe(message)}", file=sys.stderr)
        return EXIT_SOME_INPUTS_BAD
    return EXIT_OK


def self_test_main(args) -> int:
    from runtime.self_test import self_test

    try:
        report = self_test(args.engine)
    except RuntimeToolkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(dumps(report.to_dict()) if args.json else report.summary())
    return EXIT_OK if report.passed else EXIT_CHECK_FAILED


def wants_hands(args, classifier: Classifier) -> bool:
    from runtime.spec import InputKind

    return bool(args.hands or args.fallback) or classifier.spec.input_kind is InputKind.HAND_LANDMARKS


def classify_hands(classifier: Classifier, files: list[Path], args) -> Iterator[tuple[Path, object]]:
    """(file, HandResult or InputError) per file: the hand stage, then the classifier (or the fallback)."""
    from contextlib import ExitStack

    from runtime.hand_classify import HandClassifier
    from runtime.hands import HandFinder, HandModels
    from runtime.preprocess import load_image

    folder = args.hand_models if args.hand_models is not None else args.engine.parent
    with ExitStack() as stack:
        finder = stack.enter_context(HandFinder(HandModels.in_folder(folder), args.providers, args.threads))
        fallback = None
        if args.fallback is not None:
            fallback = stack.enter_context(Classifier.from_path(args.fallback, args.providers, args.threads))
        reader = HandClassifier(finder, classifier, fallback)
        for path in files:
            try:
                yield path, reader.classify(load_image(path), args.top_k, str(path))
            except InputError as exc:
                yield path, exc


def format_prediction(path: Path, prediction) -> str:
    """The text line of one input: ``PATH: label (p)  label (p)``; ``edge client`` prints the same. A HandResult
    (``--hands``) prints ``PATH: no hand``, or notes that the fallback model read the whole photo."""
    if not isinstance(prediction, Prediction):  # a HandResult
        if prediction.prediction is None:
            return f"{safe(path)}: no hand"
        note = "" if prediction.answered_by.value == "hand" else f"  [{prediction.answered_by.value}: no hand found]"
        return format_prediction(path, prediction.prediction) + note
    ranked = "  ".join(f"{safe(lab)} ({p:.4f})" for lab, p in zip(prediction.labels, prediction.probabilities))
    return f"{safe(path)}: {ranked}"


if __name__ == "__main__":
    sys.exit(main())
