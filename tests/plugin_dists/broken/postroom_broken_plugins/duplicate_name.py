"""A plugin providing a resolver under a NAME a builtin already has (``customer``)."""

from __future__ import annotations

from postroom import ResolverContext, ResolverPlugin, hookimpl
from postroom.core.data.models import Ticket


class ShadowCustomer(ResolverPlugin):
    NAME = "customer"
    LABEL = "A second resolver called customer"

    def find_ticket(self, context: ResolverContext) -> Ticket | None:
        return None


@hookimpl
def postroom_register_resolvers() -> list[type[ResolverPlugin]]:
    return [ShadowCustomer]
