"""The EWS stand-in for the inbound tests.

Imported rather than named in ``pytest_plugins`` (pytest allows that only in the top-level
conftest), as tests/ews does; once tests/conftest.py lists ``tests.servers.ews_responder``,
this import can go.
"""

from tests.servers.ews_responder import ews_server

__all__ = ["ews_server"]
