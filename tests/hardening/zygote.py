"""Run ``python -m MODULE ARGS`` many times without paying for ``import torch`` each time.

A long-lived helper process imports the heavy third-party libraries once (torch, onnx, onnxruntime, numpy,
Pillow — never our own packages), then for each request forks a child that sets up argv, cwd, environment and
stdio exactly as the interpreter does for ``python -m`` and runs the module with ``runpy.run_module(...,
alter_sys=True)`` — the function ``python -m`` itself uses — so our modules are imported fresh in every child,
``__main__`` included. An exception escaping the module is printed as the interpreter prints it (a traceback on
stderr, exit status 1), so the contract test sees what a user would see. Linux only (fork).

Protocol: one JSON request per line on stdin ``{"argv": [...], "cwd": ..., "env": {...}, "timeout": s, "fsize": n}``
(``fsize``: optional RLIMIT_FSIZE in bytes); one JSON
reply per line on stdout ``{"returncode": n, "stdout": ..., "stderr": ...}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time

WARM = ("numpy", "PIL.Image", "onnxruntime", "onnx", "torch", "torchvision")


def _child(request: dict, out_path: str, err_path: str) -> None:
    import runpy
    import traceback

    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_TRUNC)
            os.dup2(target, fd)
            os.close(target)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        if request.get("fsize"):  # a "full disk": writes past this size fail with EFBIG (Python ignores SIGXFSZ)
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (request["fsize"], request["fsize"]))
        module, *args = request["argv"]
        sys.argv = [module, *args]
        sys.path[0] = request["cwd"]  # python -m puts the current folder first
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - printed as the interpreter would print it
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _serve_one(request: dict) -> dict:
    with tempfile.TemporaryDirectory(prefix="zygote-") as tmp:
        out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
        for path in (out_path, err_path):
            open(path, "w").close()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, out_path, err_path)
        deadline = time.monotonic() + float(request.get("timeout", 120))
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        code = os.waitstatus_to_exitcode(status)
        with open(out_path, encoding="utf-8", errors="replace") as fh:
            out = fh.read()
        with open(err_path, encoding="utf-8", errors="replace") as fh:
            err = fh.read()
        return {"returncode": code, "stdout": out, "stderr": err}


def main() -> None:
    import importlib

    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    reply_stream = os.fdopen(os.dup(1), "w")
    print("ready", file=reply_stream, flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_serve_one(json.loads(line))), file=reply_stream, flush=True)


if __name__ == "__main__":
    main()
