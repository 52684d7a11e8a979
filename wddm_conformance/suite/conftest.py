"""The suite's fixtures. pytest loads this file only where the suite is collected, so the
fixtures exist for the suite's checks and nowhere else; the options, statuses and reports
are the plugin's (:mod:`wddm_conformance.plugin`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .. import profiles
from ..kernel import Kernel
from ..plugin import RUN
from ..release import release_last
from ..run import Run


def pytest_configure(config: pytest.Config) -> None:
    """Hypothesis' explain phase only when ``--hypothesis-explain`` asks for it
    (:mod:`wddm_conformance.profiles`). Runs before the suite's modules are imported."""
    profiles.explain(bool(config.getoption("hypothesis_explain", False)))


@pytest.fixture
def wddm_run(request: pytest.FixtureRequest) -> Run:
    """The run: driver spec, kernel mode, seed, timeout."""
    return request.config.stash[RUN]


@pytest.fixture
def make_kernel(wddm_run: Run) -> Callable[..., Kernel]:
    """``make_kernel(mode=None, **KernelConfig fields)``: a fresh kernel for the driver under test."""
    return wddm_run.kernel


@pytest.fixture
def kernel(wddm_run: Run) -> Kernel:
    """A fresh simulated kernel (the run's mode) with the driver under test started."""
    return wddm_run.kernel()


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """A check that has ended keeps no kernel alive: its failing examples' frames and the
    failure pytest keeps in ``sys.last_value`` are released (after the report and any
    ``--pdb`` session, which come before teardown)."""
    release_last()
