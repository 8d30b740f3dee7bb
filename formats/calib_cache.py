"""TensorRT's text calibration cache (``<name>.calib.cache``) for the implicit INT8 path of TensorRT ≤ 10.

The format TensorRT's calibrators write and read: a header line
``TRT-<version>-EntropyCalibration2`` and one ``<tensor name>: <scale>`` line per tensor, where
the scale is ``amax / 127`` as the 8 hex digits of its big-endian IEEE-754 float32 bits.
TensorRT ignores a cache whose header names another TensorRT version, so the file is written for
JetPack 6.0's TensorRT 8.6.1 and ``retag`` rewrites the header for the TensorRT that reads it
(the engine builder's cache calibrator does that); the tensor lines do not depend on the version.

It lives in ``runtime`` because both sides read it: ``calibration`` writes it on the training
machine, the engine builder reads it on the device. Pure Python, no TensorRT import.
"""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path

from formats.errors import RuntimeToolkitError
from formats.writer import Kind, write_artifact

ALGORITHM = "EntropyCalibration2"
DEFAULT_TAG = "8601"  # TensorRT 8.6.1 (JetPack 6.0)
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")
_LINE = re.compile(r"^(.+): ([0-9a-fA-F]{8})$")


class CacheFormatError(RuntimeToolkitError, ValueError):
    """A calibration cache that is not in TensorRT's text format."""


def version_tag(version: str) -> str:
    """``NV_TENSORRT_VERSION`` as TensorRT prints it in cache headers: 8.6.1 → 8601, 10.3.0 → 100300."""
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]] + [0, 0, 0]
    major, minor, patch = parts[:3]
    return str(major * 10000 + minor * 100 + patch) if major >= 10 else str(major * 1000 + minor * 100 + patch)


def scale_to_hex(scale: float) -> str:
    return struct.pack(">f", scale).hex()


def hex_to_scale(text: str) -> float:
    return struct.unpack(">f", bytes.fromhex(text))[0]


def render(amax: dict[str, float], tag: str = DEFAULT_TAG, algorithm: str = ALGORITHM) -> str:
    lines = [f"TRT-{tag}-{algorithm}"]
    for name in sorted(amax):
        value = amax[name]
        if not math.isfinite(value) or value <= 0.0:
            continue  # an all-zero or broken tensor: no range rather than a zero scale TensorRT would divide by
        lines.append(f"{name}: {scale_to_hex(value / 127.0)}")
    return "\n".join(lines) + "\n"


def write_cache(path: Path, amax: dict[str, float], tag: str = DEFAULT_TAG) -> Path:
    text = render(amax, tag)
    write_artifact(path, text, Kind.CALIB_CACHE)
    if read_cache(path)[1].keys() != {line.rsplit(": ", 1)[0] for line in text.splitlines()[1:]}:
        raise CacheFormatError(f"{path}: written cache does not read back")  # verify what landed
    return Path(path)


def parse(text: str, source: str = "calibration cache") -> tuple[str, dict[str, float]]:
    """(header, {tensor: scale}); raises CacheFormatError naming the first bad line."""
    lines = text.splitlines()
    if not lines or not _HEADER.match(lines[0].strip()):
        raise CacheFormatError(
            f"{source}: first line {lines[0][:60] if lines else ''!r} is not a TensorRT cache "
            "header like 'TRT-8601-EntropyCalibration2'"
        )
    scales = {}
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        match = _LINE.match(line.strip())
        if not match:
            raise CacheFormatError(f"{source}: line {number} {line[:60]!r} is not '<tensor>: <8 hex digits>'")
        scales[match.group(1)] = hex_to_scale(match.group(2))
    return lines[0].strip(), scales


def read_cache(path: Path) -> tuple[str, dict[str, float]]:
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise CacheFormatError(f"{path}: cannot read the calibration cache ({exc})") from exc
    return parse(text, str(path))


def retag(text: str, tag: str) -> str:
    """The same cache with its header naming TensorRT version ``tag`` (see ``version_tag``) and
    ``EntropyCalibration2``: the builder serves it through an ``IInt8EntropyCalibrator2``, and TensorRT
    ignores a cache whose header names another algorithm than the calibrator's."""
    parse(text)  # refuse a file that is not a cache, naming the bad line
    return "\n".join([f"TRT-{tag}-{ALGORITHM}"] + text.splitlines()[1:]) + "\n"
