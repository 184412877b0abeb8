"""Builtin protocols plugins."""
