"""The builtin bounce readers (hook ``postroom_read_bounce``): the standard report, flufl.bounce, plain text."""
