"""Inbound: the fetch cycle, storing, filtering, routing, resolving, bounces and quarantine."""
