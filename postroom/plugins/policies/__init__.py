"""Builtin policies plugins."""
