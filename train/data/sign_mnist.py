"""Sign Language MNIST (Kaggle "datamunge/sign-language-mnist") from its CSV files.

Accepts ``.csv``, ``.csv.gz`` and the Kaggle zip. Header ``label,pixel1..pixel784``; labels 0–24
with 9 (J) absent, remapped to 24 contiguous classes ``abcdefghiklmnopqrstuvwxy`` (label − 1 where
label > 9). Every malformed row — wrong column count, a non-numeric pixel, a value outside 0–255,
an unknown label — is reported with its line number; nothing is silently dropped.
"""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from train.errors import DataError

ASL_LABELS = tuple("abcdefghiklmnopqrstuvwxy")
KAGGLE_LABELS = tuple(v for v in range(25) if v != 9)  # J (9) and Z (25) need motion
PIXELS = 28 * 28
HEADER = ["label"] + [f"pixel{i}" for i in range(1, PIXELS + 1)]
SPLIT_NAMES = {"train": "sign_mnist_train", "test": "sign_mnist_test"}
MAX_REPORTED = 10
_GET_HINT = (
    "download the CSVs from Kaggle (datamunge/sign-language-mnist) into <data-dir>/sign_mnist/ "
    "(.csv, .csv.gz or the Kaggle zip)"
)


@dataclass(frozen=True)
class SignMnistSplit:
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64 in 0..23, indices into ASL_LABELS


def remap_label(kaggle: np.ndarray) -> np.ndarray:
    """Kaggle labels 0–24 (no 9) → contiguous 0–23."""
    return np.where(kaggle > 9, kaggle - 1, kaggle).astype(np.int64)


# The Kaggle CSVs are 83 MB (train) and 21 MB (test); anything far beyond is not Sign-MNIST, and a zip bomb
# (4 MB holding 4 GiB) must be stopped while streaming, not after decompressing it whole.
MAX_CSV_BYTES = 512 * 1024 * 1024


def _read_capped(stream: io.BufferedIOBase, path: Path) -> bytes:
    """A decompressing stream read to the end, refusing a wrong header after the first 64 KB and anything
    over MAX_CSV_BYTES without holding more than that in memory."""
    head = stream.read(64 * 1024)
    first = head.split(b"\n", 1)[0].lstrip(b"\xef\xbb\xbf").strip()
    if head and not first.startswith(b"label,"):
        raise DataError(
            f"{path}: line 1 is not the Sign-MNIST header 'label,pixel1,...,pixel784' (found {first[:60]!r}...)"
        )
    rest = stream.read(MAX_CSV_BYTES + 1 - len(head))
    if len(head) + len(rest) > MAX_CSV_BYTES:
        raise DataError(
            f"{path}: decompresses to more than {MAX_CSV_BYTES >> 20} MB; Sign-MNIST CSVs are about "
            "100 MB (a damaged or hostile archive?)"
        )
    return head + rest


def read_csv_text(path: Path, member: str | None = None) -> str:
    """The CSV text of ``path``: plain, gzip (by magic) or a zip holding ``member``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_GET_HINT}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a Sign-MNIST CSV file") from None
    try:
        if raw[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                raw = _read_capped(stream, path)
        elif raw[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(raw)) as archive:
                names = [n for n in archive.namelist() if n.endswith(".csv")]
                wanted = [n for n in names if member and Path(n).name == f"{member}.csv"] or names[:1]
                if not wanted:
                    raise DataError(f"{path}: zip holds no .csv file (found {archive.namelist()[:5]})")
                with archive.open(wanted[0]) as stream:
                    raw = _read_capped(stream, path)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: compressed file is truncated or corrupt ({exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text CSV file ({exc})") from None


def parse_sign_mnist(text: str, source: str) -> SignMnistSplit:
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise DataError(f"{source}: file is empty; expected a header 'label,pixel1,...,pixel784' and rows")
    header = [h.strip() for h in lines[0].split(",")]
    if header != HEADER:
        raise DataError(
            f"{source}: line 1 is not the Sign-MNIST header 'label,pixel1,...,pixel784' (found {lines[0][:60]!r}...)"
        )
    rows = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    if not rows:
        raise DataError(f"{source}: header only, no data rows")
    problems = []
    for n, line in rows:
        count = line.count(",") + 1
        if count != PIXELS + 1:
            problems.append(f"line {n}: {count} columns, expected {PIXELS + 1}")
    if problems:
        raise _malformed(source, problems, len(problems))
    values = _parse_numbers(rows, problems)
    if problems:
        raise _malformed(source, problems, len(problems))
    labels, pixels = values[:, 0], values[:, 1:]
    out_of_range = (pixels < 0).any(1) | (pixels > 255).any(1)
    unknown = ~np.isin(labels, KAGGLE_LABELS)
    for i in np.flatnonzero(out_of_range | unknown)[:MAX_REPORTED]:
        if unknown[i]:
            problems.append(f"line {rows[i][0]}: unknown label {labels[i]} (expected 0..24 without 9)")
        else:
            bad = pixels[i][(pixels[i] < 0) | (pixels[i] > 255)][0]
            problems.append(f"line {rows[i][0]}: pixel value {bad} outside 0..255")
    if problems:
        raise _malformed(source, problems, int((out_of_range | unknown).sum()))
    return SignMnistSplit(pixels.astype(np.uint8).reshape(-1, 28, 28), remap_label(labels))


def _parse_numbers(rows: list[tuple[int, str]], problems: list[str]) -> np.ndarray:
    """All rows as int64, fast; on failure, find the rows and columns that are not integers."""
    try:
        return np.loadtxt([line for _, line in rows], delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError:
        pass
    for n, line in rows:
        for col, cell in enumerate(line.strip().split(",")):
            try:
                int(cell)
            except ValueError:
                name = HEADER[col] if col < len(HEADER) else f"column {col + 1}"
                problems.append(f"line {n}: {name} is {cell!r}, not an integer")
                break
    return np.empty((0, PIXELS + 1), np.int64)


def _malformed(source: str, problems: list[str], total: int) -> DataError:
    shown = "\n  ".join(problems[:MAX_REPORTED])
    more = f"\n  ... {total - MAX_REPORTED} more not shown" if total > MAX_REPORTED else ""
    return DataError(f"{source}: {total} malformed row(s); fix or remove them:\n  {shown}{more}")


def find_split_file(folder: Path, split: str) -> tuple[Path, str]:
    stem = SPLIT_NAMES[split]
    for name in (f"{stem}.csv.gz", f"{stem}.csv", f"{stem}.zip", "sign-language-mnist.zip", "archive.zip"):
        if (folder / name).is_file():
            return folder / name, stem
    raise DataError(f"{folder / stem}.csv[.gz]: Sign-MNIST file not found; {_GET_HINT}")


def load_sign_mnist(data_dir: Path, split: str) -> SignMnistSplit:
    """The ``train`` (27,455) or ``test`` (7,172) split from ``<data_dir>/sign_mnist``."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {sorted(SPLIT_NAMES)}, got {split!r}")
    path, stem = find_split_file(Path(data_dir) / "sign_mnist", split)
    return parse_sign_mnist(read_csv_text(path, member=stem), str(path))


def load_sign_mnist_file(path: Path) -> SignMnistSplit:
    """One CSV file given by path (a user's own data in the Sign-MNIST format)."""
    return parse_sign_mnist(read_csv_text(Path(path)), str(path))
