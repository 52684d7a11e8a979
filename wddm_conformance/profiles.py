"""Hypothesis profiles for the conformance suite's checks, and only for them.

``wddm-default`` is fast, for local runs; ``ci`` is hypothesis' own built-in profile
(100 examples, derandomized, so a CI run repeats exactly); ``nightly`` is long;
``quick`` (5 examples, no shrinking) is for running the whole suite many times (the
kill matrix).

The suite's profile is chosen, in order, by hypothesis' ``--hypothesis-profile=NAME``
(which hypothesis loads for the whole run), by ``HYPOTHESIS_PROFILE=NAME``, by
``CI`` being set (``ci``), else ``wddm-default``. Only the last three leave the global
profile alone: the suite's checks build their settings on the chosen profile with
:func:`suite_settings`, so installing the harness never changes another project's
hypothesis settings. The project's own tests opt in from its ``conftest.py``.

Whatever the profile, the suite's checks leave out hypothesis' ``explain`` phase unless
``--hypothesis-explain`` is given: once an example fails it traces every line of every
later example and keeps each example's trace until the check ends, which made a suite
run on a failing driver take three times as long and four times the memory (the
falsifying example, its notes and the ``@reproduce_failure`` blob do not need it).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import InvalidArgument

DEFAULT = "wddm-default"
NAMES = (DEFAULT, "ci", "nightly", "quick")

#: The profile the suite's checks use: set by :func:`select`, else from the environment.
_selected: str | None = None
#: Whether the selected profile is the one hypothesis loaded globally (--hypothesis-profile).
_global = False
#: Whether the suite's checks run hypothesis' explain phase (``--hypothesis-explain``).
_explain = False


def _ours() -> dict[str, settings]:
    return {
        DEFAULT: settings(max_examples=25, deadline=None),
        "quick": settings(
            max_examples=5,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking
            suppress_health_check=list(HealthCheck),
        ),
        "nightly": settings(
            max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    }


def _registered(name: str) -> bool:
    try:
        settings.get_profile(name)
    except InvalidArgument:
        return False
    return True


def register() -> None:
    """Register ``wddm-default``, ``quick`` and ``nightly`` where no profile of that name is
    registered yet (idempotent; never replaces another project's profile, never loads one).
    ``ci`` is hypothesis' built-in."""
    for name, profile in _ours().items():
        if not _registered(name):
            settings.register_profile(name, profile)


def from_environment() -> str:
    """The profile the environment asks for: ``$HYPOTHESIS_PROFILE``, else ``ci`` when
    ``$CI`` is set, else ``wddm-default``."""
    return os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else DEFAULT)


def select(given: str | None) -> str:
    """Choose the suite's profile: ``given`` (hypothesis' ``--hypothesis-profile``, already
    loaded globally by hypothesis), else :func:`from_environment`. Returns the name;
    InvalidArgument if no profile of that name is registered."""
    global _selected, _global
    register()
    name = given or from_environment()
    settings.get_profile(name)  # unknown -> InvalidArgument naming the registered ones
    _selected, _global = name, bool(given)
    return name


def selected() -> str:
    """The name of the suite's profile."""
    return _selected or from_environment()


def explain(on: bool) -> None:
    """Whether the suite's checks run hypothesis' explain phase (the suite's
    ``conftest.py`` passes ``--hypothesis-explain``); off until then."""
    global _explain
    _explain = on


def suite_settings(**overrides: Any) -> settings:
    """Settings for a suite check: the suite's profile, without the explain phase unless
    :func:`explain` turned it on, plus ``overrides`` (hypothesis' keyword arguments).
    The global verbosity (``--hypothesis-verbosity``) is kept."""
    register()
    loaded = settings()  # the global profile, with any --hypothesis-verbosity
    if _global:  # hypothesis loaded the suite's profile globally
        parent = loaded
    else:
        parent = settings(settings.get_profile(selected()), verbosity=loaded.verbosity)
    if not _explain:
        parent = settings(parent, phases=[p for p in parent.phases if p is not Phase.explain])
    return settings(parent, **overrides)
