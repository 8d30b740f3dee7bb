"""Where watts come from: one small reader per source, behind the interface ``benchmarks.power`` samples.

Each reader knows one source and nothing about windows or idle power:

- ``JetsonSysfsReader``: the INA3221 rail monitor of a Jetson through sysfs, in both layouts NVIDIA has shipped
  (jetson_stats' ``jtop/core/power.py`` reads the same two):
  JetPack 5/6 hwmon (``/sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon*/in<N>_label`` = ``VDD_IN``,
  ``in<N>_input`` millivolts, ``curr<N>_input`` milliamps; channel 7 is "sum of shunt voltages", skipped) and
  JetPack 4 IIO (``/sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_<N>`` = ``POM_5V_IN``,
  ``in_power<N>_input`` milliwatts);
- ``TegrastatsReader``: the power fields of ``tegrastats`` lines (``VDD_IN 4556mW/4556mW`` on Orin,
  ``POM_5V_IN 933/933`` on the Nano, ``… 5139mW/5139mW/5139mW`` on JetPack 7);
- ``NvmlReader``: a discrete GPU's total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules
  since the driver loaded) through ``nvidia-ml-py`` (``import pynvml``), where it is installed;
- ``RaplReader``: an x86 CPU's RAPL package counters (``/sys/class/powercap/intel-rapl:N/energy_uj``), which wrap
  at ``max_energy_range_uj``.

The board total is the input rail (``VDD_IN`` on Orin Nano/NX, ``POM_5V_IN`` on the Nano); where a board has no
input rail (AGX Orin: ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0``…) the rails are summed and the note says so,
as jtop does. Every reader takes ``root`` (default ``/``) so tests point it at a recorded tree in ``tmp_path``.
Each ``probe_*`` returns a reader or the one-line reason there is none.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NVML, JETSON_SYSFS, TEGRASTATS, RAPL = "nvml", "jetson-sysfs", "tegrastats", "rapl"
SOURCES = (JETSON_SYSFS, TEGRASTATS, NVML, RAPL)  # the order ``auto`` tries
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")  # the board's input rail: Orin Nano/NX/TX2, Nano
SUM_OF_SHUNTS = 7  # INA3221 hwmon channel 7 is "sum of shunt voltages", not a rail


@dataclass(frozen=True)
class PowerConditions:
    """What the device was set to when a number was measured; ``None`` where this machine cannot say."""

    power_mode: str | None
    jetson_clocks: bool | None
    throttled: bool | None
    note: str = ""

    def merged(self, later: PowerConditions) -> PowerConditions:
        """The conditions over a window from its start and end: throttled if either says so; the later mode."""
        flags = [f for f in (self.throttled, later.throttled) if f is not None]
        notes = dict.fromkeys(n for n in (self.note, later.note) if n)
        return PowerConditions(
            later.power_mode if later.power_mode is not None else self.power_mode,
            later.jetson_clocks if later.jetson_clocks is not None else self.jetson_clocks,
            any(flags) if flags else None,
            "; ".join(notes),
        )


UNKNOWN = PowerConditions(None, None, None)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def total_rails(rails: dict[str, float]) -> tuple[float, str]:
    """The board's power in the rails' unit and which rails made it: the input rail, else the sum of all."""
    for name in INPUT_RAILS:
        if name in rails:
            return rails[name], name
    return sum(rails.values()), "sum of " + "+".join(sorted(rails)) + " (no VDD_IN/POM_5V_IN rail on this board)"


# ---- Jetson INA3221 through sysfs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rail:
    """One INA3221 channel: ``power`` milliwatts (JetPack 4), or ``volts`` mV × ``amps`` mA (JetPack 5/6)."""

    name: str
    power: Path | None = None
    volts: Path | None = None
    amps: Path | None = None
    alarms: tuple[Path, ...] = ()

    def milliwatts(self) -> float | None:
        if self.power is not None:
            value = _read_int(self.power)
            return None if value is None else float(value)
        volts, amps = _read_int(self.volts), _read_int(self.amps)  # type: ignore[arg-type]
        return None if volts is None or amps is None else volts * amps / 1000.0


def _hwmon_rails(folder: Path) -> list[Rail]:
    rails = []
    for label in sorted(folder.glob("in*_label")):
        number = label.name[2:].split("_")[0]
        name = _read(label) or ""
        if not number.isdigit() or int(number) == SUM_OF_SHUNTS or not name or name.startswith("NC"):
            continue  # "NC" channels are not connected (Orin)
        volts, amps = folder / f"in{number}_input", folder / f"curr{number}_input"
        alarms = tuple(
            p for p in (folder / f"curr{number}_crit_alarm", folder / f"curr{number}_max_alarm") if p.exists()
        )
        if volts.exists() and amps.exists():
            rails.append(Rail(name, volts=volts, amps=amps, alarms=alarms))
    return rails


def _iio_rails(folder: Path) -> list[Rail]:
    rails = []
    for label in sorted(folder.glob("rail_name_*")):
        number = label.name.rsplit("_", 1)[-1]
        power = folder / f"in_power{number}_input"
        if number.isdigit() and power.exists() and _read(label):
            rails.append(Rail(_read(label) or "", power=power))
    return rails


def find_ina3221_rails(root: Path) -> list[Rail]:
    """Every INA3221 rail under ``root``: hwmon (JetPack 5/6, ``ina3221``) and IIO (JetPack 4, ``ina3221x``)."""
    rails: list[Rail] = []
    for driver in ("ina3221", "ina3221x"):
        for device in sorted((root / "sys/bus/i2c/drivers" / driver).glob("*-*")):
            for folder in sorted(device.glob("hwmon/hwmon*")):
                rails += _hwmon_rails(folder)
            for folder in sorted(device.glob("iio:device*")):
                rails += _iio_rails(folder)
    return rails


class JetsonSysfsReader:
    """Instantaneous board watts from the INA3221 rails (total: ``VDD_IN`` / ``POM_5V_IN``, else their sum)."""

    source = JETSON_SYSFS
    counter = False

    def __init__(self, rails: Sequence[Rail], root: Path) -> None:
        self.rails = list(rails)
        self.root = root
        self.rail = total_rails({r.name: 0.0 for r in self.rails})[1]

    def watts(self) -> float:
        readings = {r.name: r.milliwatts() for r in self.rails}
        good = {k: v for k, v in readings.items() if v is not None}
        if not good:
            raise OSError(f"no INA3221 rail readable now ({', '.join(readings)})")
        return total_rails(good)[0] / 1000.0

    def joules(self) -> float | None:
        return None

    def conditions(self) -> PowerConditions:
        over_current = [a for r in self.rails for a in r.alarms if _read(a) == "1"]
        jetson = jetson_conditions(self.root)
        note = f"rail {self.rail}" + (f"; over-current alarm {over_current[0].name}" if over_current else "")
        throttled = True if over_current else jetson.throttled
        return PowerConditions(
            jetson.power_mode, jetson.jetson_clocks, throttled, "; ".join(filter(None, [note, jetson.note]))
        )

    def close(self) -> None:
        pass


def probe_jetson_sysfs(root: Path) -> JetsonSysfsReader | str:
    rails = find_ina3221_rails(root)
    if not rails:
        return f"no INA3221 rails under {root / 'sys/bus/i2c/drivers'}/ina3221{{,x}} (not a Jetson, or no sysfs)"
    reader = JetsonSysfsReader(rails, root)
    try:
        reader.watts()
    except OSError as exc:
        return f"INA3221 rails found but not readable: {exc}"
    return reader


# ---- tegrastats --------------------------------------------------------------------------------------------------

# "NAME <now>[mW]/<avg>[mW][/<max>[mW]]": Orin "VDD_IN 4556mW/4556mW", Nano "POM_5V_IN 933/933", JetPack 7
# "VDD_GPU_SOC 5139mW/5139mW/5139mW". The closing \b refuses "RAM 2147/7620MB" and "SWAP 1476/3810MB" (no word
# boundary between the number and "MB").
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/\d+(?:mW)?)?\b(?!\w)")


def parse_tegrastats(line: str) -> dict[str, float]:
    """Each power rail of one ``tegrastats`` line → its instantaneous milliwatts (the first of now/avg[/max])."""
    skip = {"RAM", "SWAP", "IRAM", "NC"}  # memory fields, and Orin's not-connected "NC 0mW/0mW" channels
    return {name: float(now) for name, now, _avg in _RAIL.findall(line) if name not in skip}


class TegrastatsReader:
    """Board watts from a running ``tegrastats --interval <ms>`` (the newest line wins; a thread reads them)."""

    source = TEGRASTATS
    counter = False

    def __init__(self, command: Sequence[str], root: Path, timeout_s: float = 5.0) -> None:
        self.root = root
        self._latest: dict[str, float] = {}
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            list(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        atexit.register(self.close)  # a meter nobody closed must not leave tegrastats running after us
        self._thread = threading.Thread(target=self._pump, name="tegrastats", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._latest and time.monotonic() < deadline and self._process.poll() is None:
            time.sleep(0.01)
        self.rail = total_rails(self._latest)[1] if self._latest else ""

    def _pump(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            rails = parse_tegrastats(line)
            if rails:
                with self._lock:
                    self._latest = rails

    def watts(self) -> float:
        with self._lock:
            rails = dict(self._latest)
        if not rails:
            raise OSError("tegrastats printed no power rail")
        return total_rails(rails)[0] / 1000.0

    def joules(self) -> float | None:
        return None

    def conditions(self) -> PowerConditions:
        jetson = jetson_conditions(self.root)
        return PowerConditions(
            jetson.power_mode,
            jetson.jetson_clocks,
            jetson.throttled,
            "; ".join(filter(None, [f"rail {self.rail}", jetson.note])),
        )

    def close(self) -> None:
        atexit.unregister(self.close)
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._process.kill()


def probe_tegrastats(root: Path, command: Sequence[str] | None = None) -> TegrastatsReader | str:
    if command is None:
        exe = shutil.which("tegrastats")
        if exe is None:
            return "no `tegrastats` on PATH (not a Jetson)"
        command = [exe, "--interval", "100"]
    reader = TegrastatsReader(command, root)
    if not reader.rail:
        reader.close()
        return f"`{' '.join(command)}` printed no power rail within 5 s (older JetPacks show rails only with sudo)"
    return reader


# ---- Jetson conditions: nvpmodel, jetson_clocks, thermal throttling ----------------------------------------------

_NVPMODEL = re.compile(r"NV Power Mode:\s*(\S+)\s*\n\s*(\d+)")


def parse_nvpmodel(text: str) -> str | None:
    """``nvpmodel -q`` → ``"MAXN_SUPER (mode 2)"``; None where the text holds no power mode."""
    match = _NVPMODEL.search(text)
    if match:
        return f"{match.group(1)} (mode {match.group(2)})"
    name = re.search(r"NV Power Mode:\s*(\S+)", text)
    return name.group(1) if name else None


def query_nvpmodel(run: Callable[[list[str]], str] | None = None) -> str | None:
    """The current Jetson power mode from ``nvpmodel -q``; None where nvpmodel is missing or fails."""
    if run is None:
        exe = shutil.which("nvpmodel")
        if exe is None:
            return None

        def run(cmd: list[str]) -> str:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False).stdout

        return parse_nvpmodel(run([exe, "-q"]))
    return parse_nvpmodel(run(["nvpmodel", "-q"]))


def clocks_locked(root: Path) -> bool | None:
    """Whether ``jetson_clocks`` is on: it pins every online CPU's and the GPU's minimum clock to the maximum.

    Read from cpufreq (``scaling_min_freq`` = ``cpuinfo_max_freq``) and the GPU's devfreq node (``min_freq`` =
    ``max_freq``; ``17000000.ga10b`` on Orin, ``57000000.gpu`` on the Nano); None where neither is readable.
    """
    checks = []
    for cpu in sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*")):
        if _read(cpu / "online") == "0":
            continue
        low, top = _read_int(cpu / "cpufreq/scaling_min_freq"), _read_int(cpu / "cpufreq/cpuinfo_max_freq")
        if low is not None and top is not None:
            checks.append(low >= top)
    for node in sorted((root / "sys/class/devfreq").glob("*")):
        if "gpu" in node.name or "ga10b" in node.name or "gv11b" in node.name or "gp10b" in node.name:
            low, top = _read_int(node / "min_freq"), _read_int(node / "max_freq")
            if low is not None and top is not None:
                checks.append(low >= top)
    return all(checks) if checks else None


def thermal_throttled(root: Path) -> tuple[bool | None, str]:
    """True where a thermal zone is at or past its first ``passive`` trip point (the kernel slows clocks there)."""
    seen, hot = 0, []
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        temp = _read_int(zone / "temp")
        trips = [
            _read_int(zone / t.name.replace("_type", "_temp"))
            for t in sorted(zone.glob("trip_point_*_type"))
            if _read(t) == "passive"
        ]
        trips = [t for t in trips if t is not None and t > 0]
        if temp is None or not trips:
            continue
        seen += 1
        if temp >= min(trips):
            hot.append(f"{_read(zone / 'type') or zone.name} {temp / 1000:.1f} °C ≥ {min(trips) / 1000:.1f} °C")
    if not seen:
        return None, ""
    return bool(hot), ("thermal throttling: " + ", ".join(hot)) if hot else ""


def jetson_conditions(root: Path, nvpmodel: Callable[[list[str]], str] | None = None) -> PowerConditions:
    throttled, note = thermal_throttled(root)
    return PowerConditions(
        query_nvpmodel(nvpmodel) if root == Path("/") or nvpmodel else None, clocks_locked(root), throttled, note
    )


# ---- NVML (discrete GPU) ------------------------------------------------------------------------------------------

# nvmlClocksEventReasons that mean the GPU ran slower than it was asked to (idle and application clocks do not).
_SLOWDOWNS = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}


class NvmlReader:
    """A dGPU's energy counter (mJ since the driver loaded, no wrap in practice) and instantaneous power."""

    source = NVML
    counter = True

    def __init__(self, pynvml: Any, index: int = 0) -> None:
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(self._handle)
        self.rail = f"GPU {index} {name.decode() if isinstance(name, bytes) else name}"

    def watts(self) -> float:
        return self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000.0

    def joules(self) -> float | None:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000.0

    def conditions(self) -> PowerConditions:
        nvml, handle = self._nvml, self._handle
        mode = None
        try:
            mode = f"power limit {nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000:.0f} W"
        except nvml.NVMLError:
            pass
        reasons_fn = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
            nvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
        )
        try:
            reasons = reasons_fn(handle) if reasons_fn else None
        except nvml.NVMLError:
            reasons = None
        if reasons is None:
            return PowerConditions(mode, None, None, self.rail)
        slow = [text for bit, text in _SLOWDOWNS.items() if reasons & bit]
        return PowerConditions(mode, None, bool(slow), "; ".join([self.rail, *slow]))

    def close(self) -> None:
        pass


def probe_nvml(index: int = 0) -> NvmlReader | str:
    try:
        import pynvml
    except ImportError:
        return "nvidia-ml-py is not installed (`pip install nvidia-ml-py`, in the `gpu` extra)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return f"NVML did not start: {exc} (no NVIDIA driver here)"
    try:
        reader = NvmlReader(pynvml, index)
        reader.joules()
    except pynvml.NVMLError as exc:
        return f"NVML has no total-energy counter on GPU {index}: {exc} (pre-Volta GPUs and Jetsons lack it)"
    return reader


# ---- RAPL (x86 CPU packages) -------------------------------------------------------------------------------------


@dataclass
class _RaplZone:
    name: str
    energy: Path
    wrap: int
    last: int
    total: int = 0  # microjoules accumulated since the reader started, wraps unfolded


class RaplReader:
    """Sum of the RAPL package counters; each read unfolds a wrap (the counter restarts at ``max_energy_range_uj``).

    A counter wraps after ``max_energy_range_uj`` µJ (about 262 kJ…; at 200 W every ~20 min on common parts), so
    one wrap between two reads is unfolded; the meter reads in a thread, far more often than that.
    """

    source = RAPL
    counter = True

    def __init__(self, zones: Sequence[_RaplZone], root: Path) -> None:
        self._zones = list(zones)
        self._lock = threading.Lock()
        self.root = root
        self.rail = "+".join(z.name for z in self._zones)
        self._last_throttle = self._throttle_count()

    def joules(self) -> float | None:
        with self._lock:
            for zone in self._zones:
                now = _read_int(zone.energy)
                if now is None:
                    raise OSError(f"{zone.energy} is no longer readable")
                zone.total += now - zone.last if now >= zone.last else zone.wrap - zone.last + now
                zone.last = now
            return sum(z.total for z in self._zones) / 1e6

    def watts(self) -> float:
        start, t0 = self.joules() or 0.0, time.perf_counter()
        time.sleep(0.05)
        return ((self.joules() or 0.0) - start) / (time.perf_counter() - t0)

    def _throttle_count(self) -> int | None:
        counts = [
            _read_int(p)
            for p in (self.root / "sys/devices/system/cpu").glob("cpu*/thermal_throttle/package_throttle_count")
        ]
        counts = [c for c in counts if c is not None]
        return sum(counts) if counts else None

    def conditions(self) -> PowerConditions:
        governor = _read(self.root / "sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
        count = self._throttle_count()
        throttled = None if count is None or self._last_throttle is None else count > self._last_throttle
        self._last_throttle = count
        return PowerConditions(f"governor {governor}" if governor else None, None, throttled, f"RAPL {self.rail}")

    def close(self) -> None:
        pass


def probe_rapl(root: Path) -> RaplReader | str:
    base = root / "sys/class/powercap"
    if not base.is_dir():
        return f"no {base} (no RAPL: not x86, or a VM that hides it)"
    zones, denied = [], []
    for zone in sorted(base.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:  # intel-rapl:0:0 (core, uncore, dram) are inside package 0
            continue
        energy = zone / "energy_uj"
        if not os.access(energy, os.R_OK) or _read_int(energy) is None:
            denied.append(str(energy))
            continue
        zones.append(
            _RaplZone(
                _read(zone / "name") or zone.name,
                energy,
                _read_int(zone / "max_energy_range_uj") or 2**32,
                _read_int(energy) or 0,
            )
        )
    if not zones:
        why = f"{denied[0]} is not readable (root only since Linux 5.10: `sudo chmod o+r` it)" if denied else "none"
        return f"no readable RAPL package counter under {base}: {why}"
    return RaplReader(zones, root)
