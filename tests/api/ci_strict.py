"""pytest plugin: with CI=true a skipped test is a failed test.

A check that skips on the machine that matters is not a check (issue 22):
`make deps` installs everything the suite needs, so in CI (`.ci/run` sets
CI=true) a skip means something is missing and must fail the build. Outside
CI a skip stays a skip, with its reason in `pytest -rs`. conftest.py loads
this plugin; test_cli.py proves it on a throwaway test file.
"""

from __future__ import annotations

import os

import pytest


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if _ci() and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped, and CI=true makes a skip a failure: {reason}"
