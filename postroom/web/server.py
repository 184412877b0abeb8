"""Serving the console with waitress: a pure-Python production WSGI server (a pool of threads, no C
build, the same on every platform, no fork), which is all a console for a handful of operators needs."""

from __future__ import annotations

from typing import Any

from flask import Flask
from waitress.server import create_server

#: Request threads: enough for a team of operators and agents; the database pool has as many.
THREADS = 8


def make_server(app: Flask, host: str, port: int) -> Any:
    """A waitress server bound to ``host:port`` (0: any free port, see ``server.effective_port``);
    ``run()`` serves until ``close()``."""
    return create_server(app, host=host, port=port, threads=THREADS, ident="postroom")
