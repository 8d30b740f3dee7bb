"""Serve a Triton model repository with the real Triton Inference Server: ``python -m serving.serve --repo DIR``.

Starts ``tritonserver`` from the ``nvidia-pytriton`` wheel (``pip install '.[serve]'`` then
``pip install --no-deps nvidia-pytriton==0.7.0``; ``make serve-install`` does both), waits until
every model has loaded, prints the HTTP, gRPC and metrics endpoints and stops the server cleanly on
Ctrl-C or SIGTERM. Ports default to Triton's 8000/8001/8002; ``0`` picks a free one. Listens on
127.0.0.1 unless ``--host`` says otherwise.

The wheel's server has only the Python backend (no ONNX Runtime or TensorRT backend): repositories
written by ``edge triton`` (``python -m serving.repository``, whose default is the Python backend) run here;
a repository with ``onnxruntime_onnx`` or ``tensorrt_plan`` models (``--backend native``) is refused with the
command that rewrites it (``--keep-going`` serves the rest), as they need NVIDIA's Triton containers or JetPack's
Triton. The Python-backend stub
must match this interpreter and see its packages (``serving.triton_install``): a copy of the wheel's
backend folder with the stub for this Python version is made under ``~/.cache/edge-toolkit`` (the
wheel is never modified), and the stub gets its own numpy 1.x, this environment's ``site-packages``
and our ``runtime`` first on its ``sys.path``.

While serving, a Python-backend stub that dies (the OOM killer, kill -9) is noticed within a second: Triton itself
would keep calling the model ready and fail every request to it. Under ``--model-control explicit`` the model is
reloaded (unload + load: fresh stubs; a warning line names it); otherwise the server is stopped and the error line
names the model and the fix, so readiness stops answering 200 and a supervisor restarts the service.

The server log (without ``--log-file``) lives in ``$TMPDIR/edge-serve.XXXXXXXX/``, removed after a clean stop and
kept, with its path in the error line, after a failure; folders left by a killed ``edge serve`` are swept by the
next one (``serving.run_folder``).
Exit status (the table in ``formats.cli``): 0 stopped by the user; 2 bad arguments, no server installed, or the
server failed or died, or a model's stub died without explicit model control.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from formats.cli import EXIT_OK, EXIT_USER_ERROR, command_parser, error_boundary
from formats.writer import ForeignFileError, Kind, add_force_argument, check_output, set_force
from serving.run_folder import sweep
from serving.triton_install import ServeError, check_stub_site, find_triton, stub_site
from serving.triton_server import ModelControl, ServerOptions, TritonServer

STUB_CHECK_S = 1.0  # how often the stubs are checked (a /proc scan: about a millisecond)
MAX_RELOADS = 3  # reloads of one model within RELOAD_WINDOW_S before edge serve gives up on it
RELOAD_WINDOW_S = 300.0


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "serve",
        __doc__,
        [
            "edge triton --model artifacts/mnist_cnn/mnist_cnn.fp32.onnx --repo triton_repo --backend python",
            "edge serve --repo triton_repo                        # HTTP 8000, gRPC 8001, metrics 8002; Ctrl-C stops",
            "edge serve --repo triton_repo --http-port 0 --json   # free ports, endpoints as JSON",
        ],
    )
    p.add_argument("--repo", type=Path, required=True, help="model repository (from `edge triton`)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--http-port", type=_port, default=8000, help="HTTP port (default 8000; 0 = a free port)")
    p.add_argument("--grpc-port", type=_port, default=8001, help="gRPC port (default 8001; 0 = a free port)")
    p.add_argument("--metrics-port", type=_port, default=8002, help="metrics port (default 8002; 0 = a free port)")
    p.add_argument(
        "--model-control",
        choices=[m.value for m in ModelControl],
        default=ModelControl.NONE.value,
        help="Triton's model control mode (default none: load everything at start; explicit: load everything "
        "at start, allow the repository load/unload API, and reload a model whose Python-backend stub died)",
    )
    p.add_argument(
        "--keep-going",
        action="store_true",
        help="keep serving when a model fails to load (it is reported UNAVAILABLE with the reason)",
    )
    p.add_argument("--log-verbose", type=int, default=0, help="Triton's verbose log level (default 0)")
    p.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="where the server's own log goes (default: a temporary file, kept only if the server fails)",
    )
    add_force_argument(p)
    p.add_argument("--startup-timeout-s", type=float, default=120.0, help="give up on loading after this long")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document (endpoints and model states, or the error) on one line",
    )
    return p


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number 0–65535, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0–65535, got {value}")
    return value


_NATIVE = re.compile(r'^\s*(?:platform|backend)\s*:\s*"(onnxruntime_onnx|tensorrt_plan|onnxruntime|tensorrt)"', re.M)


def native_models(repo: Path) -> list[tuple[str, str]]:
    """(model, backend) for each model of ``repo`` whose config names Triton's ONNX Runtime or TensorRT backend."""
    found = []
    for config in sorted(repo.glob("*/config.pbtxt")):
        try:
            match = _NATIVE.search(config.read_text(errors="replace"))
        except OSError:
            continue  # the server reports an unreadable config with its own reason
        if match:
            backend = {"onnxruntime_onnx": "onnxruntime", "tensorrt_plan": "tensorrt"}.get(match[1], match[1])
            found.append((config.parent.name, backend))
    return found


def _fail(message: str, as_json: bool, code: int) -> int:
    if as_json:
        print(json.dumps({"ok": False, "error": message}), flush=True)
    print(f"error: {message}", file=sys.stderr)
    return code


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_force(args.force)
    sweep()  # the log folders of edge serve processes that were killed (kill -9) before they could clean up
    if args.log_file is not None:
        try:  # appended to: a log or a FIFO/device, never a file of another kind (a photo) without --force
            check_output(args.log_file, Kind.LOG)
        except ForeignFileError as exc:
            return _fail(f"--log-file {exc}", args.json, EXIT_USER_ERROR)
    if not args.repo.is_dir():
        return _fail(
            f"--repo {args.repo}: no such folder; write one with `python -m serving.repository --backend "
            "python --model MODEL.onnx --repo DIR`",
            args.json,
            EXIT_USER_ERROR,
        )
    try:
        install = find_triton()
        check_stub_site(stub_site())
    except ServeError as exc:
        return _fail(str(exc), args.json, EXIT_USER_ERROR)
    native = native_models(args.repo)
    if native:
        name, backend = native[0]
        message = (
            f"--repo {args.repo}: model {name!r} needs Triton's {backend} backend, which this server (the "
            f"nvidia-pytriton wheel) does not have; rewrite it for the Python backend: `edge triton --model "
            f"MODEL.onnx --repo {args.repo} --name {name}` (the default backend), or use NVIDIA's Triton container"
        )
        if not args.keep_going:
            return _fail(message, args.json, EXIT_USER_ERROR)
        print(f"warning: {message}; --keep-going: it will be UNAVAILABLE", file=sys.stderr, flush=True)
    options = ServerOptions(
        repo=args.repo,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        model_control=ModelControl(args.model_control),
        exit_on_error=not args.keep_going,
        log_verbose=args.log_verbose,
        log_file=args.log_file,
        startup_timeout_s=args.startup_timeout_s,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    server = TritonServer(options, install)
    try:
        server.start()
        models = server.wait_ready(stop)
    except ServeError as exc:
        server.stop()
        return _fail(str(exc), args.json, EXIT_USER_ERROR)
    if stop.is_set():
        server.stop()
        return EXIT_OK
    server.dead_stubs()  # learns the running stubs' models before anyone is told (a dead stub's command line is empty)
    _announce(server, models, args.json)
    code = _watch(server, stop)
    failed = code != EXIT_OK  # a dead stub never finishes: no long wait for it; the log named in the error stays
    server.stop(timeout_s=3.0 if failed else None, keep_log=failed)
    if code == EXIT_OK and not args.json:
        print("stopped", flush=True)
    return code


def _watch(server: TritonServer, stop: threading.Event) -> int:
    """Until Ctrl-C/SIGTERM: the server's death, and its stubs' deaths (reload or stop); the exit status."""
    reloads: dict[str, list[float]] = {}
    while not stop.wait(STUB_CHECK_S):
        if not server.running:
            return _fail(
                f"tritonserver exited unexpectedly ({server.exit_description()}); log: {server.log_path}",
                False,
                EXIT_USER_ERROR,
            )
        for model in sorted({stub.model for stub in server.dead_stubs()}):
            dead = [s for s in server.dead_stubs() if s.model == model]
            if not dead:
                continue  # reloaded with the model before it
            what = (
                f"model {model!r}: its Python-backend stub died (pid {dead[0].pid}, instance {dead[0].instance}), "
                "so Triton fails every request to it while still calling it ready"
            )
            if model == "?":  # died before edge serve saw it run: no name to reload it by
                return _fail(
                    f"a Python-backend stub died (pid {dead[0].pid}) before it was seen running; stopped the "
                    f"server. Restart `edge serve`; log: {server.log_path}",
                    False,
                    EXIT_USER_ERROR,
                )
            if server.options.model_control is not ModelControl.EXPLICIT:
                return _fail(
                    f"{what}; stopped the server. Restart `edge serve` (a supervisor does it on exit 2), or run "
                    f"it with `--model-control explicit` so it reloads the model itself; log: {server.log_path}",
                    False,
                    EXIT_USER_ERROR,
                )
            recent = [t for t in reloads.get(model, []) if time.monotonic() - t < RELOAD_WINDOW_S]
            if len(recent) >= MAX_RELOADS:
                return _fail(
                    f"{what}, for the {len(recent) + 1}th time in {RELOAD_WINDOW_S:.0f} s; stopped the server. "
                    f"Find out what kills it (out of memory? `dmesg`); log: {server.log_path}",
                    False,
                    EXIT_USER_ERROR,
                )
            reloads[model] = [*recent, time.monotonic()]
            print(f"warning: {what}; reloading it", file=sys.stderr, flush=True)
            try:
                server.reload(model)
            except ServeError as exc:
                return _fail(f"{exc}; stopped the server", False, EXIT_USER_ERROR)
            print(f"model {model!r} reloaded: ready again", file=sys.stderr, flush=True)
    return EXIT_OK


def _announce(server: TritonServer, models: list[dict], as_json: bool) -> None:
    endpoints = server.endpoints
    if as_json:
        doc = {
            "pid": server.pid,
            "serve_pid": os.getpid(),
            **endpoints.to_dict(),
            "models": models,
            "log": str(server.log_path),
            "tritonserver": str(server.install.server),
        }
        print(json.dumps(doc), flush=True)
        return
    print(f"Triton Inference Server ready (pid {server.pid}, log {server.log_path})")
    print(f"  HTTP     {endpoints.http_url}")
    print(f"  gRPC     {endpoints.grpc_url}")
    print(f"  metrics  {endpoints.metrics_url}/metrics")
    for model in models:
        reason = f"  ({model['reason']})" if model.get("reason") else ""
        print(f"  model {model['name']} v{model.get('version', '?')}: {model.get('state', '?')}{reason}")
    print("Ctrl-C stops the server.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
