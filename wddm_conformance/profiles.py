"""Hypothesis profiles for the suite and the project's tests.

``default`` is fast, for local runs; ``ci`` has more examples and is derandomized so a CI
run repeats exactly; ``nightly`` is long. Select one with ``HYPOTHESIS_PROFILE=ci`` or
hypothesis' own ``--hypothesis-profile=ci``; with neither, ``CI=true`` selects ``ci``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

NAMES = ("default", "ci", "nightly", "quick")


def register() -> None:
    """Register the three profiles (idempotent)."""
    settings.register_profile("default", max_examples=25, deadline=None)
    settings.register_profile(
        "ci",
        max_examples=100,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    #: For running the whole suite many times (the kill matrix): few examples, repeatable.
    settings.register_profile(
        "quick",
        max_examples=5,
        deadline=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking
        suppress_health_check=list(HealthCheck),
    )
    settings.register_profile(
        "nightly",
        max_examples=5000,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


def from_environment() -> str:
    """The profile the environment asks for."""
    return os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "default")
