"""Deploy bundles made from the real calibrated MNIST CNN: created with checksums, unpacked safely, and every
damaged or mixed-up bundle refused with one line naming the file and the fix (through the real CLIs)."""

import io
import json
import subprocess
import sys
import tarfile

import pytest

from engine.bundle import create
from formats.bundle import BundleError, unpack, verify, verify_beside
from tests.conftest import REPO


@pytest.fixture(scope="module")
def bundle(calibrated_cnn, tmp_path_factory):
    folder, _ = calibrated_cnn
    out = tmp_path_factory.mktemp("bundles")
    return create(folder, out, log=lambda *_: None)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd or REPO, capture_output=True, text=True, timeout=300)


def test_bundle_holds_what_a_device_needs_with_checksums(bundle):
    folder, archive = bundle
    names = {p.name for p in folder.iterdir()}
    assert {
        "mnist_cnn.json",
        "mnist_cnn.fp32.onnx",
        "mnist_cnn.fp16.onnx",
        "mnist_cnn.int8.onnx",
        "mnist_cnn.int8.ort.onnx",
        "mnist_cnn.calib.npz",
        "mnist_cnn.calib.json",
        "mnist_cnn.calib.cache",
        "mnist_cnn.golden.npz",
        "README.md",
        "BUNDLE.json",
        "SHA256SUMS",
    } <= names
    assert not any(n.endswith((".prep.onnx", ".pt")) for n in names)  # no training-only files
    assert len(verify(folder).sums) == len(names) - 1  # every file but SHA256SUMS itself is listed
    with tarfile.open(archive) as tar:
        assert {m.name.split("/", 1)[0] for m in tar.getmembers()} == {"mnist_cnn"}
    # standard tools can check it too
    assert subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=folder).returncode == 0


def test_unpack_verifies_and_never_overwrites(bundle, tmp_path):
    _, archive = bundle
    done = _cli("engine.bundle", "unpack", str(archive), "--out", str(tmp_path / "b"), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
    again = _cli("engine.bundle", "unpack", str(archive), "--out", str(tmp_path / "b"), "--json")
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert json.loads(again.stdout)["ok"] is False


def test_an_altered_file_is_named_by_the_builder_and_the_runtime(bundle, tmp_path):
    folder = unpack(bundle[1], tmp_path / "b").folder
    spec = folder / "mnist_cnn.json"
    spec.write_text(spec.read_text().replace('"0"', '"zero"'))  # reversed/edited labels: a mixed-up spec
    for command in (
        ["engine", "--onnx", str(folder / "mnist_cnn.fp32.onnx")],
        ["runtime.infer", "--engine", str(folder / "mnist_cnn.fp32.onnx"), str(spec)],
    ):
        done = _cli(*command)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "mnist_cnn.json: checksum does not match SHA256SUMS" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_a_missing_file_is_named(bundle, tmp_path):
    folder = unpack(bundle[1], tmp_path / "b").folder
    (folder / "mnist_cnn.calib.npz").unlink()
    with pytest.raises(BundleError, match="mnist_cnn.calib.npz: missing from the bundle"):
        verify_beside(folder / "mnist_cnn.int8.onnx")


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/evil.txt", "link"])
def test_archives_with_escaping_or_special_members_are_refused(tmp_path, member):
    archive = tmp_path / "bad.bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        if member == "link":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BundleError, match="not a plain file inside the bundle folder"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_create_refuses_to_overwrite_and_names_what_is_missing(bundle, tmp_path):
    folder, _ = bundle
    done = _cli("engine.bundle", "create", "--artifacts", str(tmp_path / "nothing"), "--out", str(tmp_path))
    assert done.returncode == 2 and "nothing.json, nothing.fp32.onnx not found" in done.stderr
    done = _cli("engine.bundle", "create", "--artifacts", str(folder), "--out", str(folder.parent))
    assert done.returncode == 2 and "already exists" in done.stderr
