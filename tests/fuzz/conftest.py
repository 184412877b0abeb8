"""Hypothesis profiles of the fuzz tests: few, fixed examples in the normal suite; many with POSTROOM_FUZZ=long.

The normal profile is derandomised, so a CI run tries the same examples every time and a failure
reproduces; the long one draws new examples on every run (``POSTROOM_FUZZ=long ./run-tests tests/fuzz``).
No example database is written: every input that ever failed is kept in the tests as an ``@example``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # a shared 2-core machine makes per-example timings meaningless
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}
settings.register_profile("postroom-normal", max_examples=40, derandomize=True, **_COMMON)
settings.register_profile("postroom-long", max_examples=20_000, **_COMMON)
settings.load_profile("postroom-long" if os.environ.get("POSTROOM_FUZZ") == "long" else "postroom-normal")
