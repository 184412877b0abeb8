"""How a profile logs in to its outgoing server: the values of ``MediaProfile.outgoing_login``.

Apart from the models so that ``core/servers.py``, which the worker's standby uses to build its
connection settings, imports no SQLAlchemy (issue 18); ``models/profiles.py`` re-exports them.
"""

from __future__ import annotations

from enum import StrEnum


class OutgoingLogin(StrEnum):
    """How a profile logs in to its outgoing server (``MediaProfile.outgoing_login``, issue 17)."""

    #: The incoming server's login (the default, and what profiles did before issue 17).
    SAME = "same"
    #: The outgoing server's own user and password.
    PASSWORD = "password"
    #: An access token from ``postroom_get_access_token`` (asked with ``server="outgoing"``).
    TOKEN = "token"
    #: No login at all: a relay that takes mail without AUTH.
    NONE = "none"


#: The outgoing logins' names, the default first.
OUTGOING_LOGINS: tuple[str, ...] = tuple(login.value for login in OutgoingLogin)
