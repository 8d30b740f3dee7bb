from runtime import doctor


def test_jetson_release_is_read_from_l4t_files(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n")
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_text("NVIDIA Jetson AGX Orin Developer Kit\x00")
    check = doctor.jetson_release(tmp_path)
    assert check.status == doctor.OK
    assert check.detail == "NVIDIA Jetson AGX Orin Developer Kit, L4T R36.4.3 (JetPack 6.x)"


def test_not_a_jetson_is_information_not_a_problem(tmp_path):
    assert doctor.jetson_release(tmp_path).status == doctor.INFO


def test_venv_hiding_system_tensorrt_gets_the_exact_fix(monkeypatch):
    try:
        import tensorrt  # noqa: F401
        import pytest
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
