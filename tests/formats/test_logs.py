"""formats.logs: quieting a library is scoped (the root logger's level, handlers and filters are as before
afterwards) and drops what the library logs through the root logger; the CLI setup leaves the root alone."""

from __future__ import annotations

import logging
import subprocess
import sys

from formats.logs import PACKAGES, configure_cli_logging, quiet_logs
from tests.conftest import REPO


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_quiet_logs_is_scoped_and_catches_root_level_calls_from_the_package():
    import onnxruntime.quantization.quant_utils as from_ort  # a module of the package, logging through the root

    root, keep = logging.getLogger(), _Keep()
    before = (root.level, list(root.filters))
    root.addHandler(keep)
    try:
        with quiet_logs("onnxruntime"):
            logging.getLogger("onnxruntime.quantization").warning("named: dropped")
            record = logging.LogRecord("root", logging.WARNING, from_ort.__file__, 1, "root-level: dropped", (), None)
            root.handle(record)
            logging.getLogger("elsewhere").warning("another library: kept")
            logging.getLogger("onnxruntime.x").error("an error: kept")
        logging.getLogger("onnxruntime.quantization").warning("after the block: kept")
    finally:
        root.removeHandler(keep)
    assert [r.getMessage() for r in keep.records] == [
        "another library: kept",
        "an error: kept",
        "after the block: kept",
    ]
    assert (root.level, list(root.filters)) == before
    assert logging.getLogger("onnxruntime").level == logging.NOTSET


def test_cli_logging_leaves_the_root_logger_alone():
    code = (
        "import logging, sys; root = logging.getLogger(); before = (root.level, list(root.handlers));"
        "from formats.logs import configure_cli_logging; configure_cli_logging(); configure_cli_logging();"
        "logging.getLogger('train.loop').info('one line');"
        "assert (root.level, list(root.handlers)) == before;"
        "assert len(logging.getLogger('train').handlers) == 1"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "one line\n"  # bare message, once, on stderr; nothing on stdout
    assert done.stdout == ""


def test_log_level_from_the_environment(monkeypatch):
    monkeypatch.setenv("EDGE_LOG_LEVEL", "WARNING")
    configure_cli_logging()
    assert all(logging.getLogger(p).level == logging.WARNING for p in PACKAGES)
    monkeypatch.setenv("EDGE_LOG_LEVEL", "nonsense")  # a typo is the default, not a crash
    configure_cli_logging()
    assert logging.getLogger("runtime").level == logging.INFO
