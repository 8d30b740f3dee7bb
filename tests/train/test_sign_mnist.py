import gzip
import io
import zipfile

import numpy as np
import pytest

from train.data.sign_mnist import ASL_LABELS, HEADER, load_sign_mnist, load_sign_mnist_file, remap_label
from train.errors import DataError


@pytest.fixture(scope="module")
def test_csv_text(data_dir) -> str:
    return gzip.decompress((data_dir / "sign_mnist" / "sign_mnist_test.csv.gz").read_bytes()).decode()


def test_real_splits_load_with_24_contiguous_classes(data_dir):
    train, test = load_sign_mnist(data_dir, "train"), load_sign_mnist(data_dir, "test")
    assert train.images.shape == (27455, 28, 28) and test.images.shape == (7172, 28, 28)
    assert train.images.dtype == np.uint8
    assert sorted(np.unique(train.labels)) == list(range(24)) == sorted(np.unique(test.labels))
    assert "".join(ASL_LABELS) == "abcdefghiklmnopqrstuvwxy"


def test_label_remap_skips_j():
    assert remap_label(np.array([0, 8, 10, 24])).tolist() == [0, 8, 9, 23]


@pytest.mark.parametrize("form", ["csv", "csv.gz", "zip"])
def test_csv_gzip_and_kaggle_zip_read_the_same(tmp_path, test_csv_text, form):
    head = "\r\n".join(test_csv_text.splitlines()[:51]) + "\r\n"
    path = tmp_path / f"sign_mnist_test.{form}"
    if form == "csv":
        path.write_text(head)
    elif form == "csv.gz":
        path.write_bytes(gzip.compress(head.encode()))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("sign_mnist_train.csv", "label\n")  # the Kaggle zip holds both CSVs
            z.writestr("sign_mnist_test.csv", head)
        (tmp_path / "sign_mnist").mkdir()
        path.rename(tmp_path / "sign_mnist" / "sign-language-mnist.zip")
        got = load_sign_mnist(tmp_path, "test")
        assert got.images.shape == (50, 28, 28)
        return
    got = load_sign_mnist_file(path)
    assert got.images.shape == (50, 28, 28)
    first = [int(v) for v in test_csv_text.splitlines()[1].split(",")]
    assert got.images[0].ravel().tolist() == first[1:]


def _rows(text: str, n: int) -> list[str]:
    return text.splitlines()[1 : n + 1]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r[:-4], "line 3: 784 columns, expected 785"),
        (lambda r: r + ",7", "line 3: 786 columns, expected 785"),
        (lambda r: r.replace(",", ",abc,", 1).rsplit(",", 1)[0], "line 3: pixel1 is 'abc', not an integer"),
        (lambda r: r.split(",", 1)[0] + ",300," + r.split(",", 2)[2], "line 3: pixel value 300 outside 0..255"),
        (lambda r: "9," + r.split(",", 1)[1], "line 3: unknown label 9"),
        (lambda r: "-1," + r.split(",", 1)[1], "line 3: unknown label -1"),
    ],
)
def test_malformed_rows_are_reported_with_their_line(tmp_path, test_csv_text, mutate, message):
    rows = _rows(test_csv_text, 4)
    rows[1] = mutate(rows[1])
    path = tmp_path / "bad.csv"
    path.write_text(",".join(HEADER) + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message) as info:
        load_sign_mnist_file(path)
    assert "bad.csv" in str(info.value) and "1 malformed row(s)" in str(info.value)


def test_many_bad_rows_are_counted_not_dropped(tmp_path, test_csv_text):
    rows = ["5," + ",".join(["999"] * 784) for _ in range(15)] + _rows(test_csv_text, 3)
    path = tmp_path / "many.csv"
    path.write_text(",".join(HEADER) + "\n" + "\n".join(rows))
    with pytest.raises(
        DataError, match=r"(?s)many.csv: 15 malformed row\(s\).*line 11: pixel value 999.*5 more not shown"
    ):
        load_sign_mnist_file(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "file is empty"),
        ("1,2,3\n", "line 1 is not the Sign-MNIST header"),
        (",".join(HEADER) + "\n", "header only, no data rows"),
    ],
)
def test_empty_headerless_and_header_only_files(tmp_path, content, message):
    path = tmp_path / "x.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_sign_mnist_file(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match=r"sign_mnist_train.csv\[.gz\]: Sign-MNIST file not found; download"):
        load_sign_mnist(tmp_path, "train")
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(b"label,pixel1\n" * 100)[:30])
    with pytest.raises(DataError, match="cut.csv.gz: compressed file is truncated or corrupt"):
        load_sign_mnist_file(tmp_path / "cut.csv.gz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no csv here")
    (tmp_path / "k.zip").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="zip holds no .csv file"):
        load_sign_mnist_file(tmp_path / "k.zip")
