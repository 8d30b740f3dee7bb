"""Deaths under the real Triton server on 127.0.0.1 (issue 21, findings 20 and 21).

20: a kill -9 of the Python-backend stub leaves Triton calling the model ready while it fails every request; `edge
serve` notices it and stops the server with one line (default model control) or reloads the model (explicit).
21: a kill -9 of `edge serve` itself leaves its server-log folder behind; the next `edge serve` sweeps it, and
nothing it did not create or was told to keep.
Each subprocess gets TMPDIR = a tmp folder, so the logs land there and nowhere else.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.hardening.tiny_models import write_model
from tests.serving.test_serve import _NO_SERVER, ServeProcess, _alive

pytestmark = pytest.mark.skipif(_NO_SERVER is not None, reason=f"no Triton server here: {_NO_SERVER}")

FREE_PORTS = ("--http-port", "0", "--grpc-port", "0", "--metrics-port", "0")
_BODY = json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": [0.5] * 784}]})


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory) -> Path:
    from serving.repository import ServingBackend, TritonOptions, write_repository

    root = tmp_path_factory.mktemp("stub_repo")
    write_repository(
        write_model(root / "model"), root / "repo", options=TritonOptions(top_k=3), backend=ServingBackend.PYTHON
    )
    return root / "repo"


def _status(http: str, method: str, path: str) -> int:
    """The HTTP status of one request to the server (0: nothing listens there any more)."""
    body = _BODY.encode() if path.endswith("/infer") else None
    request = urllib.request.Request(f"http://{http}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _stubs(server_pid: int) -> list[int]:
    """The server's live stub processes, from ps (not from the code under test)."""
    done = subprocess.run(["ps", "-o", "pid=,stat=,comm=", "--ppid", str(server_pid)], capture_output=True, text=True)
    rows = [line.split() for line in done.stdout.splitlines()]
    return [int(pid) for pid, stat, comm in rows if comm.startswith("triton_python") and not stat.startswith("Z")]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmp_path)}


def _wait(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_a_killed_stub_stops_the_server_with_one_line(tiny_repo, tmp_path):
    served = ServeProcess.start(tiny_repo, *FREE_PORTS, env=_env(tmp_path))
    log_at_start = Path(served.info.pop("log"))  # in tmp_path: stop() need not remove it
    try:
        http, server = served.info["http"], served.info["pid"]
        assert _status(http, "POST", "/v2/models/tiny/infer") == 200
        (stub,) = _stubs(server)
        os.kill(stub, signal.SIGKILL)
        # Triton alone: ready 200 and every request 500 "Stub process 'tiny_0_0' is not healthy", for ever.
        assert served.process.wait(20) == 2
        stderr = served.process.stderr.read()
    finally:
        served.stop()
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith(f"error: model 'tiny': its Python-backend stub died (pid {stub}, instance tiny_0_0)")
    assert "Restart `edge serve`" in stderr and "`--model-control explicit`" in stderr
    assert _status(http, "GET", "/v2/models/tiny/ready") == 0 and not _alive(server)  # no ready 200 any more
    log = Path(stderr.rsplit("; log: ", 1)[1].strip())
    assert log == log_at_start and log.parent.parent == tmp_path  # kept for the user, in a folder no sweep removes
    assert "Started HTTPService" in log.read_text() and not (log.parent / "owner.json").exists()


def test_explicit_control_reloads_the_model_and_a_killed_serve_leaves_nothing(tiny_repo, tmp_path):
    served = ServeProcess.start(tiny_repo, *FREE_PORTS, "--model-control", "explicit", env=_env(tmp_path))
    run_folder = Path(served.info.pop("log")).parent  # in tmp_path: stop() need not remove it
    try:
        http, server = served.info["http"], served.info["pid"]
        assert served.models()["tiny"]["state"] == "READY"  # explicit control still loads the repository
        (stub,) = _stubs(server)
        os.kill(stub, signal.SIGKILL)
        assert _wait(lambda: _stubs(server) not in ([], [stub]), 30), "no fresh stub"
        assert _wait(lambda: _status(http, "POST", "/v2/models/tiny/infer") == 200, 30)
        assert _status(http, "GET", "/v2/models/tiny/ready") == 200 and served.process.poll() is None
        # Finding 21: kill -9 of edge serve itself. Its server follows it (parent-death signal), and its log
        # folder, marked with the dead owner's pid, stays until the next edge serve sweeps it.
        assert run_folder.parent == tmp_path and run_folder.name.startswith("edge-serve.")
        os.kill(served.process.pid, signal.SIGKILL)
        served.process.wait(10)
        assert _wait(lambda: not _alive(server), 30), "tritonserver outlived edge serve"
        stderr = served.process.stderr.read()
    finally:
        served.stop()
    assert f"warning: model 'tiny': its Python-backend stub died (pid {stub}" in stderr, stderr
    assert "model 'tiny' reloaded: ready again" in stderr
    assert sorted(p.name for p in run_folder.iterdir()) == ["owner.json", "tritonserver.log"]
    kept, foreign, live = tmp_path / "edge-serve.kept", tmp_path / "edge-serve.foreign", tmp_path / "edge-serve.live"
    for folder in (kept, foreign, live):
        folder.mkdir()
        (folder / "tritonserver.log").write_text("log\n")
    (foreign / "notes.txt").write_text("the user's\n")
    (foreign / "owner.json").write_text(json.dumps({"pid": 999999999, "started": 1, "by": "edge serve"}))
    stat = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()
    (live / "owner.json").write_text(json.dumps({"pid": os.getpid(), "started": int(stat[19]), "by": "edge serve"}))
    user_log = tmp_path / "edge-serve.mine.log"
    user_log.write_text("asked for with --log-file\n")
    done = subprocess.run(
        [sys.executable, "-m", "serving.serve", "--repo", str(tmp_path / "nowhere")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(tmp_path),
    )
    assert done.returncode == 2 and "no such folder" in done.stderr
    assert not run_folder.exists()  # the killed one's: swept
    assert (kept / "tritonserver.log").exists() and (foreign / "notes.txt").exists() and (live / "owner.json").exists()
    assert user_log.read_text() == "asked for with --log-file\n"
