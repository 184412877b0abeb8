"""What the tests share besides the servers they run against (those are in ``tests.servers``).

``cli``: the ``postroom`` command line, in-process or as a real process with a deadline (the suite's
one subprocess runner); ``mail``: the one mail builder; ``corpora``: CPython's test mails, read in place; ``desk``: the contact centre harness and
profiles on the test Dovecot.
"""
