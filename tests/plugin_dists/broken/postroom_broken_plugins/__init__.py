"""Deliberately broken postroom plugins for postroom's own tests (tests/foundation/test_plugin_isolation.py).

Each module is its own entry point and breaks in one way; postroom must leave each out alone,
list it as failed, and keep every other plugin and command working.
"""
