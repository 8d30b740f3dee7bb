import pytest

from runtime import cuda, doctor


def _jetson(tmp_path, release: str, model: str = "NVIDIA Jetson AGX Orin Developer Kit"):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(release)
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_text(model + "\x00")
    return tmp_path


def test_jetson_release_is_read_from_l4t_files(tmp_path):
    root = _jetson(
        tmp_path,
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
        "DATE: Wed Jan  8 01:49:37 UTC 2025\n",
    )
    check = doctor.jetson_release(root)
    assert check.status == doctor.OK
    assert check.detail.startswith("NVIDIA Jetson AGX Orin Developer Kit, L4T R36.4.3 (JetPack 6.x: Python 3.10")
    assert "cuda-python>=12.6,<13" in check.detail


@pytest.mark.parametrize(
    "release, why",
    [
        ("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64\n", "Python 3.8"),
        ("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64\n", "JetPack 4"),
        ("# R99 (release), REVISION: 1.0, GCID: 1, BOARD: x, EABI: aarch64\n", "does not know"),
    ],
)
def test_unsupported_jetpacks_are_refused_with_the_reason(tmp_path, release, why):
    check = doctor.jetson_release(_jetson(tmp_path, release))
    assert check.status == doctor.PROBLEM and why in check.detail and "JetPack 6" in check.fix


@pytest.mark.parametrize(
    "driver, runtime, problem",
    [
        (13000, 13030, False),  # seen on the H100: a newer minor of the same major is fine (was a false PROBLEM)
        (12060, 12090, False),
        (12020, 12060, False),
        (12060, 13050, True),  # JetPack 6 with cuda-python 13: every call fails with cudaErrorInsufficientDriver
        (13000, 12060, False),  # an older runtime on a newer driver is fine
    ],
)
def test_driver_and_cuda_python_are_compared_by_major(driver, runtime, problem):
    mismatch = cuda.driver_mismatch(driver, runtime)
    assert (mismatch is not None) == problem
    if problem:
        assert 'pip install "cuda-python>=12,<13"' in mismatch


def test_not_a_jetson_is_information_not_a_problem(tmp_path):
    assert doctor.jetson_release(tmp_path).status == doctor.INFO


def test_venv_hiding_system_tensorrt_gets_the_exact_fix(monkeypatch):
    try:
        import pytest
        import tensorrt  # noqa: F401

        pytest.skip("tensorrt imports here; the venv-hiding case cannot be shown")
    except ImportError:
        pass
    monkeypatch.setattr(doctor, "system_tensorrt_paths", lambda: ["/usr/lib/python3/dist-packages/tensorrt"])
    monkeypatch.setattr(doctor, "in_virtualenv", lambda: True)
    check = doctor.tensorrt_check()
    assert check.status == doctor.PROBLEM
    assert "--system-site-packages" in check.fix and "ln -s /usr/lib/python3/dist-packages/tensorrt" in check.fix


def test_doctor_runs_here_and_reports_json(capsys):
    import json

    code = doctor.main(["--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert checks["onnxruntime"]["status"] == "OK" and "CPUExecutionProvider" in checks["onnxruntime"]["detail"]
    assert code == (1 if any(c["status"] == "PROBLEM" for c in checks.values()) else 0)


def test_on_a_jetson_the_doctor_says_pypi_cuda_bindings_is_unverified_there(tmp_path):
    from importlib.metadata import PackageNotFoundError, version

    from runtime.doctor import INFO, tegra_cuda_python_check

    assert tegra_cuda_python_check(tmp_path) is None  # not a Jetson: nothing to say
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text("# R36 (release), REVISION: 4.3\n")
    try:
        version("cuda-bindings")
    except PackageNotFoundError:
        pytest.skip("cuda-bindings not installed in this venv")
    check = tegra_cuda_python_check(tmp_path)
    assert check.status == INFO and "unverified" in check.detail and "L4T r36" in check.detail
    assert "jetson-ai-lab.io" in check.fix
