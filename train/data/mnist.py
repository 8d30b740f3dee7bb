"""MNIST from the canonical IDX files (gzip or raw), MD5-verified.

``load_mnist(data_dir, "train")`` reads ``<data_dir>/mnist/train-images-idx3-ubyte[.gz]`` and its
labels and checks the MD5 of the uncompressed bytes against the canonical MNIST checksums, so a
short, corrupt or foreign file is refused with its name rather than training on garbage.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.errors import DataError

# MD5 of the uncompressed canonical files (they equal ../shared/data/mnist/MD5SUMS.uncompressed).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_LABELS = tuple(str(d) for d in range(10))

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_FETCH_HINT = "run `make data` (or `python -m train.data fetch-mnist --data-dir DIR`) to get it"


@dataclass(frozen=True)
class MnistSplit:
    images: np.ndarray  # (N, 28, 28) uint8, white digit on black
    labels: np.ndarray  # (N,) int64 in 0..9


def read_idx_bytes(path: Path) -> bytes:
    """The uncompressed bytes of an IDX file, gzip detected by its magic, not its name."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_FETCH_HINT}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: gzip stream is truncated or corrupt ({exc}); {_FETCH_HINT}") from None
    return raw


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Parse IDX bytes: magic 0x0000 <type> <ndim>, ndim big-endian uint32 sizes, then the body."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{source}: not an IDX file (magic bytes {data[:4].hex() or 'missing'})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: IDX header is cut short ({len(data)} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    body = len(data) - header
    if body != expected:
        raise DataError(
            f"{source}: IDX body has {body} bytes, header {shape} promises {expected}; the file is "
            f"truncated or corrupt; {_FETCH_HINT}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder / stem}[.gz]: MNIST file not found; {_FETCH_HINT}")


def read_verified_idx(folder: Path, stem: str, verify: bool = True) -> np.ndarray:
    path = find_idx(folder, stem)
    data = read_idx_bytes(path)
    if verify:
        digest = hashlib.md5(data).hexdigest()
        if digest != MNIST_MD5[stem]:
            raise DataError(
                f"{path}: MD5 {digest} differs from the canonical {MNIST_MD5[stem]}; the file is corrupt "
                f"or not the canonical MNIST; {_FETCH_HINT}"
            )
    return parse_idx(data, str(path))


def load_mnist(data_dir: Path, split: str, verify: bool = True) -> MnistSplit:
    """The 60k ``train`` or 10k ``test`` split from ``<data_dir>/mnist``."""
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {sorted(SPLIT_FILES)}, got {split!r}")
    folder = Path(data_dir) / "mnist"
    images_stem, labels_stem = SPLIT_FILES[split]
    images = read_verified_idx(folder, images_stem, verify)
    labels = read_verified_idx(folder, labels_stem, verify)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{folder}: {split} images {images.shape} and labels {labels.shape} do not pair up")
    return MnistSplit(images=images, labels=labels.astype(np.int64))
