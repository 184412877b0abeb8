"""Write a new Alembic migration from the difference between the models and the newest revision.

    python scripts/new_migration.py "add a column for X"

It upgrades a scratch SQLite database to the newest revision, autogenerates the next one against
it, and writes timestamps as plain ``sa.DateTime`` (the models' UTCDateTime is a Python-side type).
Read the result before committing: autogenerate misses renames and server defaults.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from postroom.core.data.db import MIGRATIONS_DIR, upgrade_schema


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head() or "0000"
    next_id = f"{int(head) + 1:04d}" if head.isdigit() else None
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'scratch.sqlite'}")
        upgrade_schema(engine)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            script = command.revision(config, message=sys.argv[1], autogenerate=True, rev_id=next_id)
    paths = script if isinstance(script, list) else [script]
    for revision in paths:
        if revision is None:
            continue
        path = Path(revision.path)
        path.write_text(
            re.sub(r"postroom\.core\.models\.base\.UTCDateTime\(\)", "sa.DateTime()", path.read_text())
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
