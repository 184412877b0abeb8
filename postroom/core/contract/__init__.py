"""What a plugin sees: the hook specs, the base classes of the plugin kinds, every type they pass, the signals.

Nothing here imports postroom's implementation (only the data models, for their types)."""
