"""EWS tests run against the loopback Exchange stand-in.

The fixture is imported rather than named in ``pytest_plugins``: pytest refuses ``pytest_plugins``
outside the top-level conftest when the whole suite runs. Once tests/conftest.py lists
``tests.servers.ews_responder``, this import can go.
"""

from tests.servers.ews_responder import ews_server

__all__ = ["ews_server"]
