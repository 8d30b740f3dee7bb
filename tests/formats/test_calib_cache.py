import struct

import pytest

from formats.calib_cache import (
    CacheFormatError,
    parse,
    read_cache,
    render,
    retag,
    scale_to_hex,
    version_tag,
    write_cache,
)


def test_scale_is_big_endian_float32_hex():
    assert scale_to_hex(1.0) == "3f800000"
    assert scale_to_hex(127.0 / 127.0) == "3f800000"
    assert struct.unpack(">f", bytes.fromhex(scale_to_hex(0.0123)))[0] == pytest.approx(0.0123)


def test_version_tags_follow_nv_tensorrt_version():
    assert version_tag("8.6.1") == "8601"
    assert version_tag("8.5.2.2") == "8502"
    assert version_tag("10.3.0") == "100300"
    assert version_tag("10.13.2.6") == "101302"


def test_render_parse_round_trip_and_zero_ranges_left_out(tmp_path):
    amax = {"input": 2.5, "conv/out": 12.7, "dead": 0.0}
    path = write_cache(tmp_path / "m.calib.cache", amax)
    header, scales = read_cache(path)
    assert header == "TRT-8601-EntropyCalibration2"
    assert set(scales) == {"input", "conv/out"}
    assert scales["conv/out"] == pytest.approx(0.1)
    assert path.read_text().splitlines()[1].startswith("conv/out: ")  # sorted, one tensor per line


def test_retag_changes_only_the_header():
    text = render({"x": 1.27})
    again = retag(text, version_tag("10.3.0"))
    assert again.splitlines()[0] == "TRT-100300-EntropyCalibration2"
    assert again.splitlines()[1:] == text.splitlines()[1:]


def test_retag_names_the_calibrator_that_serves_it():
    # a cache written by another calibrator (MinMax) would be ignored by the IInt8EntropyCalibrator2 that reads it
    text = "TRT-8601-MinMaxCalibration\nx: 3c010204\n"
    assert retag(text, "100300").splitlines()[0] == "TRT-100300-EntropyCalibration2"


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "first line"),
        ("not a cache\n", "first line"),
        ("TRT-8601-EntropyCalibration2\ninput 3f800000\n", "line 2"),
        ("TRT-8601-EntropyCalibration2\ninput: 3f80\n", "line 2"),
    ],
)
def test_malformed_caches_name_the_line(text, where):
    with pytest.raises(CacheFormatError, match=where):
        parse(text)
