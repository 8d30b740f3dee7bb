"""A Sign-MNIST archive is checked while it streams (issue 13, finding 23): a wrong header is refused after the
first 64 KB and a member decompressing past the cap is refused without holding it in memory."""

from __future__ import annotations

import zipfile

import pytest

from train.data import sign_mnist
from train.data.sign_mnist import read_csv_text
from train.errors import DataError

CHUNK = b"0" * (1 << 20)


def _zip(path, first_line: bytes, megabytes: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("sign_mnist_train.csv", "w", force_zip64=True) as member:
            member.write(first_line)
            for _ in range(megabytes):
                member.write(CHUNK)


def test_zip_with_a_foreign_member_is_refused_at_the_header(tmp_path):
    import tracemalloc

    path = tmp_path / "archive.zip"
    _zip(path, b"not,a,sign,mnist,file\n", 64)
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="line 1 is not the Sign-MNIST header"):
            read_csv_text(path, "sign_mnist_train")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB allocated for a refused 64 MB member"  # was the whole member


def test_zip_member_past_the_cap_is_refused_while_streaming(tmp_path, monkeypatch):
    monkeypatch.setattr(sign_mnist, "MAX_CSV_BYTES", 8 << 20)  # the cap, scaled down with the file
    path = tmp_path / "archive.zip"
    _zip(path, b"label," + b",".join(b"pixel%d" % i for i in range(1, 785)) + b"\n", 16)
    with pytest.raises(DataError, match="decompresses to more than 8 MB"):
        read_csv_text(path, "sign_mnist_train")
