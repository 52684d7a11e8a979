"""Project-wide pytest configuration.

Everything the suite needs (options, fixtures, statuses, reports) lives in the installed
pytest plugin, :mod:`wddm_conformance.plugin`, and the suite's own conftest, so that the
suite runs the same here and from a driver team's repository. The plugin leaves the
global hypothesis profile alone; this project's own tests opt in to the suite's profiles
here (``HYPOTHESIS_PROFILE=ci|nightly|quick``, ``CI=true`` selects ``ci``, else the fast
``wddm-default``; hypothesis' ``--hypothesis-profile`` still wins).
"""

from hypothesis import settings

from wddm_conformance import profiles

profiles.register()
settings.load_profile(profiles.from_environment())
