"""Running the ``postroom`` command line in tests: in-process (fast), or as a real process with a
deadline (:class:`PostroomProcess`, the one way the suite starts ``python -m postroom``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Any

import pytest
from click.testing import CliRunner

from postroom.cli import cli

#: Seconds a ``postroom`` process may run unless its test says otherwise.
DEFAULT_TIMEOUT = 120.0

#: Where a process's standard stream goes: ``subprocess.PIPE``/``DEVNULL``/``STDOUT``, a file or a descriptor.
Stream = int | IO[Any]


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class PostroomProcess(subprocess.Popen[str]):
    """``python -m postroom ARGS`` against one database, started at once and given ``timeout`` seconds.

    ``communicate()`` and ``wait()`` without a timeout of their own wait until that deadline at most;
    when any wait runs out, the process is killed (SIGKILL) and reaped and ``subprocess.TimeoutExpired``
    fails the test, so a hung ``postroom`` never outlives its test.
    """

    def __init__(
        self,
        database_url: str,
        *args: str,
        timeout: float = DEFAULT_TIMEOUT,
        stdin: Stream = subprocess.DEVNULL,
        stdout: Stream = subprocess.PIPE,
        stderr: Stream = subprocess.PIPE,
    ) -> None:
        self.deadline: float | None = time.monotonic() + timeout
        super().__init__(
            [sys.executable, "-m", "postroom", *args],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "POSTROOM_DATABASE_URL": database_url},
            text=True,
        )

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        try:
            return super().communicate(input, self._time_left(timeout))
        except subprocess.TimeoutExpired:
            self._kill_and_reap()
            raise

    def wait(self, timeout: float | None = None) -> int:
        try:
            return super().wait(self._time_left(timeout))
        except subprocess.TimeoutExpired:
            self._kill_and_reap()
            raise

    def finish(self, input: str | None = None) -> CliResult:
        """Wait for the end (``input`` on standard input); what it printed and its exit code."""
        stdout, stderr = self.communicate(input)
        return CliResult(self.returncode, stdout or "", stderr or "")

    def _time_left(self, timeout: float | None) -> float | None:
        if timeout is not None or self.deadline is None:
            return timeout
        return max(0.0, self.deadline - time.monotonic())

    def _kill_and_reap(self) -> None:
        self.deadline = None  # the waits below (and Popen's own, inside them) wait for the end
        self.kill()
        super().communicate()


class Cli:
    """``postroom`` against one database; ``run`` is in-process, ``run_process`` a real subprocess."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url

    def run(self, *args: str, input: str | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(
            cli, [*args, "--database-url", self.database_url], input=input, catch_exceptions=False
        )
        return CliResult(result.exit_code, result.stdout, result.stderr)

    def ok(self, *args: str, input: str | None = None) -> CliResult:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, f"postroom {' '.join(args)} failed: {result.stderr or result.stdout}"
        return result

    def run_process(
        self, *args: str, input: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> CliResult:
        """``postroom ARGS`` as a real process, run to its end (see :class:`PostroomProcess` for the timeout)."""
        stdin = subprocess.DEVNULL if input is None else subprocess.PIPE
        return PostroomProcess(self.database_url, *args, timeout=timeout, stdin=stdin).finish(input)


@pytest.fixture
def postroom_cli(database_url: str) -> Cli:
    return Cli(database_url)
