"""Project-wide pytest configuration.

Everything the suite needs (options, fixtures, hypothesis profiles, statuses, reports)
lives in the installed pytest plugin, :mod:`wddm_conformance.plugin`, so that the suite
runs the same here and from a driver team's repository. Nothing is configured here.
"""
