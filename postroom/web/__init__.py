"""The operator's console, ``postroom web`` (issue 13): server-rendered pages for operators and agents.

Imported only by the ``postroom web`` command (and its tests): the worker and the core never import it
(an import-linter contract in pyproject.toml). This ``__init__`` imports nothing, so that
``postroom web user ...`` can use :mod:`postroom.web.users` without loading Flask.
"""
