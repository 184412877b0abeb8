"""A plugin whose import raises, as one with a missing dependency or a syntax slip does."""

raise RuntimeError("broken-import cannot be imported: its settings file is missing")
