"""``python -m runtime.doctor``: can this machine run our engines, and if not, what exactly to do.

Each check prints OK / INFO / PROBLEM with the detail and, for a problem, the fix: the Jetson model
and L4T/JetPack release, whether ``tensorrt`` imports (and inside a virtualenv that cannot see
JetPack's system TensorRT, the exact fix), TensorRT-RTX, cuda-python, CUDA driver and runtime
versions, GPU name, compute capability and free memory, and ONNX Runtime's providers.
The last line is a one-line verdict ("this machine can build plans but not run them; use the .onnx
files"). Exit 0 when nothing is a PROBLEM, 1 otherwise; ``--json`` for scripts (the verdict then on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from formats.cli import EXIT_CHECK_FAILED, EXIT_OK, command_parser, error_boundary

OK, INFO, PROBLEM = "OK", "INFO", "PROBLEM"


def _site_packages() -> Path:
    """This venv's site-packages folder (where a link to JetPack's system TensorRT bindings goes)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return Path(sys.prefix) / "lib" / version / "site-packages"


@dataclass(frozen=True)
class JetPackLine:
    """What a JetPack line ships (NVIDIA's release tables) and whether this toolkit runs on it."""

    jetpack: str
    python: str  # the system Python that JetPack's TensorRT bindings are built for
    tensorrt: str
    cuda: str
    cuda_python: str  # the pip requirement that matches its driver ("" when unsupported)
    unsupported: str = ""  # why not, when it is not supported


# L4T major release → JetPack line. The `gpu` extra's markers pick the cuda-python of each supported line.
JETPACK = {
    "32": JetPackLine("4.x", "3.6", "7.1–8.2", "10.2", "", "JetPack 4 (Python 3.6, CUDA 10.2) is not supported"),
    "34": JetPackLine("5.0 (developer preview)", "3.8", "8.4", "11.4", "", "JetPack 5.0 is not supported"),
    "35": JetPackLine(
        "5.1.x",
        "3.8",
        "8.5",
        "11.4",
        "",
        "JetPack 5 is not supported: its TensorRT 8.5 bindings are for Python 3.8 (this toolkit needs "
        "≥ 3.10) and its CUDA 11.4 needs cuda-python 11, whose API differs",
    ),
    "36": JetPackLine("6.x", "3.10", "8.6 (6.0) / 10.3 (6.1, 6.2)", "12.2 / 12.6", "cuda-python>=12.6,<13"),
    "38": JetPackLine("7.x", "3.12", "10.13+ (11.4 on 7.2.2+ for AGX Orin/Thor)", "13.0", "cuda-python>=13,<14"),
}
UNSUPPORTED_FIX = (
    "flash JetPack 6 or 7 to use TensorRT engines; on this device the ONNX Runtime CPU path "
    "(`pip install .[runtime]`) is all that works, with a Python ≥ 3.10"
)


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def in_virtualenv() -> bool:
    return sys.prefix != getattr(sys, "base_prefix", sys.prefix)


def jetson_release(root: Path = Path("/")) -> Check:
    release = root / "etc" / "nv_tegra_release"
    if not release.is_file():
        return Check("jetson", INFO, "not a Jetson (no /etc/nv_tegra_release)")
    first = release.read_text(errors="replace").splitlines()[0] if release.read_text(errors="replace") else ""
    major = first.split("R", 1)[1].split(" ", 1)[0] if first.startswith("# R") else "?"
    revision = first.split("REVISION:", 1)[1].split(",", 1)[0].strip() if "REVISION:" in first else "?"
    model_file = root / "proc" / "device-tree" / "model"
    model = model_file.read_text(errors="replace").strip("\x00\n ") if model_file.is_file() else "unknown model"
    line = JETPACK.get(major)
    if line is None:
        return Check(
            "jetson",
            PROBLEM,
            f"{model}, L4T R{major}.{revision}: a JetPack this toolkit does not know",
            "supported: JetPack 6 (L4T R36) and 7 (L4T R38); see the README's JetPack matrix",
        )
    detail = (
        f"{model}, L4T R{major}.{revision} (JetPack {line.jetpack}: Python {line.python}, TensorRT "
        f"{line.tensorrt}, CUDA {line.cuda})"
    )
    if line.unsupported:
        return Check("jetson", PROBLEM, f"{detail}. {line.unsupported}", UNSUPPORTED_FIX)
    return Check("jetson", OK, f"{detail}; install with `pip install .[gpu]` (pulls {line.cuda_python})")


def system_tensorrt_paths() -> list[str]:
    """Where JetPack puts the TensorRT Python bindings for the system Python."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [
        Path("/usr/lib/python3/dist-packages/tensorrt"),
        Path(f"/usr/lib/{version}/dist-packages/tensorrt"),
        Path(f"/usr/local/lib/{version}/dist-packages/tensorrt"),
    ]
    return [str(p) for p in candidates if p.exists()]


def tensorrt_check() -> Check:
    try:
        trt = importlib.import_module("tensorrt")
        paths = []
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            paths.append("strongly typed")
        if hasattr(trt, "IInt8EntropyCalibrator2"):
            paths.append("implicit INT8 calibrators")
        if hasattr(trt.BuilderFlag, "FP16"):
            paths.append("FP16/INT8 builder flags")
        return Check("tensorrt", OK, f"tensorrt {trt.__version__} ({', '.join(paths)})")
    except ImportError as exc:
        system = system_tensorrt_paths()
        if system and in_virtualenv():
            return Check(
                "tensorrt",
                PROBLEM,
                f"does not import in this virtualenv ({exc}), but the system has it at {system[0]}",
                f"recreate the venv with `python3 -m venv --system-site-packages {sys.prefix}` (then "
                "`pip install .[runtime]`), or link it: "
                f"`ln -s {system[0]} {_site_packages()}/`",
            )
        return Check(
            "tensorrt",
            INFO,
            f"not installed ({exc})",
            "on a Jetson it comes with JetPack (`sudo apt install nvidia-tensorrt`); on x86 from NVIDIA's "
            "index (`pip install tensorrt`); ONNX Runtime on the CPU works without it",
        )


def module_check(name: str, label: str, fix: str, required: bool = False) -> Check:
    try:
        module = importlib.import_module(name)
        return Check(label, OK, f"{name} {getattr(module, '__version__', '?')}")
    except ImportError as exc:
        return Check(label, PROBLEM if required else INFO, f"not installed ({exc})", fix)


def cuda_checks() -> list[Check]:
    try:
        from runtime import cuda
    except ImportError as exc:  # pragma: no cover - runtime.cuda imports nothing heavy at module level
        return [Check("cuda", INFO, str(exc))]
    try:
        cuda._cudart()  # imports cuda-python's runtime bindings, or says why not
    except Exception as exc:  # CudaError: cuda-python missing
        return [Check("cuda-python", INFO, str(exc), "`pip install cuda-python` to run TensorRT engines")]
    checks = [Check("cuda-python", OK, "cuda.bindings imports")]
    tegra = tegra_cuda_python_check()
    if tegra is not None:
        checks.append(tegra)
    driver, runtime = cuda.versions()
    if not driver:
        checks.append(
            Check(
                "cuda driver",
                INFO,
                f"no NVIDIA driver loaded (cuda-python runtime {cuda.version_text(runtime)})",
                "install the NVIDIA driver (JetPack includes it) to use a GPU",
            )
        )
        return checks
    mismatch = cuda.driver_mismatch(driver, runtime)
    detail = f"driver supports CUDA {cuda.version_text(driver)}, cuda-python runtime {cuda.version_text(runtime)}" + (
        "" if mismatch else " (same major: minor-version compatible)"
    )
    checks.append(Check("cuda driver", PROBLEM if mismatch else OK, detail, mismatch or ""))
    try:
        count = cuda.device_count()
    except cuda.CudaError as exc:
        checks.append(Check("gpu", PROBLEM, str(exc), "fix the cuda driver line above first"))
        return checks
    if count == 0:
        checks.append(
            Check(
                "gpu",
                PROBLEM,
                "driver present but no GPU visible",
                "check `nvidia-smi` (or `tegrastats`), CUDA_VISIBLE_DEVICES and container GPU flags",
            )
        )
        return checks
    info = cuda.device_info(0)
    checks.append(
        Check(
            "gpu",
            OK,
            f"{info['name']}, compute capability {info['compute_capability']}, "
            f"{info['free_bytes'] / 2**30:.1f} of {info['total_bytes'] / 2**30:.1f} GiB free",
        )
    )
    return checks


TEGRA_CUDA_PYTHON_FIX = (
    "if a CUDA call fails here, fall back to a cuda-python built for JetPack: `pip uninstall cuda-python "
    "cuda-bindings`, then install it from jetson-ai-lab.io's pip index for your JetPack (e.g. "
    "https://pypi.jetson-ai-lab.io/jp6/cu126) or build it from source against JetPack's CUDA; see docs/tensorrt.md"
)


def tegra_cuda_python_check(root: Path = Path("/")) -> Check | None:
    """On a Jetson: say that PyPI's aarch64 cuda-bindings is a server-ARM (SBSA) build that links cudart
    statically, and that nothing states it works on L4T's Tegra driver (unverified here: no Jetson)."""
    if not (root / "etc" / "nv_tegra_release").is_file():
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("cuda-bindings")
    except PackageNotFoundError:
        return Check("cuda-python on Tegra", OK, "no PyPI cuda-bindings wheel: a JetPack build of cuda-python")
    return Check(
        "cuda-python on Tegra",
        INFO,
        f"cuda-bindings {installed}: PyPI's aarch64 wheel is built for server ARM (SBSA) with cudart linked "
        "statically; that it works on L4T r36 (Jetson) is not stated by NVIDIA and unverified by this toolkit",
        TEGRA_CUDA_PYTHON_FIX,
    )


def onnxruntime_check() -> Check:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return Check("onnxruntime", PROBLEM, f"not installed ({exc})", "`pip install .[runtime]`")
    return Check("onnxruntime", OK, f"{ort.__version__}, providers {', '.join(ort.get_available_providers())}")


def run_checks() -> list[Check]:
    checks = [
        Check(
            "python",
            OK,
            f"{platform.python_version()} at {sys.executable}" + (" (virtualenv)" if in_virtualenv() else ""),
        ),
        jetson_release(),
    ]
    checks.append(tensorrt_check())
    checks.append(
        module_check(
            "tensorrt_rtx",
            "tensorrt-rtx",
            "`pip install tensorrt-rtx-cu13` builds engines ahead of time on any machine (RTX GPUs run them)",
        )
    )
    checks += cuda_checks()
    checks.append(onnxruntime_check())
    checks.append(module_check("numpy", "numpy", "`pip install .[runtime]`", required=True))
    checks.append(module_check("PIL", "Pillow", "`pip install .[runtime]`", required=True))
    return checks


RTX_CAPABILITIES = ("8.0", "8.6", "8.9", "12.")


def verdict(checks: Sequence[Check]) -> str:
    """One line that says what the checks mean for this machine: build plans, run them, or use the .onnx files."""
    status = {c.name: c.status for c in checks}
    problems = [c.name for c in checks if c.status == PROBLEM]
    can_build = OK in (status.get("tensorrt"), status.get("tensorrt-rtx"))
    gpu = next((c.detail for c in checks if c.name == "gpu" and c.status == OK), "")
    # TensorRT-RTX runs its plans only on RTX-class GPUs (compute capability 8.0, 8.6, 8.9, 12.x), not on an H100
    rtx_runs = status.get("tensorrt-rtx") == OK and any(f"capability {cc}" in gpu for cc in RTX_CAPABILITIES)
    can_run = bool(gpu) and status.get("cuda driver") == OK and (status.get("tensorrt") == OK or rtx_runs)
    onnx = all(status.get(name) == OK for name in ("onnxruntime", "numpy", "Pillow"))
    onnx_use = "use the .onnx files (`edge infer --engine m.fp32.onnx`)"
    fix = f"; fix the PROBLEM lines ({', '.join(problems)}) to do more" if problems else ""
    if not onnx:
        return f"this machine cannot run models yet: fix the PROBLEM lines above ({', '.join(problems)})"
    if can_run:
        return f"this machine can build TensorRT plans and run them (and the .onnx files){fix}"
    if can_build:
        return f"this machine can build plans but not run them; {onnx_use}{fix}"
    return f"no TensorRT here: run the .onnx files with ONNX Runtime (`edge infer --engine m.fp32.onnx`){fix}"


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "doctor",
        __doc__,
        [
            "edge doctor          # each check OK / INFO / PROBLEM with its fix, then a one-line verdict",
            "edge doctor --json   # the same as JSON",
        ],
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    return parser


@error_boundary
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    checks = run_checks()
    if args.json:  # stdout stays the list of checks scripts read; the verdict goes to stderr
        print(json.dumps([asdict(c) for c in checks], indent=2))
        print(f"verdict: {verdict(checks)}", file=sys.stderr)
    else:
        for c in checks:
            print(f"{c.status:8} {c.name:13} {c.detail}")
            if c.fix:
                print(f"{'':8} {'':13} fix: {c.fix}")
        print(f"verdict: {verdict(checks)}")
    return EXIT_CHECK_FAILED if any(c.status == PROBLEM for c in checks) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
