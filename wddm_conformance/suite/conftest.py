"""The suite's fixtures. pytest loads this file only where the suite is collected, so the
fixtures exist for the suite's checks and nowhere else; the options, statuses and reports
are the plugin's (:mod:`wddm_conformance.plugin`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..kernel import Kernel
from ..plugin import RUN, Run


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
