"""Keys for tests, made by the collection's own key code."""
from __future__ import annotations

from tests.helpers.playbook import ensure_collection_path

ensure_collection_path()

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys  # noqa: E402


def new_key() -> str:
    """A fresh public key (its private half is thrown away)."""
    return _keys.public_key(_keys.generate_private_key())
