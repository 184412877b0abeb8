"""The plugin author's guide (docs/plugins/) stays true: its example distributions are the installed ones,
the code it prints is theirs, and every Python example on its pages runs (issue 12, must show 4).

The examples' own tests (``examples/*/tests``, using ``postroom.testing``) are collected by the suite as
well (``testpaths`` in pyproject.toml); this module checks that what they exercise is what the docs show.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import types
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import pytest

from postroom.core.data.models import MediaProfile
from tests.support.cli import Cli

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "plugins"
#: Distribution → (plugin name, module, what it provides), as pyproject.toml of each example says.
EXAMPLES = {
    "postroom-order-number": ("order-number", "postroom_order_number", ["order-number"]),
    "postroom-mbox": ("mbox", "postroom_mbox", ["mbox"]),
    "postroom-patient-retry": ("patient-retry", "postroom_patient_retry", ["patient retry"]),
    "postroom-vip": ("vip", "postroom_vip", []),
}
_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


def python_blocks() -> list[tuple[str, str]]:
    return [
        (page.name, block)
        for page in sorted(GUIDE.glob("*.md"))
        for block in _BLOCK.findall(page.read_text())
    ]


@pytest.mark.parametrize("distribution", sorted(EXAMPLES))
def test_each_example_is_installed_from_this_tree_and_its_tests_are_collected(distribution: str) -> None:
    plugin, module_name, _provides = EXAMPLES[distribution]
    folder = REPO / "examples" / distribution
    [entry_point] = [ep for ep in metadata.distribution(distribution).entry_points if ep.group == "postroom"]
    assert (entry_point.name, entry_point.value) == (plugin, module_name)
    module = importlib.import_module(module_name)
    assert inspect.getsource(module) == (folder / f"{module_name}.py").read_text(), (
        f"the installed {distribution} is not this tree's: run ./run-tests (it reinstalls the examples)"
    )
    assert list((folder / "tests").glob("test_*.py")), f"{distribution} has no tests"
    assert "examples" in (REPO / "pyproject.toml").read_text().split("testpaths")[1].splitlines()[0]
    assert f"./examples/{distribution}" in (REPO / "run-tests").read_text()


def test_plugins_list_shows_every_example_enabled_with_what_it_provides(postroom_cli: Cli) -> None:
    listed = {p["name"]: p for p in postroom_cli.ok("plugins", "list", "--json").json()}
    for distribution, (plugin, _module, provides) in EXAMPLES.items():
        assert listed[plugin]["source"] == f"{distribution} 1.0.0"
        assert (listed[plugin]["enabled"], listed[plugin]["provides"]) == (True, provides)


def test_every_example_is_on_a_page_of_the_guide_and_every_page_is_in_its_index() -> None:
    pages = {page.name: page.read_text() for page in GUIDE.glob("*.md")}
    index = pages.pop("README.md")
    for distribution in EXAMPLES:
        assert f"examples/{distribution}/" in index
        assert any(f"examples/{distribution}/" in text for text in pages.values())
    written_here = {"resolvers.md", "protocols.md", "retry-policies.md", "inbound.md", "compose.md"}
    written_here |= {"commands.md", "access-tokens.md", "testing.md"}
    assert written_here <= set(pages)
    assert all(f"]({name})" in index for name in written_here)


@pytest.mark.parametrize(("page", "block"), python_blocks(), ids=[p for p, _ in python_blocks()])
def test_code_a_page_quotes_from_an_example_is_that_examples_code(page: str, block: str) -> None:
    first, _, rest = block.partition("\n")
    match = re.fullmatch(r"# (from )?(examples/[\w./-]+)", first)
    if match is None:
        compile(block, page, "exec")  # a standalone example: at least valid Python
        return
    source = (REPO / match.group(2)).read_text()
    if match.group(1):
        assert rest.strip() in source, f"{page} quotes {match.group(2)} out of date"
    else:
        assert rest == source, f"{page} prints {match.group(2)} out of date"


def test_the_access_token_example_hands_out_the_token_of_its_file_and_rereads_it_when_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [block] = [b for p, b in python_blocks() if p == "access-tokens.md"]
    module = types.ModuleType("postroom_token_file")
    exec(compile(block, "access-tokens.md", "exec"), module.__dict__)
    monkeypatch.setenv("POSTROOM_TOKEN_DIR", str(tmp_path))
    token = tmp_path / "m365.token"
    token.write_text("first-token\n")
    hook = module.postroom_get_access_token
    assert hook(MediaProfile(name="m365")) == "first-token"
    assert hook(MediaProfile(name="other")) is None
    token.write_text("second-token\n")
    later = datetime(2031, 1, 1, tzinfo=UTC).timestamp()
    os.utime(token, (later, later))
    assert hook(MediaProfile(name="m365")) == "second-token"
