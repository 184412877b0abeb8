"""``postroom demo``: the whole job on the embedded default, with its own sink for sent mail."""
