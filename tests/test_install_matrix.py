"""The `gpu` extra resolves to the cuda-python each supported JetPack line needs (and that the doctor names):
its markers are evaluated here for each line's platform and system Python, as pip would on the device."""

import pytest
import tomllib
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from runtime.doctor import JETPACK
from tests.conftest import REPO


def _cuda_python(extra: str, machine: str, python: str) -> list[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = {
        **default_environment(),
        "platform_machine": machine,
        "python_version": python,
        "python_full_version": python + ".0",
    }
    found = []
    for line in extras[extra]:
        req = Requirement(line)
        if req.name == "cuda-python" and (req.marker is None or req.marker.evaluate(env)):
            found.append(str(req.specifier))
    return found


@pytest.mark.parametrize("l4t", sorted(k for k, line in JETPACK.items() if not line.unsupported))
def test_each_supported_jetpack_gets_its_cuda_python(l4t):
    line = JETPACK[l4t]
    wanted = Requirement(line.cuda_python).specifier
    assert [SpecifierSet(s) for s in _cuda_python("gpu", "aarch64", line.python)] == [wanted]


def test_jetpack6_never_gets_cuda_python_13():
    (specifier,) = _cuda_python("gpu", "aarch64", "3.10")
    assert "<13" in specifier  # 13.x fails every call on L4T r36's CUDA 12 driver


def test_x86_gets_one_cuda_python_and_cu12_pins_the_major():
    assert len(_cuda_python("gpu", "x86_64", "3.11")) == 1
    assert [SpecifierSet(s) for s in _cuda_python("gpu-cu12", "x86_64", "3.12")] == [SpecifierSet(">=12.6,<13")]


def _requirements(extra: str, name: str, machine: str, python: str) -> list[str]:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    env = {**default_environment(), "platform_machine": machine, "python_version": python}
    wanted = [Requirement(line) for line in extras[extra]]
    return [str(r) for r in wanted if r.name == name and (r.marker is None or r.marker.evaluate(env))]


def test_gpu_ort_never_asks_pypi_for_a_jetson_onnxruntime_gpu_wheel():
    # PyPI has no aarch64 onnxruntime-gpu for JetPack's Pythons: `pip install .[gpu-ort]` failed on every Jetson.
    assert _requirements("gpu-ort", "onnxruntime-gpu", "aarch64", "3.10") == []
    assert _requirements("gpu-ort", "onnxruntime-gpu", "x86_64", "3.12")
