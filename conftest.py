"""Project-wide pytest configuration.

Everything the suite needs (options, statuses, reports) lives in the installed pytest
plugin, :mod:`wddm_conformance.plugin`, and the suite's own conftest, so that the suite
runs the same here and from a driver team's repository. The plugin leaves the global
hypothesis profile alone; this project's own tests opt in to the suite's profiles here.
"""

from pathlib import Path

import pytest
from hypothesis import settings

from wddm_conformance import profiles

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    """Load the suite's profile for the whole run (``HYPOTHESIS_PROFILE=ci|nightly|quick``;
    ``CI=true`` selects ``ci``; else the fast ``wddm-default``), unless hypothesis'
    ``--hypothesis-profile`` chose one. Only for runs rooted here: pytest also loads this
    file when it collects the suite of an editable install from another directory."""
    if config.rootpath.resolve() == HERE and not config.getoption("hypothesis_profile", None):
        profiles.register()
        settings.load_profile(profiles.from_environment())
