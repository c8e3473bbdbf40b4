"""Shared pytest setup: the collection importable as ansible_collections.wgfleet.wireguard."""
from __future__ import annotations

import os
import shutil
import sys

import pytest

from tests.helpers.netns import Lab
from tests.helpers.playbook import ensure_collection_path

pytest_plugins = ["tests.helpers.postgres", "tests.helpers.modules"]

sys.path.insert(0, str(ensure_collection_path()))


def _can_make_namespaces() -> bool:
    return os.geteuid() == 0 and shutil.which("wireguard-go") is not None and shutil.which("wg-quick") is not None


needs_lab = pytest.mark.skipif(not _can_make_namespaces(), reason="needs root, wireguard-go and wg-quick")


# `make test` (and so CI) sets WGFLEET_NO_SKIP: every skip, whatever raised it (a skipif mark such as needs_lab or
# needs_postgres, pytest.skip, importorskip), is reported as a failure, so a run cannot go green untested.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("WGFLEET_NO_SKIP") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which WGFLEET_NO_SKIP makes a failure: {reason}"


@pytest.fixture
def lab():
    made = Lab()
    try:
        yield made
    finally:
        made.close()
