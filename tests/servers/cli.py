"""Running the ``postroom`` command line in tests: in-process (fast) or as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from postroom.cli import cli


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


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

    def run_process(self, *args: str, input: str | None = None, timeout: float = 120) -> CliResult:
        env = {**os.environ, "POSTROOM_DATABASE_URL": self.database_url}
        completed = subprocess.run(
            [sys.executable, "-m", "postroom", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def postroom_cli(database_url: str) -> Cli:
    return Cli(database_url)
