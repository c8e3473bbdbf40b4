"""Peer expiries in the store (schema 4: the registry's first setting stored after format 2), against a real
PostgreSQL: stored, proved by the digests, restored, and no rewrite of rows stored before the column existed."""
from __future__ import annotations

import re

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, parse, render

EXPIRES = "2031-05-01T12:00:00Z"


def make_state(count: int, expiring: set) -> dict:
    peers = tuple(Peer(public_key=_keys.public_key(_keys.generate_private_key()),
                       allowed_ips=(f"10.44.0.{i + 2}/32",), preshared_key=_keys.generate_private_key(),
                       name=f"client {i}", expires=EXPIRES if i in expiring else None) for i in range(count))
    return {"wg0": Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.44.0.1/24",),
                             peers=peers)}


@pytest.fixture
def store(pg_server, pg_db):
    s = Store(pg_server.params(pg_db), KeyCipher.from_base64(generate_key()))
    s.migrate()
    yield s
    s.close()


def test_expiries_are_stored_and_restored_into_the_file(store, pg_server, pg_db):
    state = make_state(6, expiring={1, 4})
    store.save_state("srv", state)
    rows = pg_server.admin("SELECT name, expires FROM peers ORDER BY position", dbname=pg_db)
    assert rows == [(f"client {i}", EXPIRES if i in (1, 4) else None) for i in range(6)]
    _snap, loaded = store.load_state("srv")
    assert loaded == state
    text = render(loaded["wg0"])
    assert text.count(f"# Expires = {EXPIRES}") == 2
    assert parse(text) == state["wg0"]


def test_an_expiry_is_proved_by_its_row_digest(store, pg_server, pg_db):
    state = make_state(4, expiring={2})
    store.save_state("srv", state)
    for victim, value in ((state["wg0"].peers[2].public_key, "2099-01-01T00:00:00Z"),  # moved out
                          (state["wg0"].peers[2].public_key, None),  # removed: never revoked
                          (state["wg0"].peers[0].public_key, "2026-01-01T00:00:00Z")):  # added to a row without
        pg_server.admin("UPDATE peers SET expires = %s WHERE public_key = %s", dbname=pg_db, params=(value, victim))
        with pytest.raises(StoreError, match=re.escape("is damaged")):
            store.load_state("srv")
        original = state["wg0"].peers[[p.public_key for p in state["wg0"].peers].index(victim)].expires
        pg_server.admin("UPDATE peers SET expires = %s WHERE public_key = %s", dbname=pg_db, params=(original, victim))
    assert store.load_state("srv")[1] == state


def test_an_expiry_change_writes_one_row_and_an_unchanged_state_none(store, pg_server, pg_db):
    state = make_state(5, expiring=set())
    first = store.save_state("srv", state)
    assert not store.save_state("srv", state).changed
    peers = list(state["wg0"].peers)
    peers[3] = peers[3].replace(expires=EXPIRES)
    changed = {"wg0": state["wg0"].replace(peers=tuple(peers))}
    second = store.save_state("srv", changed)
    assert second.changed and second.counts["peer_rows_written"] == 1
    assert store.load_state("srv", first.snapshot_id)[1] == state
    assert store.load_state("srv")[1] == changed


def test_rows_stored_before_the_column_existed_still_prove_and_are_not_rewritten(pg_server, pg_db):
    """A schema-3 database (no expires column) with a server's rows: migrating to 4 and saving the same state
    again writes nothing, and the snapshot still loads (its digests prove rows that have no expiry)."""
    key = KeyCipher.from_base64(generate_key())
    state = make_state(3, expiring=set())
    with Store(pg_server.params(pg_db), key) as store:
        store.migrate()
        first = store.save_state("srv", state)
    # What schema 3 had: the same rows without the column, and no version-4 row.
    pg_server.admin("ALTER TABLE peers DROP COLUMN expires", dbname=pg_db)
    pg_server.admin("DELETE FROM schema_version WHERE version = 4", dbname=pg_db)
    with Store(pg_server.params(pg_db), key) as store:
        assert store.migrate()
        assert pg_server.admin("SELECT max(version) FROM schema_version", dbname=pg_db) == [(4,)]
        again = store.save_state("srv", state)
        assert not again.changed and again.snapshot_id == first.snapshot_id
        assert store.load_state("srv")[1] == state
