"""flufl.bounce's own test data: real bounces from many MTAs with the failed addresses its tests expect.

The sdist (not the wheel) carries them; the fixture downloads it once into ``.test-data/`` with pip.
Under pytest-xdist each worker asks for it: a lock file makes the first download and unpack it while the
others wait, so none reads a half-unpacked folder or unpacks over another.
"""

from __future__ import annotations

import ast
import fcntl
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest

CACHE = Path(__file__).resolve().parents[2] / ".test-data"


@dataclass(frozen=True)
class KnownBounce:
    path: Path
    permanent: tuple[str, ...]


def _unpacked_sdist() -> Path:
    CACHE.mkdir(exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return _download_and_unpack()


def _download_and_unpack() -> Path:
    version = metadata.version("flufl.bounce")
    target = CACHE / f"flufl_bounce-{version}"
    if (target / "tests" / "data").is_dir():
        return target
    # "--no-binary flufl.bounce", not ":all:": pip prepares the sdist's metadata in a build environment,
    # and ":all:" would build hatchling and its dependencies there from source too (half a minute of CPU).
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", "flufl.bounce",
         f"flufl.bounce=={version}", "-d", str(CACHE)],
        check=True,
    )
    archive = next(CACHE.glob(f"flufl_bounce-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(CACHE, filter="data")
        else:
            # Python before 3.11.4 (Debian 12's 3.11.2) has no extraction filters: take only plain
            # files and folders that stay inside the cache, as the "data" filter would.
            safe = [
                member
                for member in tar.getmembers()
                if (member.isfile() or member.isdir())
                and not Path(member.name).is_absolute()
                and ".." not in Path(member.name).parts
            ]
            tar.extractall(CACHE, members=safe)
    return target


def known_permanent_bounces(root: Path) -> list[KnownBounce]:
    """The (file, permanent failures) rows of flufl.bounce's detector table, read with ast, not imported."""
    source = (root / "tests" / "test_detectors.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "DETECTORS" for t in node.targets):
            rows = ast.literal_eval(node.value)
            break
    else:  # pragma: no cover - the table moved upstream
        raise RuntimeError("flufl.bounce's test table DETECTORS was not found")
    found: dict[str, KnownBounce] = {}
    for _module, filename, expected, temporary in rows:
        if temporary or not expected or filename in found:
            continue
        addresses = tuple(a.decode().lower() for a in expected)
        found[filename] = KnownBounce(root / "tests" / "data" / filename, addresses)
    return list(found.values())


@pytest.fixture(scope="session")
def flufl_bounces() -> list[KnownBounce]:
    return known_permanent_bounces(_unpacked_sdist())
