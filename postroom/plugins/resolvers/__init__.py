"""Builtin resolvers plugins."""
