"""The real ``tritonserver`` from the ``nvidia-pytriton`` wheel, as a process we start, watch and stop.

The wheel is used only as a carrier of the server binary, its libraries and the Python backend;
its ``pytriton`` package is never imported (it pins numpy < 2). Three things make the Python
backend work with this environment:

- the stub (``triton_python_backend_stub``) must be built for this interpreter's ``major.minor`` and
  lie beside ``libtriton_python.so``: we assemble a backend folder from the wheel's files in a cache
  folder we own (never touching ``site-packages``); the copies lose the wheel's ``$ORIGIN`` RPATH, so
  the wheel's library folder goes on ``LD_LIBRARY_PATH``;
- the stub embeds libpython: this interpreter's own shared libpython (and its ``PYTHONHOME``) when
  it has one, so the stub runs the same Python as we do;
- the wheel's Python backend (Triton 2.51) moves tensors through pybind11 built for numpy 1.x: with
  numpy 2 in the stub, image bytes arrive as garbage and outputs come back empty. So the stub gets
  its own numpy 1.x, installed apart from the environment (``stub_site()``; ``make serve-install``),
  ahead of this environment's numpy 2 — onnxruntime and Pillow work with either;
- the stub starts its interpreter without reading ``PYTHONPATH`` and imports
  ``triton_python_backend_utils`` (which imports numpy) before any model code; our copy of that file
  starts with a few lines that put ``PYTHONPATH`` — the stub's numpy, this environment's
  ``site-packages`` and the folder holding ``runtime`` — first on ``sys.path`` (``.pth`` files included, for editable installs).
"""

from __future__ import annotations

import enum
import hashlib
import importlib.util
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from runtime.errors import RuntimeToolkitError

INSTALL_HINT = ("pip install '.[serve]' && pip install --no-deps nvidia-pytriton==0.7.0 "
                "(or `make serve-install`)")
STUB_NUMPY = "numpy>=1.24,<2"


# Prepended to our copy of triton_python_backend_utils.py: the first of our code the stub runs.
SYS_PATH_PREAMBLE = """\
# --- edge-toolkit (runtime.triton_server): this environment first on sys.path, before numpy is imported ---
import os as _os, site as _site, sys as _sys
_before = list(_sys.path)
for _entry in [p for p in _os.environ.get("PYTHONPATH", "").split(_os.pathsep) if p]:
    _site.addsitedir(_entry)  # also runs the folder's .pth files (editable installs)
_sys.path[:] = [p for p in _sys.path if p not in _before] + _before
del _os, _site, _sys, _before
# --- end edge-toolkit ---
"""


_SERVER_IDS = itertools.count()


class ServeError(RuntimeToolkitError):
    """The Triton server is missing, cannot start, or failed to load the repository."""


class ModelControl(str, enum.Enum):
    NONE = "none"  # load every model at start
    POLL = "poll"  # also pick up repository changes
    EXPLICIT = "explicit"  # load/unload only through the repository API


@dataclass(frozen=True)
class TritonInstall:
    """Where the wheel put the server. ``root`` is ``.../site-packages/pytriton/tritonserver``."""

    root: Path
    libs: Path

    @property
    def server(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def python_backend(self) -> Path:
        return self.root / "backends" / "python"

    def stub(self, version: tuple[int, int]) -> Path:
        return self.root / "python_backend_stubs" / f"{version[0]}.{version[1]}" / "triton_python_backend_stub"


def find_triton() -> TritonInstall:
    """The installed wheel's server, found without importing ``pytriton`` (ServeError when absent)."""
    spec = importlib.util.find_spec("pytriton")  # a top-level find_spec does not run the package
    if spec is None or not spec.submodule_search_locations:
        raise ServeError(f"the Triton server is not installed (no nvidia-pytriton wheel); install it: {INSTALL_HINT}")
    package = Path(list(spec.submodule_search_locations)[0])
    install = TritonInstall(package / "tritonserver", package.parent / "nvidia_pytriton.libs")
    if not install.server.is_file() or not (install.python_backend / "libtriton_python.so").is_file():
        raise ServeError(f"{install.root}: the nvidia-pytriton wheel has no tritonserver binary or Python backend; "
                         f"reinstall it: {INSTALL_HINT}")
    return install


def cache_root() -> Path:
    env = os.environ.get("EDGE_TOOLKIT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edge-toolkit"


def prepare_backends(install: TritonInstall, cache: Path | None = None) -> Path:
    """A backend folder (``<dir>/python/``) whose stub matches this interpreter; made once, atomically."""
    version = sys.version_info[:2]
    stub = install.stub(version)
    if not stub.is_file():
        have = sorted(p.name for p in (install.root / "python_backend_stubs").glob("*"))
        raise ServeError(f"{install.root}: the wheel has no Python-backend stub for Python {version[0]}.{version[1]} "
                         f"(it has {', '.join(have) or 'none'}); use one of those Python versions")
    sources = [install.python_backend / "libtriton_python.so",
               install.python_backend / "triton_python_backend_utils.py", stub]
    key = hashlib.sha256(json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sources]
                                    + [SYS_PATH_PREAMBLE]).encode()).hexdigest()[:16]
    target = (cache or cache_root()) / "triton-backends" / f"py{version[0]}{version[1]}-{key}"
    if (target / "python" / "triton_python_backend_stub").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging.", dir=target.parent))
    try:
        (staging / "python").mkdir()
        for source in sources:
            shutil.copy2(source, staging / "python" / source.name)
        utils = staging / "python" / "triton_python_backend_utils.py"
        utils.write_text(SYS_PATH_PREAMBLE + utils.read_text())
        os.chmod(staging / "python" / stub.name, 0o755)
        try:
            os.replace(staging, target)
        except OSError:  # another process made it first: theirs is as good as ours
            if not (target / "python" / stub.name).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def stub_site() -> Path:
    """Packages only the backend stub sees (its numpy 1.x): ``$EDGE_TRITON_STUB_SITE`` or ``<env>/triton-stub-site``."""
    return Path(os.environ.get("EDGE_TRITON_STUB_SITE") or Path(sys.prefix) / "triton-stub-site")


def check_stub_site(site: Path) -> None:
    """ServeError with the install command unless ``site`` holds a numpy 1.x for the stub."""
    import importlib.metadata

    found = [d.version for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"] == "numpy"]
    if not found or not found[0].split(".")[0] == "1":
        what = f"numpy {found[0]}" if found else "no numpy"
        raise ServeError(f"{site}: has {what}; the wheel's Python backend needs numpy 1.x apart from this "
                         f"environment's: {sys.executable} -m pip install --upgrade --target {site} '{STUB_NUMPY}' "
                         "(or `make serve-install`)")


def stub_environment(install: TritonInstall, base: dict[str, str] | None = None,
                     site: Path | None = None) -> dict[str, str]:
    """The server's environment, which the Python-backend stub inherits (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR")
    libpython = sysconfig.get_config_var("LDLIBRARY")
    own_libpython = bool(sysconfig.get_config_var("Py_ENABLE_SHARED")) and libdir and libpython and \
        Path(libdir, libpython).exists()
    libs = ([libdir] if own_libpython else []) + [str(install.libs)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    if own_libpython:
        env["PYTHONHOME"] = sys.base_prefix
    runtime_parent = str(Path(__file__).resolve().parents[1])
    site_dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    paths = [str(site or stub_site()), runtime_parent] + site_dirs + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # ordered, without repeats
    env.pop("PYTHONSAFEPATH", None)
    return env


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
        # The Python backend's shared-memory regions carry our own prefix, so what a killed server leaves in
        # /dev/shm can be found and removed (stop()).
        self.shm_prefix = f"edge_triton_{os.getpid()}_{next(_SERVER_IDS)}_"
        self._process: subprocess.Popen | None = None
        self._log_handle = None

    # lifecycle ---------------------------------------------------------------------------

    def command(self, backends: Path) -> list[str]:
        o, e = self.options, self.endpoints
        return [str(self.install.server), f"--model-repository={Path(o.repo).resolve()}",
                f"--backend-directory={backends}", f"--model-control-mode={o.model_control.value}",
                f"--http-address={o.host}", f"--http-port={e.http_port}",
                f"--grpc-address={o.host}", f"--grpc-port={e.grpc_port}",
                f"--metrics-address={o.host}", f"--metrics-port={e.metrics_port}",
                f"--exit-on-error={str(o.exit_on_error).lower()}", "--strict-readiness=false",
                f"--log-verbose={o.log_verbose}", f"--exit-timeout-secs={o.exit_timeout_s}",
                "--allow-gpu-metrics=false", f"--backend-config=python,shm-region-prefix-name={self.shm_prefix}",
                *o.extra_args]

    def start(self) -> "TritonServer":
        site = stub_site()
        check_stub_site(site)
        for port in (self.endpoints.http_port, self.endpoints.grpc_port, self.endpoints.metrics_port):
            if not port_is_free(self.options.host, port):  # else a server already there would answer for us
                raise ServeError(f"port {port} on {self.options.host} is in use (another server?); stop it or pick "
                                 "other ports (0 = a free one)")
        backends = prepare_backends(self.install)
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tritonserver.", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self._log_handle = open(self.log_path, "ab")
        self._process = subprocess.Popen(
            self.command(backends), stdin=subprocess.DEVNULL, stdout=self._log_handle, stderr=subprocess.STDOUT,
            env=stub_environment(self.install, site=site), start_new_session=True,  # Ctrl-C reaches us; we stop it in order
            preexec_fn=_die_with_parent)
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
                raise ServeError(f"tritonserver exited before it was ready ({self.exit_description()}); "
                                 f"it said: {self.log_tail()}")
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
        raise ServeError(f"tritonserver was not ready after {self.options.startup_timeout_s:.0f} s; "
                         f"it said: {self.log_tail()}")

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

    def stop(self, timeout_s: float | None = None) -> int | None:
        """SIGTERM (Triton finishes in-flight requests), then SIGKILL after ``timeout_s``; the exit code."""
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
        for leftover in Path("/dev/shm").glob(f"{self.shm_prefix}*"):  # only after a kill: Triton cleans up itself
            leftover.unlink(missing_ok=True)
        return self._process.returncode

    def __enter__(self) -> "TritonServer":
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


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the process that started it dies (no orphaned servers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
