"""The docs stay true to the tree: every file they name exists, every section the code cites is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", REPO / "bench" / "README.md", *(REPO / "docs").rglob("*.md")])
#: A path in backticks: `postroom/core/app.py`, `core/outbound/`, `docs/protocols.md`, `tests/plugin_dist/`.
_PATH = re.compile(r"`((?:[\w.-]+/)+[\w.-]*)`")
#: A citation in code or tests: docs/architecture.md, "Leases".
_CITATION = re.compile(r"(docs/[\w-]+\.md), \"([^\"]+)\"")


#: What the test command makes (.venv/, .test-data/): named by the docs, absent from a fresh clone.
_MADE = {line.strip() for line in (REPO / ".gitignore").read_text().splitlines() if line.strip()}


def _exists(reference: str) -> bool:
    """A repository path, or one below ``postroom/`` as the architecture page writes them (core/...)."""
    return reference in _MADE or any((base / reference).exists() for base in (REPO, REPO / "postroom"))


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(REPO)) for d in DOCS])
def test_every_path_a_doc_names_is_in_the_repository(doc: Path) -> None:
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.DOTALL)  # code blocks show other projects' files
    missing = [ref for ref in _PATH.findall(text) if "://" not in ref and not _exists(ref)]
    assert missing == [], f"{doc.name} names files the repository does not have"


def test_every_section_the_code_cites_is_in_its_doc() -> None:
    cited = {
        (doc, section, str(path.relative_to(REPO)))
        for path in [*REPO.glob("postroom/**/*.py"), *REPO.glob("tests/**/*.py")]
        if "build" not in path.parts
        for doc, section in _CITATION.findall(path.read_text())
    }
    assert cited, "the code cites no doc section: this test would prove nothing"
    missing = [(doc, section, where) for doc, section, where in cited if section not in (REPO / doc).read_text()]
    assert missing == []
