"""A plugin whose registration hook raises."""

from __future__ import annotations

from postroom import ResolverPlugin, hookimpl


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    raise ValueError("broken-register could not build its resolvers")
