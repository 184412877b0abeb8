"""``python -m postroom``: the same as the ``postroom`` command."""

from postroom.console import main

main()
