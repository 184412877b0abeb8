"""The data folder (``$POSTROOM_HOME``): where the SQLite file, the secret key and the Maildirs of the demo live.

A module of its own, importing nothing but the standard library, because the worker's standby
(``core/worker/standby.py``) reads the secret key from here and must not load the database stack
that ``core/data/db.py`` carries (issue 18).
"""

from __future__ import annotations

import os
from pathlib import Path

from postroom.core.contract.errors import UserError

HOME_ENV = "POSTROOM_HOME"


def data_dir() -> Path:
    """``$POSTROOM_HOME``, else ``~/.local/share/postroom``; created on first use."""
    configured = os.environ.get(HOME_ENV)
    path = Path(configured).expanduser() if configured else Path.home() / ".local" / "share" / "postroom"
    named = f"${HOME_ENV} ({path})" if configured else f"The data folder {path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = "it is a file, not a folder" if path.is_file() else error.strerror or str(error)
        raise UserError(
            f"{named} cannot be used as postroom's data folder: {reason}; "
            f"set ${HOME_ENV} to a folder postroom may write in."
        ) from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{named} is not writable; set ${HOME_ENV} to a folder postroom may write in.")
    return path
