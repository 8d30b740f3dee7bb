import gzip
import shutil

import numpy as np
import pytest

from train.data.mnist import MNIST_MD5, load_mnist, parse_idx
from train.errors import DataError


def test_real_mnist_loads_with_canonical_shapes(data_dir):
    train, test = load_mnist(data_dir, "train"), load_mnist(data_dir, "test")
    assert train.images.shape == (60000, 28, 28) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28) and test.labels.shape == (10000,)
    assert train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    assert np.bincount(test.labels).tolist()[:3] == [980, 1135, 1032]


@pytest.fixture
def mnist_copy(tmp_path, data_dir):
    folder = tmp_path / "mnist"
    shutil.copytree(data_dir / "mnist", folder)
    for p in folder.iterdir():
        p.chmod(0o644)
    return tmp_path


def test_raw_uncompressed_files_are_read_too(mnist_copy):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    (mnist_copy / "mnist" / "t10k-labels-idx1-ubyte").write_bytes(gzip.decompress(path.read_bytes()))
    path.unlink()
    assert load_mnist(mnist_copy, "test").labels.shape == (10000,)


def test_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[\.gz\]: MNIST file not found; run `make data`"):
        load_mnist(tmp_path, "train")


def test_truncated_gzip_is_refused(mnist_copy):
    path = mnist_copy / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: gzip stream is truncated or corrupt"):
        load_mnist(mnist_copy, "test")


def test_modified_file_fails_the_md5(mnist_copy):
    path = mnist_copy / "mnist" / "t10k-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[100] = (data[100] + 1) % 10
    path.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=f"differs from the canonical {MNIST_MD5['t10k-labels-idx1-ubyte']}"):
        load_mnist(mnist_copy, "test")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "not an IDX file"),
        (b"\x01\x02\x08\x01", "not an IDX file"),
        (b"\x00\x00\x08\x03\x00\x00", "header is cut short"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", r"body has 3 bytes, header \(5,\) promises 5"),
    ],
)
def test_parse_idx_refuses_malformed_bytes(data, message):
    with pytest.raises(DataError, match=message):
        parse_idx(data, "x.idx")


def test_parse_idx_reads_big_endian_types():
    data = b"\x00\x00\x0c\x01\x00\x00\x00\x02" + np.array([1, -2], ">i4").tobytes()
    assert parse_idx(data, "x").tolist() == [1, -2]
