"""The zygote fixture: run ``python -m`` entry points that import torch without paying for the import each time
(see ``tests/hardening/zygote.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


class Zygote:
    """Client of a ``zygote.py`` process: ``run(argv, cwd)`` behaves like ``subprocess.run([python, "-m", *argv])``."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "hardening" / "zygote.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert self.process.stdout.readline().strip() == "ready"

    def run(
        self, argv: list[str], cwd: Path, env: dict | None = None, timeout: float = 120, fsize: int | None = None
    ) -> subprocess.CompletedProcess:
        env = env if env is not None else {**os.environ, "PYTHONPATH": str(REPO)}
        request = {"argv": argv, "cwd": str(cwd), "env": env, "timeout": timeout, "fsize": fsize}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = json.loads(self.process.stdout.readline())
        return subprocess.CompletedProcess(argv, reply["returncode"], reply["stdout"], reply["stderr"])

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def zygote():
    helper = Zygote()
    yield helper
    helper.close()
