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


@pytest.fixture
def lab():
    made = Lab()
    try:
        yield made
    finally:
        made.close()
