"""Per-server keys: derived from the fleet's master key by HKDF-SHA256, one per server id and generation."""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import (
    SERVER_KEY_INFO,
    SERVER_KEY_SALT,
    derive_server_key,
    generate_key,
)

MASTER = generate_key()


def _reference(master: str, server_id: str, generation: int) -> str:
    # cryptography's own HKDF, independent of the stdlib construction under test.
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=SERVER_KEY_SALT,
                info=SERVER_KEY_INFO + str(generation).encode() + b"\0" + server_id.encode())
    return base64.b64encode(hkdf.derive(base64.b64decode(master))).decode()


@pytest.mark.parametrize("server_id", ["srv1", "vpn-eu-1.example.org", "ü" * 80])
@pytest.mark.parametrize("generation", [1, 2, 999])
def test_matches_rfc5869_hkdf(server_id, generation):
    assert derive_server_key(MASTER, server_id, generation) == _reference(MASTER, server_id, generation)


def test_each_server_and_generation_has_its_own_key():
    keys = {derive_server_key(MASTER, s, g) for s in ("srv1", "srv2", "srv10") for g in (1, 2)}
    assert len(keys) == 6
    assert MASTER not in keys


@pytest.mark.parametrize("server_id", ["", " srv1", "a\nb", "a\rb", "a\x00b", "a\u2028b", "x" * 256, None, 5])
def test_bad_server_id_is_refused_by_name_without_the_key(server_id):
    with pytest.raises(Exception) as err:
        derive_server_key(MASTER, server_id)
    assert "server_id" in str(err.value)
    assert MASTER not in str(err.value)


@pytest.mark.parametrize("generation", [0, -1, True, 1.5, "1", 10**7])
def test_bad_generation_is_refused_by_name(generation):
    with pytest.raises(Exception, match="generation"):
        derive_server_key(MASTER, "srv1", generation)


@pytest.mark.parametrize("master", ["", "short", MASTER[:-4], None, MASTER + "\n" + MASTER],
                         ids=["empty", "short", "cut", "none", "two-lines"])
def test_bad_master_is_refused_without_quoting_it(master):
    with pytest.raises(Exception) as err:
        derive_server_key(master, "srv1")
    assert "encryption_key" in str(err.value)
    if master:
        assert master not in str(err.value)
