"""Project-wide pytest configuration: hypothesis profiles.

Profiles: ``default`` (fast, for local runs), ``ci`` (more examples, no deadline,
derandomized so CI is repeatable) and ``nightly`` (long). Select one with
``HYPOTHESIS_PROFILE=ci`` or pytest's ``--hypothesis-profile=ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("default", max_examples=50, deadline=None)
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "nightly", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
)
