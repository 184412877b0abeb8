"""The README's first command, pasted as written into a fresh clone, on a stock machine's PATH.

A newcomer on Debian or Ubuntu has the distribution's python3, which refuses ``pip install`` into
itself (PEP 668); the command must make its own environment and run the demo there. The test
clones the repository's committed state, so it checks what a newcomer would get.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: What a stock Debian or Ubuntu root shell has on PATH: the distribution's python3, no pyenv.
STOCK_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def the_two_commands() -> tuple[str, str]:
    """The README's two commands, as a newcomer pastes them (without their comments)."""
    section = (REPO / "README.md").read_text().split("## The two commands", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    demo, tests = (line.split("#", 1)[0].strip() for line in block.strip().splitlines())
    return demo, tests


def test_the_readme_names_the_demo_script_and_the_test_command_that_ci_runs() -> None:
    demo, tests = the_two_commands()
    assert demo == "./postroom-demo"
    assert tests == "./run-tests"
    assert "./run-tests" in (REPO / ".ci" / "run").read_text()


def test_the_readmes_demo_line_prints_the_demos_tickets_from_a_fresh_clone_with_the_stock_python3(
    tmp_path: Path,
) -> None:
    demo, _ = the_two_commands()
    clone, home = tmp_path / "clone", tmp_path / "newcomer"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    stock = {"PATH": STOCK_PATH, "HOME": str(home), "LANG": "C.UTF-8"}
    assert subprocess.run(
        ["bash", "-c", "command -v python3"], env=stock, capture_output=True, text=True, check=True
    ).stdout.strip() in {"/usr/bin/python3", "/bin/python3"}, "the stock PATH must find the distribution's python3"

    done = subprocess.run(
        ["bash", "-c", demo], cwd=clone, env=stock, capture_output=True, text=True, timeout=900
    )

    assert done.returncode == 0, done.stderr[-2000:]
    assert "externally-managed-environment" not in done.stderr
    tickets = done.stdout.split("\nTickets\n", 1)[1]
    assert "Where is my order #1001?" in tickets and "Warranty claim" in tickets
    assert "Send log (s_message_send_info)" in done.stdout
    # It says how to use postroom afterwards, by a path that works without activating anything.
    explore = done.stdout.strip().splitlines()[-1]
    assert f"{clone}/.venv/bin/postroom ticket show 1" in explore
