"""formats.atomic: whole files appear by rename; FIFOs and character devices are written to in place."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from formats.atomic import atomic_path, is_stream_node, write_text_atomic


def test_a_regular_file_is_replaced_whole_and_no_temp_file_is_left(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "good" and sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_a_fifo_is_written_to_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_text_atomic(fifo, "hello\n")
    reader.join(timeout=10)
    assert got == ["hello\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode) and is_stream_node(fifo)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="making a device node needs root")
def test_a_character_device_is_written_to_not_replaced(tmp_path):
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null twin inside tmp_path
    write_text_atomic(node, "discarded")
    assert stat.S_ISCHR(os.stat(node).st_mode) and sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_a_folder_is_never_a_target(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a folder"), atomic_path(tmp_path):
        pass
