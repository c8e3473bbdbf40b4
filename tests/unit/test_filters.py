"""The collection's filters, as a playbook on the controller calls them."""
from __future__ import annotations

import subprocess

import pytest

from ansible_collections.wgfleet.wireguard.plugins.filter.public_key import public_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys


def test_public_key_matches_wg_pubkey():
    private = _keys.generate_private_key()
    expected = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout
    assert public_key(private) == expected.strip()


@pytest.mark.parametrize("bad", ["", "abc", "A" * 43 + "=\n", None, 5, ["x"], "a\x00b"])
def test_public_key_refuses_without_quoting(bad):
    with pytest.raises(Exception) as err:
        public_key(bad)
    assert str(err.value).startswith("public_key: ")
    if isinstance(bad, str) and bad:
        assert bad not in str(err.value)
