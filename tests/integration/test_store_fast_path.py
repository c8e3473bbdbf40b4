"""A restore's fast path against a real PostgreSQL: rows proved by the snapshot's seal are built without the
model's constructor, and must come out exactly as the validating constructor makes them; a row altered by
SQL must still be refused, naming the peer."""
from __future__ import annotations

import base64
import datetime
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _store_rows
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._rekey import rekey_server
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer

CIPHER = KeyCipher.from_base64(generate_key())
SERVER_KEY = base64.b64encode(bytes(range(32))).decode()
# Everything COPY's text format writes with a backslash (such a name takes the general path).
COPY_ESCAPED = "\\\b\f\n\r\t\v"


@pytest.fixture
def store(pg_server, pg_db):
    s = Store(pg_server.params(pg_db), CIPHER)
    s.migrate()
    yield s
    s.close()


keys = st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode())
ipv4_net = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(
    lambda t: f"{t[0] >> 24}.{t[0] >> 16 & 255}.{t[0] >> 8 & 255}.{t[0] & 255}/{t[1]}")
ipv6_net = st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)).map(
    lambda t: f"{':'.join(f'{t[0] >> s & 0xFFFF:x}' for s in range(112, -1, -16))}/{t[1]}")
endpoints = st.one_of(
    st.none(),
    st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 65535)).map(
        lambda t: f"{t[0] >> 24}.{t[0] >> 16 & 255}.{t[0] >> 8 & 255}.{t[0] & 255}:{t[1]}"),
    st.tuples(st.integers(0, 2**128 - 1), st.integers(1, 65535)).map(
        lambda t: f"[{':'.join(f'{t[0] >> s & 0xFFFF:x}' for s in range(112, -1, -16))}]:{t[1]}"),
    st.sampled_from(["[fe80::1%eth0]:51820", "VPN.Example.org:443", "host-1.example:1", "[::ffff:10.0.0.1]:9"]),
)
# Odd characters on purpose: backslashes and COPY's escapes, quotes, braces, commas, '#', non-ASCII, spaces.
names = st.one_of(st.none(), st.text(st.sampled_from([*"aZ09 -_#,{}\"'\\\t\b\x7fé€ß日\u200b", "\U0001f600"]),
                                     max_size=40))
raw_peers = st.fixed_dictionaries({
    "public_key": keys,
    "allowed_ips": st.lists(st.one_of(ipv4_net, ipv6_net), max_size=4),
    "endpoint": endpoints,
    "preshared_key": st.one_of(st.none(), keys),
    "persistent_keepalive": st.one_of(st.integers(0, 65535), st.sampled_from(["25", None, "off"])),
    "name": names,
    # Kept in its canonical UTC text (the digest input's tail): given as that text or as a Unix time.
    "expires": st.one_of(st.none(), st.integers(0, 253402300799),
                         st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31))
                         .map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + "Z")),
})


class Cutting:
    """A buffer in front of ``raw`` that hands on what was written in pieces of ``size`` bytes exactly, wherever
    they end (io.BufferedWriter hands on whole rows only)."""

    def __init__(self, raw, size):
        self.raw, self.size, self.data = raw, size, bytearray()

    def write(self, data) -> int:
        self.data += data
        while len(self.data) >= self.size:
            self.raw.write(bytes(self.data[:self.size]))
            del self.data[:self.size]
        return len(data)

    def flush(self) -> None:
        if self.data:
            self.raw.write(bytes(self.data))
            self.data.clear()


def validated(raw: dict) -> Peer | None:
    """The validating constructor's peer, or None when the model refuses the values."""
    try:
        return Peer(**raw)
    except WgError:
        return None


def exactly(peer: Peer) -> dict:
    """A peer's fields with their types: equal only when a restore gives the very same values."""
    return {k: (type(v).__name__, v, [type(x).__name__ for x in v] if isinstance(v, tuple) else None)
            for k, v in vars(peer).items()}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(raw_peers, max_size=12), second=st.lists(raw_peers, max_size=4),
       buffer=st.sampled_from([(_store_rows._BUFFER, 1), (_store_rows._BUFFER, 700),
                               (_store_rows._BUFFER, _store_rows._CHUNK), (Cutting, 1), (Cutting, 97), (Cutting, 700)]))
def test_the_fast_path_gives_what_the_validating_constructor_gives(store, monkeypatch, first, second, buffer):
    """``buffer``: what COPY writes into, and its size: batches of one row or several, ending between the two
    interfaces or not (a row is about 250 bytes), and chunks cut anywhere (in a row, in a character)."""
    state = {}
    for name, raws in (("wg0", first), ("wg-1", second)):
        peers, seen, nets = [], set(), set()
        for raw in raws:
            peer = validated(raw)
            # One interface holds each key and each network once (the model and WireGuard refuse the rest).
            if peer is None or peer.public_key in seen or nets & set(peer.allowed_ips):
                continue
            seen.add(peer.public_key)
            nets.update(peer.allowed_ips)
            peers.append(peer)
        state[name] = Interface(private_key=SERVER_KEY, listen_port=51820, peers=tuple(peers))
    server_id = f"prop-{uuid.uuid4().hex[:12]}"
    store.save_state(server_id, state)

    built = []
    original = Peer.__post_init__

    def counting(self):
        built.append(self.public_key)
        original(self)

    monkeypatch.setattr(Peer, "__post_init__", counting)
    monkeypatch.setattr(_store_rows, "_BUFFER", buffer[0])
    monkeypatch.setattr(_store_rows, "_CHUNK", buffer[1])
    _sid, fast = store.load_state(server_id)
    # The fast path really ran: only names COPY writes with a backslash went through the constructor.
    assert sorted(built) == sorted(p.public_key for i in state.values() for p in i.peers
                                   if p.name and any(c in p.name for c in COPY_ESCAPED))
    monkeypatch.setattr(_store_rows, "_TRUSTED_BUILD", False)
    _sid, slow = store.load_state(server_id)
    monkeypatch.undo()

    assert fast == slow == state
    for name, iface in state.items():
        assert [exactly(p) for p in fast[name].peers] == [exactly(p) for p in iface.peers]
        assert [exactly(p) for p in fast[name].peers] == [exactly(p) for p in slow[name].peers]


def _peers(pg_server, db, server_id):
    return pg_server.admin("SELECT public_key FROM peers WHERE server_id = %s ORDER BY position",
                           dbname=db, params=(server_id,))


@pytest.mark.parametrize("sql", [
    "UPDATE peers SET endpoint = '203.0.113.9:1' WHERE public_key = %(key)s",
    "UPDATE peers SET persistent_keepalive = 26 WHERE public_key = %(key)s",
    "UPDATE peers SET name = 'someone else' WHERE public_key = %(key)s",
    "UPDATE peers SET name = 'back\\slash' WHERE public_key = %(key)s",
    "UPDATE peers SET allowed_ips = allowed_ips || '{10.99.0.0/16}'::text[] WHERE public_key = %(key)s",
    # The psk of another row of the same interface: it does not open here (bound to its own row).
    "UPDATE peers SET preshared_key = (SELECT preshared_key FROM peers WHERE public_key = %(other)s)"
    " WHERE public_key = %(key)s",
    "UPDATE peers SET preshared_key = NULL WHERE public_key = %(key)s",
    "UPDATE peers SET preshared_key = overlay(preshared_key placing '\\xff'::bytea from 40)"
    " WHERE public_key = %(key)s",
    # Made to look like a format-1 row: the general path, the same proof (refused as the interface's rows).
    "UPDATE peers SET digest = substring(digest from 2), name = 'x' WHERE public_key = %(key)s",
])
def test_a_row_altered_by_sql_is_refused_naming_the_peer(store, pg_server, pg_db, sql):
    peers = tuple(Peer(public_key=base64.b64encode(bytes([i]) * 32).decode(), allowed_ips=(f"10.7.0.{i}/32",),
                       endpoint=f"[fd00::{i}]:51820", preshared_key=base64.b64encode(bytes([100 + i]) * 32).decode(),
                       persistent_keepalive=25, name=f"peer {i}") for i in range(1, 6))
    state = {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=peers)}
    store.save_state("srv", state)
    assert store.load_state("srv")[1] == state
    victim, other = peers[2].public_key, peers[3].public_key
    pg_server.admin(sql, dbname=pg_db, params={"key": victim, "other": other})
    what = "interface wg0" if "digest =" in sql else f"peer {victim} of interface wg0"
    with pytest.raises(StoreError, match=re.escape(f"snapshot 1 of server 'srv': {what} is damaged")) as failure:
        store.load_state("srv")
    for peer in peers:
        assert peer.preshared_key not in str(failure.value)
    assert SERVER_KEY not in str(failure.value)


def test_rows_moved_removed_or_added_by_sql_are_refused(store, pg_server, pg_db):
    peers = tuple(Peer(public_key=base64.b64encode(bytes([i]) * 32).decode(), allowed_ips=(f"10.7.0.{i}/32",),
                       preshared_key=base64.b64encode(bytes([100 + i]) * 32).decode()) for i in range(1, 5))
    store.save_state("srv", {"wg0": Interface(private_key=SERVER_KEY, peers=peers)})
    first, second = peers[0].public_key, peers[1].public_key
    # Two rows swapped: each row is intact, the order is not.
    pg_server.admin("UPDATE peers SET position = CASE public_key WHEN %(a)s THEN (SELECT position FROM peers WHERE"
                    " public_key = %(b)s) ELSE (SELECT position FROM peers WHERE public_key = %(a)s) END"
                    " WHERE public_key IN (%(a)s, %(b)s)", dbname=pg_db, params={"a": first, "b": second})
    with pytest.raises(StoreError, match="interface wg0 is damaged: its rows are not the ones"):
        store.load_state("srv")
    assert [r[0] for r in _peers(pg_server, pg_db, "srv")][:2] == [second, first]
    pg_server.admin("DELETE FROM peers WHERE public_key = %s", dbname=pg_db, params=(first,))
    with pytest.raises(StoreError, match="interface wg0 is damaged"):
        store.load_state("srv")


PEER_ROW = ("server_id, interface, public_key, valid_from, valid_to, position, allowed_ips, endpoint,"
            " persistent_keepalive, name, preshared_key, digest, expires")


@pytest.mark.parametrize("sql", [
    *(f"UPDATE peers SET preshared_key = substring(preshared_key from 1 for {n}) WHERE server_id = 'srv' AND public_key = %(key)s"
      for n in (0, 5, 9, 15, 21, 36)),
    # Another key's id in the header; the nonce changed; a plain-text value under an encrypting store.
    "UPDATE peers SET preshared_key = overlay(preshared_key placing '\\x0102030405060708'::bytea from 2)"
    " WHERE server_id = 'srv' AND public_key = %(key)s",
    "UPDATE peers SET preshared_key = overlay(preshared_key placing '\\x00'::bytea from 12)"
    " WHERE server_id = 'srv' AND public_key = %(key)s",
    "UPDATE peers SET preshared_key = '\\x00'::bytea || convert_to(%(psk)s, 'UTF8') WHERE server_id = 'srv' AND public_key = %(key)s",
    # The server's key row gone, or another interface's key; the interface's row gone (its peers stay).
    "DELETE FROM server_keys WHERE server_id = 'srv' AND interface = 'wg0'",
    "UPDATE server_keys SET private_key = (SELECT private_key FROM server_keys WHERE server_id = 'srv' AND interface = 'wg1')"
    " WHERE server_id = 'srv' AND interface = 'wg0'",
    "DELETE FROM interfaces WHERE server_id = 'srv' AND name = 'wg0'",
    # Text COPY escapes or that no peer may hold, set behind the model's back.
    "UPDATE peers SET expires = E'2030-01-01T00:00:00Z\\n' WHERE server_id = 'srv' AND public_key = %(key)s",
    "UPDATE peers SET expires = repeat('9', 1000000) WHERE server_id = 'srv' AND public_key = %(key)s",
    "UPDATE peers SET name = E'a\\nb\\tc\\\\d' WHERE server_id = 'srv' AND public_key = %(key)s",
    # A second current row of the same peer.
    f"INSERT INTO peers ({PEER_ROW}) SELECT server_id, interface, public_key, 0, valid_to, position + 1, allowed_ips,"
    " endpoint, persistent_keepalive, name, preshared_key, digest, expires FROM peers WHERE server_id = 'srv' AND public_key = %(key)s",
])
def test_rows_forged_by_sql_are_refused_without_a_key_and_the_store_goes_on(store, pg_server, pg_db, sql):
    """A hostile writer of the database: every forgery is a StoreError (no other exception, no state), short,
    naming no key in any form, and the same store then loads an untouched server."""
    peers = tuple(Peer(public_key=base64.b64encode(bytes([i]) * 32).decode(), allowed_ips=(f"10.8.0.{i}/32",),
                       preshared_key=base64.b64encode(bytes([200 + i]) * 32).decode(), name=f"peer {i}")
                  for i in range(1, 5))
    wg1_key = base64.b64encode(bytes(range(32, 64))).decode()
    state = {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=peers),
             "wg1": Interface(private_key=wg1_key, listen_port=51821)}
    store.save_state("srv", state)
    store.save_state("untouched", state)
    victim = peers[1]
    pg_server.admin(sql, dbname=pg_db, params={"key": victim.public_key, "psk": victim.preshared_key})
    with pytest.raises(StoreError) as failure:
        store.load_state("srv")
    message = str(failure.value)
    # Damaged, or (a header naming another key) not this key's: the general path's word for the row.
    assert "snapshot 1 of server 'srv'" in message and ("damaged" in message or "does not match" in message), \
        message[:300]
    assert len(message) < 500, len(message)
    for secret in [SERVER_KEY, wg1_key, *(p.preshared_key for p in peers)]:
        raw = base64.b64decode(secret)
        for form in (secret, secret[:20], raw.hex(), raw.hex()[:20]):
            assert form not in message, "a key in the refusal"
    assert store.load_state("untouched")[1] == state


def test_a_store_without_the_key_or_with_another_refuses_and_names_no_key(store, pg_server, pg_db):
    peers = (Peer(public_key=base64.b64encode(bytes([9]) * 32).decode(), allowed_ips=("10.8.1.9/32",),
                  preshared_key=base64.b64encode(bytes([99]) * 32).decode()),)
    store.save_state("srv", {"wg0": Interface(private_key=SERVER_KEY, peers=peers)})
    for cipher, expected in ((None, "is encrypted: give its encryption_key"),
                             (KeyCipher.from_base64(generate_key()), "encryption_key does not match")):
        with Store(pg_server.params(pg_db), cipher) as other, pytest.raises(StoreError, match=expected) as failure:
            other.load_state("srv")
        assert SERVER_KEY not in str(failure.value) and peers[0].preshared_key not in str(failure.value)


def test_a_damaged_tag_alone_restores_the_saved_key_and_rekey_names_the_row(store, pg_server, pg_db):
    """A restore proves the preshared keys' plaintexts (the state digest), not each ciphertext's tag: a value
    whose tag alone was altered by SQL restores exactly what was saved. wg_rekey opens every value on its own
    and refuses that row, naming it (docs/backup-restore.md, how a restore reads a sealed snapshot)."""
    peers = tuple(Peer(public_key=base64.b64encode(bytes([i]) * 32).decode(), allowed_ips=(f"10.7.0.{i}/32",),
                       preshared_key=base64.b64encode(bytes([100 + i]) * 32).decode()) for i in range(1, 6))
    state = {"wg0": Interface(private_key=SERVER_KEY, listen_port=51820, peers=peers)}
    store.save_state("srv", state)
    # The last byte of the 16-byte tag, which ends the value (ciphertext and nonce untouched).
    pg_server.admin("UPDATE peers SET preshared_key = overlay(preshared_key placing decode(lpad(to_hex("
                    "get_byte(preshared_key, octet_length(preshared_key) - 1) # 1), 2, '0'), 'hex')"
                    " from octet_length(preshared_key)) WHERE public_key = %(key)s",
                    dbname=pg_db, params={"key": peers[2].public_key})
    assert store.load_state("srv")[1] == state
    with pytest.raises(StoreError, match=re.escape(f"peer {peers[2].public_key} of interface wg0")) as failure:
        rekey_server(store, "srv", KeyCipher.from_base64(generate_key()), CIPHER, check_mode=True)
    assert "damaged" in str(failure.value)
    for peer in peers:
        assert peer.preshared_key not in str(failure.value)
