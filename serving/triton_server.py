"""The real ``tritonserver`` (see ``serving.triton_install``) as a process we start, watch and stop.

``TritonServer(ServerOptions(repo, http_port=0, ...))`` picks free ports for 0, refuses ports in use,
starts the server in its own session (Ctrl-C reaches the caller, who stops it in order) with the
stub's environment, waits until no model is loading, and stops it with SIGTERM, then SIGKILL of its
process group (stubs included), removing the shared memory a killed server leaves behind.

``dead_stubs()`` finds Python-backend stubs that died under a running server (OOM killer, kill -9): Triton 2.51
never restarts one, keeps calling the model ready and fails every request to it ("Stub process 'm_0_0' is not
healthy"), so ``edge serve`` watches them itself; ``reload(model)`` (explicit model control only) unloads and
loads the model, which starts fresh stubs.
"""

from __future__ import annotations

import enum
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path

from serving.run_folder import RunFolder
from serving.triton_install import (
    ServeError,
    TritonInstall,
    check_stub_site,
    find_triton,
    prepare_backends,
    stub_environment,
    stub_site,
)

_SERVER_IDS = itertools.count()
STUB_COMM = "triton_python_b"  # the kernel's 15-character name of triton_python_backend_stub


class ModelControl(str, enum.Enum):
    NONE = "none"  # load every model at start
    POLL = "poll"  # also pick up repository changes
    EXPLICIT = "explicit"  # load/unload only through the repository API


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host if host != "0.0.0.0" else "127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(host: str, port: int) -> bool:
    """Nothing listens there (SO_REUSEADDR, as servers bind: a just-closed connection does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Endpoints:
    host: str
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def http_url(self) -> str:
        return f"{self.client_host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.client_host}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.client_host}:{self.metrics_port}"

    def to_dict(self) -> dict:
        return {"http": self.http_url, "grpc": self.grpc_url, "metrics": f"{self.metrics_url}/metrics"}


@dataclass(frozen=True)
class Stub:
    """One Python-backend stub process: its model, its instance (``tiny_0_0``) and whether it still runs."""

    pid: int
    model: str
    instance: str
    alive: bool
    started: int  # clock ticks since boot: the newest process of an instance is the current one


def stub_processes(server_pid: int) -> list[Stub]:
    """The Python-backend stubs the server started (Linux ``/proc``; none elsewhere), dead ones (zombies: the
    server does not reap a stub that was killed) included."""
    stubs = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
            if comm != STUB_COMM or int(rest[1]) != server_pid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not a process we can read
        # argv: stub, <repo>/<model>/<version>/model.py, shm region, 2 shm sizes, server pid, backend dir, an id,
        # instance (tiny_0_0), kind (DEFAULT)
        model = Path(argv[1].decode(errors="replace")).parent.parent.name if len(argv) > 8 else "?"
        instance = argv[8].decode(errors="replace") if len(argv) > 8 else "?"
        stubs.append(Stub(int(stat.parent.name), model, instance, rest[0] not in ("Z", "X"), int(rest[19])))
    return stubs


@dataclass(frozen=True)
class ServerOptions:
    repo: Path
    host: str = "127.0.0.1"
    http_port: int = 8000  # 0 = a free port
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_control: ModelControl = ModelControl.NONE
    exit_on_error: bool = True
    log_verbose: int = 0
    log_file: Path | None = None
    startup_timeout_s: float = 120.0
    exit_timeout_s: int = 10
    extra_args: tuple[str, ...] = field(default_factory=tuple)


class TritonServer:
    """One ``tritonserver`` process: ``start()``, ``wait_ready()``, ``stop()``; also a context manager."""

    def __init__(self, options: ServerOptions, install: TritonInstall | None = None) -> None:
        self.options = options
        self.install = install or find_triton()
        ports = [p or free_port(options.host) for p in (options.http_port, options.grpc_port, options.metrics_port)]
        self.endpoints = Endpoints(options.host, *ports)
        self.log_path = options.log_file
        self.run_folder: RunFolder | None = None  # ours when no --log-file: removed after a clean stop
        # The Python backend's shared-memory regions carry our own prefix, so what a killed server leaves in
        # /dev/shm can be found and removed (stop()).
        self.shm_prefix = f"edge_triton_{os.getpid()}_{next(_SERVER_IDS)}_"
        self._process: subprocess.Popen | None = None
        self._log_handle = None
        self._stub_names: dict[int, tuple[str, str]] = {}  # stub pid -> (model, instance), seen while it lived

    # lifecycle ---------------------------------------------------------------------------

    def command(self, backends: Path) -> list[str]:
        o, e = self.options, self.endpoints
        return [
            str(self.install.server),
            f"--model-repository={Path(o.repo).resolve()}",
            f"--backend-directory={backends}",
            f"--model-control-mode={o.model_control.value}",
            *(["--load-model=*"] if o.model_control is ModelControl.EXPLICIT else []),  # else it loads nothing
            f"--http-address={o.host}",
            f"--http-port={e.http_port}",
            f"--grpc-address={o.host}",
            f"--grpc-port={e.grpc_port}",
            f"--metrics-address={o.host}",
            f"--metrics-port={e.metrics_port}",
            f"--exit-on-error={str(o.exit_on_error).lower()}",
            "--strict-readiness=false",
            f"--log-verbose={o.log_verbose}",
            f"--exit-timeout-secs={o.exit_timeout_s}",
            "--allow-gpu-metrics=false",
            f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
            *o.extra_args,
        ]

    def start(self) -> TritonServer:
        site = stub_site()
        check_stub_site(site)
        for port in (self.endpoints.http_port, self.endpoints.grpc_port, self.endpoints.metrics_port):
            if not port_is_free(self.options.host, port):  # else a server already there would answer for us
                raise ServeError(
                    f"port {port} on {self.options.host} is in use (another server?); stop it or pick "
                    "other ports (0 = a free one)"
                )
        backends = prepare_backends(self.install)
        if self.log_path is None:
            self.run_folder = RunFolder.create()
            self.log_path = self.run_folder.log
        self._log_handle = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            self.command(backends),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=stub_environment(self.install, site=site),
            start_new_session=True,  # Ctrl-C reaches us; we stop it in order
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_description(self) -> str:
        code = self._process.returncode if self._process else None
        if code is None:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def wait_ready(self, cancel: threading.Event | None = None) -> list[dict]:
        """Wait until the server is live and no model is still loading; the repository index (name,
        version, state, reason per model).

        ServeError when the server exits first or the time runs out, with the tail of its log.
        """
        deadline = time.monotonic() + self.options.startup_timeout_s
        while time.monotonic() < deadline and not (cancel and cancel.is_set()):
            if not self.running:
                raise ServeError(
                    f"tritonserver exited before it was ready ({self.exit_description()}); "
                    f"it said: {self.log_tail()}; full log: {self.log_path}"
                )
            try:
                if self._http("GET", "/v2/health/live", timeout=1.0) is not None:
                    models = self.repository_index()
                    # A model whose config does not parse is listed without a state: it is not loading either.
                    if not any(m.get("state") in ("LOADING", "UNLOADING") for m in models):
                        return [m if m.get("state") else self._unread(m) for m in models]
            except (OSError, ValueError):
                pass  # not listening yet
            time.sleep(0.1)
        if cancel and cancel.is_set():
            return []
        raise ServeError(
            f"tritonserver was not ready after {self.options.startup_timeout_s:.0f} s; "
            f"it said: {self.log_tail()}; full log: {self.log_path}"
        )

    def _unread(self, model: dict) -> dict:
        """A model Triton could not even read: UNAVAILABLE, with the server's own words from its log."""
        lines = Path(self.log_path).read_text(errors="replace").splitlines() if self.log_path else []
        said = []
        for before, line in zip([""] + lines, lines):
            if f"'{model['name']}'" in line and line.startswith("E"):
                said += [before.split("] ", 1)[-1]] if before.startswith("[libprotobuf ERROR") else []
                said.append(line.split("] ", 1)[-1].strip('"'))
        return {**model, "state": "UNAVAILABLE", "reason": " ".join(said) or "its config could not be read"}

    def repository_index(self) -> list[dict]:
        return json.loads(self._http("POST", "/v2/repository/index", b"{}", timeout=5.0) or b"[]")

    def stop(self, timeout_s: float | None = None, keep_log: bool = False) -> int | None:
        """SIGTERM (Triton finishes in-flight requests), then SIGKILL after ``timeout_s``; the exit code. Our log
        is removed after a clean exit unless ``keep_log`` (the caller reported a failure naming it)."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout_s if timeout_s is not None else self.options.exit_timeout_s + 5)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)  # its own session: the stubs go too
                self._process.wait(10)
        try:  # a killed server can leave its Python-backend stubs running: they are in its process group
            os.killpg(self._process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # none left: the usual case after a clean stop
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if self.run_folder is not None:  # kept when the server failed: its tail and path were reported
            self.run_folder.remove() if self._process.returncode == 0 and not keep_log else self.run_folder.keep()
        for leftover in Path("/dev/shm").glob(f"{self.shm_prefix}*"):  # only after a kill: Triton cleans up itself
            leftover.unlink(missing_ok=True)
        return self._process.returncode

    def dead_stubs(self) -> list[Stub]:
        """The current stub of each instance that is no longer running, while the server is."""
        if not self.running:
            return []
        newest: dict[str, Stub] = {}
        for stub in stub_processes(self.pid):
            if stub.alive:  # a dead stub's command line is empty: its names are remembered from its life
                self._stub_names[stub.pid] = (stub.model, stub.instance)
            elif stub.pid in self._stub_names:
                stub = replace(stub, model=self._stub_names[stub.pid][0], instance=self._stub_names[stub.pid][1])
            if stub.instance not in newest or stub.started >= newest[stub.instance].started:
                newest[stub.instance] = stub
        return [stub for stub in newest.values() if not stub.alive]

    def reload(self, model: str, timeout_s: float = 60.0) -> None:
        """Unload and load ``model`` (explicit model control): fresh stubs. ServeError with the server's reason."""
        if self.options.model_control is not ModelControl.EXPLICIT:
            raise ServeError(f"model {model!r} can only be reloaded under --model-control explicit")
        for action in ("unload", "load"):
            try:
                answer = self._http_status("POST", f"/v2/repository/models/{model}/{action}", b"{}", timeout_s)
            except OSError as exc:
                raise ServeError(f"model {model!r}: {action} failed: {exc}") from None
            if answer[0] != 200:
                said = answer[1].decode(errors="replace")
                raise ServeError(f"model {model!r}: {action} failed (HTTP {answer[0]}): {said}; log: {self.log_path}")

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # helpers -----------------------------------------------------------------------------

    def log_tail(self, lines: int = 6) -> str:
        """The server's error lines (Triton starts them with ``E``), else its last lines, on one line."""
        try:
            text = Path(self.log_path).read_text(errors="replace") if self.log_path else ""
        except OSError:
            return "(no log)"
        all_lines = [line.strip() for line in text.strip().splitlines()]
        errors = [line.split("] ", 1)[-1].strip('"') for line in all_lines if line[:1] == "E" and "] " in line]
        return " | ".join(errors[-lines:] or all_lines[-lines:]) or "(empty log)"

    def _http(self, method: str, path: str, body: bytes | None = None, timeout: float = 5.0) -> bytes | None:
        """The body of a 2xx answer, None for another status (OSError when nothing listens)."""
        request = urllib.request.Request(f"http://{self.endpoints.http_url}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.read()
        except urllib.error.HTTPError:
            return None

    def _http_status(self, method: str, path: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://{self.endpoints.http_url}{path}", data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the process that started it dies (no orphaned servers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
