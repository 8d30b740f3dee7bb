"""Every device-side module imports with only what a Jetson has: no torch, torchvision, tqdm, matplotlib or kornia,
and none of the training-side packages (train, calibration). One subprocess per module, so one stray import
names its module."""

import subprocess
import sys

import pytest

from tests.conftest import REPO

ABSENT_ON_DEVICE = ("torch", "torchvision", "tqdm", "matplotlib", "kornia")
DEVICE_PACKAGES = ("formats", "runtime", "engine", "serving")  # the device side, whole: every module is walked
DEVICE_MODULES = tuple(
    sorted(
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for package in DEVICE_PACKAGES
        for path in (REPO / package).rglob("*.py")
        if path.name != "__main__.py"  # runs its command when imported; engine's is guarded and listed below
    )
) + (
    "engine.__main__",
    "harness.compare",  # benchmarks compare imports it; PyTorch loads only for a PyTorch runner
    "benchmarks.latency",
    "benchmarks.bench_all",  # edge bench all: the gate's statistics load only when it scores
    "benchmarks.decide",
    "benchmarks.decide_report",
    "benchmarks.noise",
    "benchmarks.timing",
    "benchmarks.__main__",
    "benchmarks.device_check",
    "benchmarks.ortgpu",
    "benchmarks.stream",
    "benchmarks.serving",
    "benchmarks.plots",
)
CODE = """
import importlib, json, sys
for name in {absent!r}:
    sys.modules[name] = None  # `import torch` now raises ImportError, as on a Jetson without it
importlib.import_module({module!r})
print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))
"""


@pytest.mark.parametrize("module", DEVICE_MODULES)
def test_device_module_imports_without_training_libraries(module):
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(absent=ABSENT_ON_DEVICE, module=module)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{module}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ''}"
    loaded = set(__import__("json").loads(done.stdout.strip().splitlines()[-1]))
    assert not loaded & {"train", "calibration"}, (
        f"{module} pulls in the training side: {loaded & {'train', 'calibration'}}"
    )
