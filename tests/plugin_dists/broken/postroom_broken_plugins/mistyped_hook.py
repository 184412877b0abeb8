"""A plugin with a misspelt hook name: ``postroom_register_resolver`` (no "s")."""

from __future__ import annotations

from postroom import ResolverPlugin, hookimpl


@hookimpl
def postroom_register_resolver() -> list[type[ResolverPlugin]]:
    return []
