"""The energy layer on recorded fixtures (sysfs trees with the real file names, real tegrastats and nvpmodel output)
and on whatever source this machine really has (none on the 2-core CI VM: then the reasons are checked)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.power import PowerMeter, find_meter, integrate, probe, unavailable_reason
from benchmarks.power_sources import (
    JETSON_SYSFS,
    RAPL,
    SOURCES,
    PowerConditions,
    TegrastatsReader,
    clocks_locked,
    find_ina3221_rails,
    jetson_conditions,
    parse_nvpmodel,
    parse_tegrastats,
    probe_jetson_sysfs,
    probe_nvml,
    probe_rapl,
    probe_tegrastats,
    total_rails,
)
from tests.conftest import REPO

# ---- recorded tegrastats lines (each copied from the public source named above it) ------------------------------

# Jetson Orin Nano Super, L4T R36.4.3: lkk688/edgeAI, docs/curriculum/02a_linux_basics.md ("Step 4: Explore L4T
# Features", printed after `nvpmodel -q` → NV_POWER_MODE_LKK below).
ORIN_NANO = (
    "07-14-2025 10:29:36 RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) "
    "CPU [0%@729,0%@729,0%@729,0%@729,0%@729,0%@729] GR3D_FREQ 0% cpu@47.687C soc2@46.718C soc0@47.468C "
    "gpu@48.625C tj@48.625C soc1@48.25C VDD_IN 4556mW/4556mW VDD_CPU_GPU_CV 483mW/483mW VDD_SOC 1451mW/1451mW"
)
# Jetson Nano (JetPack 4): rbonghi/jetson_stats, tests/tegrastats (its Nano line, with the $RANDOM CPU loads of
# that emulator script written out as 5%): milliwatts without a unit.
NANO = (
    "RAM 331/3964MB (lfb 758x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
    "CPU [5%@102,5%@102,5%@102,5%@102] EMC_FREQ 3%@204 GR3D_FREQ 5%@76 APE 25 PLL@20.5C CPU@23.5C PMIC@100C "
    "GPU@22.5C AO@27.5C thermal@23C POM_5V_IN 933/933 POM_5V_GPU 0/0 POM_5V_CPU 84/105"
)
# Jetson AGX Orin, JetPack 7.2 (L4T R39.2): rbonghi/jetson_stats, jtop/tests/test_06_tegra_parse.py
# (TEGRASTATS_ORIN_JP7, "Real tegrastats line"): now/avg/max, and no VDD_IN rail on this board.
AGX_ORIN_JP7 = (
    "07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) "
    "CPU [23%@2201,10%@2201,4%@2201,14%@2201,30%@2201,18%@2201,10%@2201,10%@2201,33%@2201,7%@2201,5%@2201,27%@2201] "
    "EMC_FREQ 3%@3199 GR3D_FREQ 12%@[1300,1300] NVENC0 off NVDEC0 off NVJPG0 off NVJPG1 off VIC off OFA off "
    "NVDLA0 off NVDLA1 off PVA0_FREQ off APE 174 "
    "cpu@52.968C/52.968C soc2@48.406C/48.406C soc0@49.531C/49.531C gpu@47.625C/47.625C "
    "VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW"
)
# Jetson AGX Orin, JetPack 5 (sudo): rbonghi/jetson_stats, tests/tegrastats (Orin SUDO line, tail): "NC" channels.
AGX_ORIN_JP5_TAIL = (
    "tj@41.656C SOC1@38.937C CV2@-256C VDD_GPU_SOC 2390mW/2390mW VDD_CPU_CV 796mW/796mW VIN_SYS_5V0 3522mW/3522mW "
    "NC 0mW/0mW VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW"
)
# `nvpmodel -q` on the same Orin Nano Super (lkk688/edgeAI, as above) and jetson_stats' tests/nvpmodel show_query.
NV_POWER_MODE_LKK = "NV Power Mode: MAXN_SUPER\n2\n"
NV_POWER_MODE_JTOP = "NVPM WARN: fan mode is not set!\nNV Power Mode: MAXN\n0\n"


def test_tegrastats_lines_give_the_input_rail_in_milliwatts():
    assert parse_tegrastats(ORIN_NANO) == {"VDD_IN": 4556.0, "VDD_CPU_GPU_CV": 483.0, "VDD_SOC": 1451.0}
    assert total_rails(parse_tegrastats(ORIN_NANO)) == (4556.0, "VDD_IN")
    assert parse_tegrastats(NANO) == {"POM_5V_IN": 933.0, "POM_5V_GPU": 0.0, "POM_5V_CPU": 84.0}
    assert total_rails(parse_tegrastats(NANO)) == (933.0, "POM_5V_IN")


def test_tegrastats_without_an_input_rail_sums_the_rails_and_says_so():
    watts, rail = total_rails(parse_tegrastats(AGX_ORIN_JP7))
    assert watts == 5139 + 3268 + 5500 and "no VDD_IN" in rail and "VIN_SYS_5V0" in rail
    jp5 = parse_tegrastats(AGX_ORIN_JP5_TAIL)
    assert "NC" not in jp5 and total_rails(jp5)[0] == 2390 + 796 + 3522 + 301


def test_memory_fields_are_not_rails():
    assert parse_tegrastats("RAM 2147/7620MB (lfb 2x4MB) SWAP 1476/3810MB (cached 1MB) IRAM 0/252kB") == {}


def test_nvpmodel_query_output():
    assert parse_nvpmodel(NV_POWER_MODE_LKK) == "MAXN_SUPER (mode 2)"
    assert parse_nvpmodel(NV_POWER_MODE_JTOP) == "MAXN (mode 0)"
    assert parse_nvpmodel("nvpmodel: command not found") is None


# ---- recorded sysfs trees ----------------------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


# JetPack 5/6 (Orin Nano/NX): /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon<N>/in<C>_label, in<C>_input (mV),
# curr<C>_input (mA); channel 7 "sum of shunt voltages" (the layout jtop/core/power.py list_all_i2c_ports reads).
ORIN_HWMON = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/"
# JetPack 4 (Nano): /sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_<C>, in_power<C>_input (mW).
NANO_IIO = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/"


def orin_tree(root: Path, millivolts: int = 5000, milliamps: int = 600) -> Path:
    return _write(
        root,
        {
            ORIN_HWMON + "name": "ina3221",
            ORIN_HWMON + "in1_label": "VDD_IN",
            ORIN_HWMON + "in1_input": str(millivolts),
            ORIN_HWMON + "curr1_input": str(milliamps),
            ORIN_HWMON + "curr1_crit_alarm": "0",
            ORIN_HWMON + "in2_label": "VDD_CPU_GPU_CV",
            ORIN_HWMON + "in2_input": "5000",
            ORIN_HWMON + "curr2_input": "100",
            ORIN_HWMON + "in3_label": "VDD_SOC",
            ORIN_HWMON + "in3_input": "5000",
            ORIN_HWMON + "curr3_input": "290",
            ORIN_HWMON + "in7_label": "sum of shunt voltages",
            ORIN_HWMON + "in7_input": "120",
        },
    )


def test_orin_hwmon_layout_reads_vdd_in(tmp_path):
    reader = probe_jetson_sysfs(orin_tree(tmp_path))
    assert not isinstance(reader, str), reader
    assert [r.name for r in find_ina3221_rails(tmp_path)] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert reader.rail == "VDD_IN" and reader.watts() == pytest.approx(3.0)  # 5000 mV × 600 mA


def test_nano_iio_layout_reads_pom_5v_in(tmp_path):
    _write(
        tmp_path,
        {
            NANO_IIO + "rail_name_0": "POM_5V_IN",
            NANO_IIO + "in_power0_input": "2459",
            NANO_IIO + "in_voltage0_input": "5048",
            NANO_IIO + "in_current0_input": "487",
            NANO_IIO + "rail_name_1": "POM_5V_GPU",
            NANO_IIO + "in_power1_input": "79",
            NANO_IIO + "rail_name_2": "POM_5V_CPU",
            NANO_IIO + "in_power2_input": "674",
        },
    )
    reader = probe_jetson_sysfs(tmp_path)
    assert not isinstance(reader, str), reader
    assert reader.rail == "POM_5V_IN" and reader.watts() == pytest.approx(2.459)


def test_over_current_alarm_marks_the_window_throttled(tmp_path):
    orin_tree(tmp_path)
    reader = probe_jetson_sysfs(tmp_path)
    assert reader.conditions().throttled is None  # no thermal zones in this tree: cannot say
    (tmp_path / ORIN_HWMON / "curr1_crit_alarm").write_text("1\n")
    assert reader.conditions().throttled is True and "over-current" in reader.conditions().note


def test_jetson_clocks_power_mode_and_thermal_throttle_from_sysfs(tmp_path):
    files = {}
    for cpu in (0, 1):
        files |= {
            f"sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_min_freq": "1510400",
            f"sys/devices/system/cpu/cpu{cpu}/cpufreq/cpuinfo_max_freq": "1510400",
        }
    files |= {
        "sys/class/devfreq/17000000.ga10b/min_freq": "624750000",
        "sys/class/devfreq/17000000.ga10b/max_freq": "624750000",
        "sys/class/thermal/thermal_zone0/type": "cpu-thermal",
        "sys/class/thermal/thermal_zone0/temp": "47687",
        "sys/class/thermal/thermal_zone0/trip_point_0_type": "passive",
        "sys/class/thermal/thermal_zone0/trip_point_0_temp": "99000",
    }
    _write(tmp_path, files)
    cond = jetson_conditions(tmp_path, nvpmodel=lambda cmd: NV_POWER_MODE_LKK)
    assert cond == PowerConditions("MAXN_SUPER (mode 2)", True, False, "")
    (tmp_path / "sys/devices/system/cpu/cpu1/cpufreq/scaling_min_freq").write_text("729600\n")  # clocks released
    (tmp_path / "sys/class/thermal/thermal_zone0/temp").write_text("99500\n")
    cond = jetson_conditions(tmp_path, nvpmodel=lambda cmd: NV_POWER_MODE_LKK)
    assert cond.jetson_clocks is False and cond.throttled is True and "cpu-thermal 99.5" in cond.note
    assert clocks_locked(tmp_path / "nowhere") is None


def test_window_integrates_samples_and_subtracts_idle(tmp_path):
    orin_tree(tmp_path, milliamps=600)  # 3 W idle
    meter = PowerMeter(probe_jetson_sysfs(tmp_path), interval_s=0.01)
    assert meter.idle(0.1) == pytest.approx(3.0)
    (tmp_path / ORIN_HWMON / "curr1_input").write_text("1600\n")  # 8 W while the block runs
    with meter.window() as w:
        time.sleep(0.15)
    assert w.result is not None and w.source == JETSON_SYSFS and w.samples >= 2
    assert w.avg_watts == pytest.approx(8.0) and w.joules == pytest.approx(8.0 * w.seconds)
    assert w.joules_per(10) == pytest.approx(5.0 * w.seconds / 10)  # net of the 3 W idle
    assert json.loads(json.dumps(w.result.to_dict()))["conditions"]["note"].startswith("rail VDD_IN")
    with pytest.raises(ValueError, match="number of inferences"):
        w.joules_per(0)


def test_reading_a_window_inside_its_block_is_an_error(tmp_path):
    meter = PowerMeter(probe_jetson_sysfs(orin_tree(tmp_path)), interval_s=0.01)
    meter.idle_watts = 0.0
    with meter.window() as w, pytest.raises(RuntimeError, match="still open"):
        w.joules_per(1)


def test_integrate_is_trapezoids():
    assert integrate([(0.0, 2.0), (1.0, 4.0), (3.0, 4.0)]) == pytest.approx(3.0 + 8.0)
    assert integrate([(0.0, 5.0)]) == 0.0


# ---- RAPL with wraparound -----------------------------------------------------------------------------------------

RAPL_PKG = "sys/class/powercap/intel-rapl:0/"
WRAP = 262143328850  # max_energy_range_uj of a common Intel package (2^38 µJ-ish): the counter restarts here


def rapl_tree(root: Path, energy_uj: int) -> Path:
    return _write(
        root,
        {
            RAPL_PKG + "name": "package-0",
            RAPL_PKG + "energy_uj": str(energy_uj),
            RAPL_PKG + "max_energy_range_uj": str(WRAP),
            "sys/class/powercap/intel-rapl:0:0/name": "core",  # a sub-zone inside package 0: not added again
            "sys/class/powercap/intel-rapl:0:0/energy_uj": "5",
        },
    )


def test_rapl_counter_unfolds_a_wrap_inside_a_window(tmp_path):
    rapl_tree(tmp_path, WRAP - 1_000_000)  # 1 J before the wrap
    reader = probe_rapl(tmp_path)
    assert not isinstance(reader, str), reader
    assert reader.rail == "package-0"
    meter = PowerMeter(reader, interval_s=0.01)
    meter.idle_watts = 0.0
    with meter.window() as w:
        (tmp_path / RAPL_PKG / "energy_uj").write_text("2000000\n")  # wrapped, then 2 J more
    assert w.source == RAPL and w.joules == pytest.approx(3.0)
    assert w.joules_per(3) == pytest.approx(1.0)


def test_rapl_unreadable_counter_says_why(tmp_path):
    rapl_tree(tmp_path, 100)
    if os.geteuid() == 0:  # root reads a chmod 000 file: remove it instead, as a VM that hides RAPL
        (tmp_path / RAPL_PKG / "energy_uj").unlink()
    else:
        (tmp_path / RAPL_PKG / "energy_uj").chmod(0)
    assert "not readable" in probe_rapl(tmp_path)
    assert "no " in probe_rapl(tmp_path / "empty")


# ---- tegrastats as a running process ------------------------------------------------------------------------------


def test_tegrastats_reader_follows_a_running_process(tmp_path):
    script = f"import time\nprint({ORIN_NANO!r}, flush=True)\ntime.sleep(60)\n"
    reader = probe_tegrastats(tmp_path, [sys.executable, "-c", script])
    assert isinstance(reader, TegrastatsReader), reader
    try:
        assert reader.rail == "VDD_IN" and reader.watts() == pytest.approx(4.556)
    finally:
        reader.close()
    assert reader._process.poll() is not None  # close() ended it
    silent = probe_tegrastats(tmp_path, [sys.executable, "-c", "print('RAM 1/2MB')"])
    assert isinstance(silent, str) and "no power rail" in silent


# ---- this machine's real sources -----------------------------------------------------------------------------------


def test_this_machine_reads_a_real_source_or_says_why_not():
    meter, probes = probe()
    if meter is None:  # the CI VM: no RAPL, no hwmon, no NVIDIA driver, no tegrastats
        assert [p.source for p in probes] == list(SOURCES)
        assert all(p.reason for p in probes)
        assert find_meter() is None and "nvml:" in unavailable_reason(probes)
        return
    try:
        meter.idle(0.2)
        with meter.window() as w:
            time.sleep(0.3)
    finally:
        meter.close()
    assert meter.source in SOURCES and math.isfinite(w.avg_watts) and w.avg_watts >= 0


def test_nvml_probe_gives_a_reason_or_a_counter():
    found = probe_nvml()
    if isinstance(found, str):
        assert "nvidia-ml-py" in found or "NVML" in found
    else:
        assert found.joules() >= 0 and found.watts() > 0


@pytest.mark.gpu
def test_nvml_window_on_the_gpu_machine():
    meter = find_meter("nvml")
    assert meter is not None, "a GPU machine has NVML; `pip install nvidia-ml-py` (in the gpu extra)"
    meter.idle(0.5)
    with meter.window() as w:
        time.sleep(1.0)
    assert w.joules > 0 and w.avg_watts > 0 and w.conditions.power_mode.startswith("power limit")


def test_cli_reads_a_recorded_tree_and_reports_json(tmp_path):
    orin_tree(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = ["--source", "jetson-sysfs", "--root", str(tmp_path), "--seconds", "0.2", "--idle-seconds", "0.1"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.power", *args, "--json"], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source"] == "jetson-sysfs" and report["window"]["avg_watts"] == pytest.approx(3.0)
    missing = subprocess.run(
        [sys.executable, "-m", "benchmarks.power", "--source", "rapl", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert missing.returncode == 2 and "rapl: no " in missing.stdout


def test_a_tegrastats_reader_nobody_closed_ends_with_the_program(tmp_path):
    child = f"import time\nprint({ORIN_NANO!r}, flush=True)\ntime.sleep(60)\n"
    script = (
        "import sys\nfrom pathlib import Path\nfrom benchmarks.power_sources import probe_tegrastats\n"
        f"reader = probe_tegrastats(Path('.'), [sys.executable, '-c', {child!r}])\nprint(reader._process.pid)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    pid = int(done.stdout.split()[-1])
    time.sleep(0.2)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return
    state = Path(f"/proc/{pid}/stat").read_text().split()[2] if Path(f"/proc/{pid}/stat").exists() else "gone"
    assert state in {"Z", "gone"}, f"tegrastats child {pid} still running after its program ended"
