"""Where the ``nvidia-pytriton`` wheel put ``tritonserver``, and a Python-backend stub that sees this environment.

The wheel is used only as a carrier of the server binary, its libraries and the Python backend;
its ``pytriton`` package is never imported (it pins numpy < 2). What makes the Python backend work
with this environment:

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
  ``site-packages`` and the folder holding ``runtime`` — first on ``sys.path`` (``.pth`` files included,
  for editable installs).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

from formats.errors import RuntimeToolkitError

INSTALL_HINT = "pip install '.[serve]' && pip install --no-deps nvidia-pytriton==0.7.0 (or `make serve-install`)"
STUB_NUMPY = "numpy>=1.24,<2"


# Prepended to our copy of triton_python_backend_utils.py: the first of our code the stub runs.
SYS_PATH_PREAMBLE = """\
# --- edge-toolkit (serving.triton_server): this environment first on sys.path, before numpy is imported ---
import os as _os, site as _site, sys as _sys
_before = list(_sys.path)
for _entry in [p for p in _os.environ.get("PYTHONPATH", "").split(_os.pathsep) if p]:
    _site.addsitedir(_entry)  # also runs the folder's .pth files (editable installs)
_sys.path[:] = [p for p in _sys.path if p not in _before] + _before
del _os, _site, _sys, _before
# --- end edge-toolkit ---
"""


class ServeError(RuntimeToolkitError):
    """The Triton server is missing, cannot start, or failed to load the repository."""


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
        raise ServeError(
            f"{install.root}: the nvidia-pytriton wheel has no tritonserver binary or Python backend; "
            f"reinstall it: {INSTALL_HINT}"
        )
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
        raise ServeError(
            f"{install.root}: the wheel has no Python-backend stub for Python {version[0]}.{version[1]} "
            f"(it has {', '.join(have) or 'none'}); use one of those Python versions"
        )
    sources = [
        install.python_backend / "libtriton_python.so",
        install.python_backend / "triton_python_backend_utils.py",
        stub,
    ]
    key = hashlib.sha256(
        json.dumps([[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in sources] + [SYS_PATH_PREAMBLE]).encode()
    ).hexdigest()[:16]
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
        raise ServeError(
            f"{site}: has {what}; the wheel's Python backend needs numpy 1.x apart from this "
            f"environment's: {sys.executable} -m pip install --upgrade --target {site} '{STUB_NUMPY}' "
            "(or `make serve-install`)"
        )


def stub_environment(
    install: TritonInstall, base: dict[str, str] | None = None, site: Path | None = None
) -> dict[str, str]:
    """The server's environment, which the Python-backend stub inherits (see the module docstring)."""
    env = dict(os.environ if base is None else base)
    libdir = sysconfig.get_config_var("LIBDIR")
    libpython = sysconfig.get_config_var("LDLIBRARY")
    own_libpython = (
        bool(sysconfig.get_config_var("Py_ENABLE_SHARED")) and libdir and libpython and Path(libdir, libpython).exists()
    )
    libs = ([libdir] if own_libpython else []) + [str(install.libs)]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])
    if own_libpython:
        env["PYTHONHOME"] = sys.base_prefix
    runtime_parent = str(Path(__file__).resolve().parents[1])
    site_dirs = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    paths = (
        [str(site or stub_site()), runtime_parent]
        + site_dirs
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # ordered, without repeats
    env.pop("PYTHONSAFEPATH", None)
    return env
