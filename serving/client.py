"""Classify images on a running Triton server: ``edge client URL IMAGE|DIR ... [--model NAME] [--top-k K] [--json]``.

The client half of serving in two commands (``edge triton --model m.onnx --repo repo`` then ``edge serve --repo
repo``): it sends the image files as they are (PNG, JPEG, ...) to a Python-backend model and prints exactly what
``edge infer`` prints for them, the same lines or, with ``--json``, the same ``results``/``errors`` document.

URL: ``HOST:PORT`` or ``http://HOST:PORT`` (Triton's HTTP port, 8000) or ``grpc://HOST:PORT`` (gRPC, 8001).
Without ``--model`` the server's only ready model is used. Examples::

    edge client 127.0.0.1:8000 digit.png photos/ --top-k 3
    edge client grpc://127.0.0.1:8001 digit.png --model mnist_cnn --json

Exit status: 0 every image classified, 1 some images were bad (listed; the others were still classified),
2 no server at URL, no such model, or bad arguments.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from formats.cli import (
    EXIT_OK,
    EXIT_SOME_INPUTS_BAD,
    EXIT_USER_ERROR,
    command_parser,
    dumps,
    error_boundary,
    positive_int,
    safe,
)
from formats.errors import RuntimeToolkitError
from runtime.infer import expand_inputs, format_prediction
from runtime.postprocess import Prediction
from serving.triton_client import Classified, Protocol, TritonClassifier

_REQUEST_PREFIX = re.compile(r"^request '[^']*' image \d+: ")  # how serving.triton_model names a bad image


class ClientError(RuntimeToolkitError):
    """The server cannot be reached, or has no model to ask."""


@dataclass(frozen=True)
class Endpoint:
    url: str  # HOST:PORT, as tritonclient takes it
    protocol: Protocol

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        scheme, sep, rest = text.partition("://")
        if not sep:
            scheme, rest = "http", text
        match = re.fullmatch(r"[\w.\-\[\]:]+:(\d+)/?", rest)
        if scheme not in ("http", "grpc") or not match or not 0 < int(match[1]) <= 65535:  # a port tritonclient takes
            raise argparse.ArgumentTypeError(
                f"expected HOST:PORT, http://HOST:PORT or grpc://HOST:PORT (e.g. 127.0.0.1:8000), got {text!r}"
            )
        return cls(rest.rstrip("/"), Protocol(scheme))


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "client",
        __doc__,
        [
            "edge client 127.0.0.1:8000 photo.jpg   # HTTP; the only ready model answers",
            "edge client grpc://127.0.0.1:8001 photos/ --model mnist_cnn --top-k 3 --json",
        ],
    )
    p.add_argument("url", type=Endpoint.parse, help="the server: HOST:PORT (HTTP), http://… or grpc://…")
    p.add_argument("inputs", nargs="+", type=Path, help="image files or folders of images")
    p.add_argument("--model", default=None, help="model name in the repository (default: the only ready one)")
    p.add_argument("--top-k", type=positive_int(), default=1, help="classes to print per image (default 1)")
    p.add_argument("--batch-size", type=positive_int(), default=32, help="images per request (default 32)")
    p.add_argument("--timeout-s", type=float, default=30.0, help="per request (default 30)")
    p.add_argument("--json", action="store_true", help="print one JSON document, as `edge infer --json` does")
    return p


def ready_model(endpoint: Endpoint, wanted: str | None, timeout_s: float) -> str:
    """``wanted``, checked to be ready; or the server's only ready model."""
    client = TritonClassifier(endpoint.url, wanted or "", endpoint.protocol, timeout_s)._connect()
    try:
        index = client.get_model_repository_index()
    except Exception as exc:  # noqa: BLE001 - tritonclient raises its own exception types, or socket errors
        raise ClientError(
            f"{endpoint.protocol.value}://{endpoint.url}: no Triton server answers there ({_message(exc)}); "
            "start one with `edge serve --repo DIR` and give its HTTP (8000) or grpc:// (8001) address"
        ) from None
    finally:
        client.close()
    models = index if isinstance(index, list) else _grpc_index(index)  # HTTP: a list of dicts; gRPC: a message
    ready = sorted(m["name"] for m in models if m.get("state") == "READY")
    if wanted is not None:
        if wanted not in ready:
            raise ClientError(
                f"--model {wanted}: not ready on {endpoint.url} (ready: {', '.join(ready) or 'none'}); "
                "`edge serve` prints each model's state and reason"
            )
        return wanted
    if len(ready) != 1:
        raise ClientError(
            f"{endpoint.url}: {len(ready)} models are ready ({', '.join(ready) or 'none'}); name one with --model"
        )
    return ready[0]


def _grpc_index(index) -> list[dict]:
    return [{"name": m.name, "state": m.state} for m in index.models]


def _message(exc: BaseException) -> str:
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return " ".join(str(text).split())[:200]


def prediction(answer: Classified, row: int, k: int) -> Prediction:
    indices = [int(i) for i in answer.indices[row][:k]]
    return Prediction(
        tuple(indices),
        tuple(answer.labels[row][:k]),
        tuple(float(answer.probabilities[row][i]) for i in indices),
    )


def classify(
    client: TritonClassifier, files: list[Path], k: int, batch_size: int
) -> tuple[list[tuple[str, Prediction]], list[tuple[str, str]]]:
    """Each file's prediction, or its error; a batch the server refused is resent image by image."""
    from tritonclient.utils import InferenceServerException

    results, errors = [], []
    for start in range(0, len(files), batch_size):
        chunk, blobs = [], []
        for path in files[start : start + batch_size]:
            try:
                blobs.append(path.read_bytes())
                chunk.append(path)
            except OSError as exc:
                errors.append((str(path), f"{path}: cannot read ({exc.strerror or exc})"))
        if not chunk:
            continue
        try:
            answer = client.classify(blobs, request_id=f"edge-client-{start}")
            results.extend((str(p), prediction(answer, row, k)) for row, p in enumerate(chunk))
            continue
        except InferenceServerException:
            pass  # one bad image fails its whole request: find it, and answer the others
        for n, (path, blob) in enumerate(zip(chunk, blobs)):
            try:
                answer = client.classify([blob], request_id=f"edge-client-{start + n}")
                results.append((str(path), prediction(answer, 0, k)))
            except InferenceServerException as exc:
                errors.append((str(path), f"{path}: {_REQUEST_PREFIX.sub('', _message(exc))}"))
    return results, errors


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files, errors = expand_inputs(args.inputs)
    total = len(files) + len(errors)
    model = ready_model(args.url, args.model, args.timeout_s)
    with TritonClassifier(args.url.url, model, args.url.protocol, args.timeout_s) as client:
        results, bad = classify(client, files, args.top_k, args.batch_size)
    served_k = min((len(p.labels) for _, p in results), default=args.top_k)
    if served_k < args.top_k:
        print(
            f"error: --top-k {args.top_k}: model {model} returns {served_k} label(s) per image; ask for at most "
            f"{served_k}, or rewrite the repository with `edge triton --top-k {args.top_k}`",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    errors.extend(bad)
    order = {str(p): n for n, p in enumerate(files)}
    results.sort(key=lambda item: order[item[0]])
    if args.json:
        doc = {
            "model": model,
            "server": f"{args.url.protocol.value}://{args.url.url}",
            "results": [{"input": p, **pred.to_dict()} for p, pred in results],
            "errors": [{"input": p, "error": msg} for p, msg in errors],
        }
        print(dumps(doc))
    else:
        for path, pred in results:
            print(format_prediction(Path(path), pred))
    if errors:
        if not args.json:
            print(f"\n{len(errors)} of {total} input(s) could not be used:", file=sys.stderr)
            for _, message in errors:
                print(f"  {safe(message)}", file=sys.stderr)
        return EXIT_SOME_INPUTS_BAD
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
