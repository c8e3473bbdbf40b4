"""The store's digest format, pure: what a save compares and what a load proves (no database)."""
from __future__ import annotations

import hashlib

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _store_codec
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.helpers.keys import new_key

CIPHER = KeyCipher.from_base64(generate_key())


def state(*peers) -> dict:
    return {"wg0": Interface(private_key=KEY, listen_port=51820,
                             address=("10.80.0.1/24",), peers=peers)}


KEY = _keys.generate_private_key()
P1 = Peer(public_key=new_key(), allowed_ips=("10.80.0.2/32",), name="a")
P2 = Peer(public_key=new_key(), allowed_ips=("10.80.0.3/32",), preshared_key=_keys.generate_private_key())


def test_interface_digest_covers_every_part_and_the_order():
    base = _store_codec.digest_state(CIPHER, "srv", state(P1, P2))["wg0"]
    assert _store_codec.digest_state(CIPHER, "srv", state(P1, P2))["wg0"].state == base.state
    for other in (state(P2, P1), state(P1), state(P1, P2.replace(persistent_keepalive=5)),
                  state(P1.replace(name="b"), P2), {"wg0": state(P1, P2)["wg0"].replace(mtu=1400)},
                  {"wg0": state(P1, P2)["wg0"].replace(private_key=_keys.generate_private_key())}):
        assert _store_codec.digest_state(CIPHER, "srv", other)["wg0"].state != base.state
    assert _store_codec.digest_state(CIPHER, "srv2", state(P1, P2))["wg0"].state != base.state
    assert _store_codec.digest_state(None, "srv", state(P1, P2))["wg0"].state != base.state


def test_row_digests_carry_their_format_and_format_1_still_compares():
    data = _store_codec._peer_digest_input("srv", "wg0", P1, 1)
    v1 = CIPHER.digest(data)
    v2 = _store_codec._stored(CIPHER, _store_codec._peer_digest_input("srv", "wg0", P1))
    assert (_store_codec.stored_format(v1), _store_codec.stored_format(v2), _store_codec.stored_format(b"\x07" * 33)) == (1, 2, 0)
    for stored in (v1, v2):
        assert _store_codec._same_row(CIPHER, stored, lambda f: _store_codec._peer_digest_input("srv", "wg0", P1, f))
        assert not _store_codec._same_row(CIPHER, stored, lambda f: _store_codec._peer_digest_input("srv", "wg0", P2, f))
    # Format 1 without a key was plain SHA-256 of the same input.
    assert _store_codec._same_row(None, hashlib.sha256(data).digest(),
                                  lambda f: _store_codec._peer_digest_input("srv", "wg0", P1, f))


def test_the_seal_binds_id_server_and_key():
    digests = {"wg0": "ab" * 32}
    seal = _store_codec.snapshot_seal(CIPHER, "srv", 7, CIPHER.key_id, digests)
    assert seal == _store_codec.snapshot_seal(CIPHER, "srv", 7, CIPHER.key_id, dict(digests))
    for other in (_store_codec.snapshot_seal(CIPHER, "srv", 8, CIPHER.key_id, digests),
                  _store_codec.snapshot_seal(CIPHER, "srv2", 7, CIPHER.key_id, digests),
                  _store_codec.snapshot_seal(CIPHER, "srv", 7, None, digests),
                  _store_codec.snapshot_seal(CIPHER, "srv", 7, CIPHER.key_id, {"wg0": "cd" * 32}),
                  _store_codec.snapshot_seal(KeyCipher.from_base64(generate_key()), "srv", 7, CIPHER.key_id, digests)):
        assert other != seal
