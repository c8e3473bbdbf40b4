"""Rotating the store's encryption key (wg_backup's previous_encryption_key) against a real PostgreSQL.

What is checked is read back by independent means: the sealed blobs are opened with AES-GCM directly
(the layout of docs/backup-restore.md: 0x01 | key id (8) | nonce (12) | ciphertext+tag), rows are
counted with SQL, and the module is run through ansible-playbook.
"""
from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, render
from tests.helpers.playbook import run_playbook


def make_state() -> dict[str, Interface]:
    peers = tuple(Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=(f"10.9.0.{i + 2}/32",),
                       preshared_key=_keys.generate_private_key(), name=f"peer {i}") for i in range(3))
    return {
        "wg0": Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.9.0.1/24",),
                         peers=peers),
        "wg1": Interface(private_key=_keys.generate_private_key(), listen_port=51821, address=("10.8.0.1/24",)),
    }


def opens_with(key_b64: str, blob: bytes, context: bytes) -> bool:
    """Whether AES-GCM under ``key_b64`` opens a sealed value (read with the documented layout, not the store)."""
    blob = bytes(blob)
    try:
        AESGCM(base64.b64decode(key_b64)).decrypt(blob[9:21], blob[21:], blob[:9] + context)
        return True
    except Exception:  # any failure means "not this key"
        return False


def current_blobs(pg_server, db, server="srv") -> list[tuple[bytes, bytes]]:
    """(sealed value, its associated data) of every current private and preshared key of ``server``."""
    rows = [(bytes(blob), f"server_key\x1f{server}\x1f{iface}".encode()) for iface, blob in pg_server.admin(
        "SELECT interface, private_key FROM server_keys WHERE server_id = %s AND valid_to IS NULL", db, (server,))]
    rows += [(bytes(blob), f"preshared_key\x1f{server}\x1f{iface}\x1f{key}".encode()) for iface, key, blob in
             pg_server.admin("SELECT interface, public_key, preshared_key FROM peers WHERE server_id = %s"
                             " AND valid_to IS NULL AND preshared_key IS NOT NULL", db, (server,))]
    return rows


def stored_under_a_key(pg_server, db) -> tuple[KeyCipher, KeyCipher, dict[str, Interface]]:
    """A state saved as server 'srv' under one key; that key, a new one, and the state."""
    old, new = KeyCipher.from_base64(generate_key()), KeyCipher.from_base64(generate_key())
    state = make_state()
    with Store(pg_server.params(db), old) as store:
        store.migrate()
        store.save_state("srv", state)
    return old, new, state


def count(pg_server, db, sql) -> int:
    return pg_server.admin(sql, db)[0][0]


def test_a_rotation_moves_the_history_to_the_new_key(pg_server, pg_db):
    old_key, new_key = generate_key(), generate_key()
    old, new = KeyCipher.from_base64(old_key), KeyCipher.from_base64(new_key)
    state = make_state()
    with Store(pg_server.params(pg_db), old) as store:
        store.migrate()
        first = store.save_state("srv", state)
    blobs = current_blobs(pg_server, pg_db)
    assert len(blobs) == 5 and all(opens_with(old_key, b, c) for b, c in blobs)

    with Store(pg_server.params(pg_db), new) as store:
        # Without the previous key the new key is refused, and nothing is written.
        with pytest.raises(StoreError, match="encryption_key does not match the key that encrypted snapshot"):
            store.save_state("srv", state)
        # A previous key that is not the latest snapshot's is refused too, naming all three key ids.
        stranger = KeyCipher.from_base64(generate_key())
        with pytest.raises(StoreError) as info:
            store.save_state("srv", state, previous_cipher=stranger)
        message = str(info.value)
        assert "previous_encryption_key does not match the key that encrypted snapshot" in message
        assert old.key_id.hex() in message and stranger.key_id.hex() in message and new.key_id.hex() in message
        assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1
        # Check mode predicts the rotation and writes nothing.
        predicted = store.save_state("srv", state, previous_cipher=old, check_mode=True)
        assert predicted.changed and predicted.counts["peer_rows_written"] == 3
        assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1

        rotated = store.save_state("srv", state, previous_cipher=old)
        assert rotated.changed and rotated.snapshot_id > first.snapshot_id
        assert rotated.counts == {"interfaces": 2, "peers": 3, "peer_rows_written": 3}
        # Run again: the history is under the new key already, nothing to do.
        again = store.save_state("srv", state, previous_cipher=old)
        assert not again.changed and again.snapshot_id == rotated.snapshot_id
        assert store.load_state("srv") == (rotated.snapshot_id, state)
        # The snapshot before the rotation stays under the old key: the new one does not open it.
        with pytest.raises(StoreError, match=f"does not match the key that encrypted snapshot {first.snapshot_id}"):
            store.load_state("srv", first.snapshot_id)

    blobs = current_blobs(pg_server, pg_db)
    assert len(blobs) == 5
    assert all(opens_with(new_key, b, c) and not opens_with(old_key, b, c) for b, c in blobs), \
        "a current key is still sealed with the old encryption key"
    with Store(pg_server.params(pg_db), old) as store:
        with pytest.raises(StoreError, match="encryption_key does not match"):
            store.load_state("srv")
        assert store.load_state("srv", first.snapshot_id) == (first.snapshot_id, state)
        # The old key can no longer extend the history.
        with pytest.raises(StoreError, match="encryption_key does not match"):
            store.save_state("srv", {"wg0": state["wg0"].replace(listen_port=4000), "wg1": state["wg1"]})
    key_ids = {bytes(k) for (k,) in pg_server.admin("SELECT key_id FROM snapshots ORDER BY id", pg_db)}
    assert key_ids == {old.key_id, new.key_id}


def test_a_partial_backup_cannot_rotate(pg_server, pg_db):
    old, new, state = stored_under_a_key(pg_server, pg_db)
    with Store(pg_server.params(pg_db), new) as store, pytest.raises(StoreError, match="must cover every interface"):
        store.save_state("srv", {"wg0": state["wg0"]}, partial=True, previous_cipher=old)
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1


def test_the_sync_guard_accepts_the_rotated_history_and_refuses_the_old_key(pg_server, pg_db):
    """After a rotation the service's guarded save goes on under the new key; one still on the old key stores nothing."""
    old, new, state = stored_under_a_key(pg_server, pg_db)
    with Store(pg_server.params(pg_db), new) as store:
        store.save_state("srv", state, previous_cipher=old)
        grown = {"wg0": state["wg0"].replace(listen_port=51830), "wg1": state["wg1"]}
        assert store.save_state("srv", grown, source="wgrest_sync", guard=True).changed
    with Store(pg_server.params(pg_db), old) as store, pytest.raises(StoreError, match="encryption_key does not match"):
        store.save_state("srv", state, source="wgrest_sync", guard=True)
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 3


def test_wg_backup_rotates_and_wg_restore_reads_with_the_new_key(pg_server, pg_db, tmp_path):
    """The module path: wg_backup with previous_encryption_key, then wg_restore in check mode with each key."""
    old_key, new_key = generate_key(), generate_key()
    state = make_state()
    conf = tmp_path / "etc"
    conf.mkdir(mode=0o700)
    # Interfaces that only have a file (not running): the capture reads exactly these.
    name = "wgrot0"
    (conf / f"{name}.conf").write_text(render(state["wg0"]))
    (conf / f"{name}.conf").chmod(0o600)
    db = pg_server.module_params(pg_db, unix_socket=True)
    backup = {**db, "server_id": "rot", "config_dir": str(conf), "interfaces": [name]}
    restore = {**db, "server_id": "rot", "config_dir": str(tmp_path / "elsewhere")}
    rotate = {**backup, "encryption_key": new_key, "previous_encryption_key": old_key}
    res = run_playbook([
        {"name": "first", "wgfleet.wireguard.wg_backup": {**backup, "encryption_key": old_key}, "register": "first"},
        {"name": "bad previous", "ignore_errors": True,
         "wgfleet.wireguard.wg_backup": {**backup, "encryption_key": new_key, "previous_encryption_key": "c2hvcnQ="}},
        {"name": "rotate", "wgfleet.wireguard.wg_backup": rotate},
        {"name": "rotate again", "wgfleet.wireguard.wg_backup": rotate},
        {"name": "restore new", "wgfleet.wireguard.wg_restore": {**restore, "encryption_key": new_key},
         "check_mode": True},
        {"name": "restore old latest", "wgfleet.wireguard.wg_restore": {**restore, "encryption_key": old_key},
         "check_mode": True, "ignore_errors": True},
        {"name": "restore old first", "wgfleet.wireguard.wg_restore": {
            **restore, "encryption_key": old_key, "snapshot": "{{ first.snapshot_id }}"}, "check_mode": True},
    ])
    secrets = [old_key, new_key, state["wg0"].private_key] + [p.preshared_key for p in state["wg0"].peers]
    for secret in secrets:
        assert secret not in res.output, "a key leaked into the playbook output"
    assert res.rc == 0, res.output[-3000:]
    assert res["bad previous"]["failed"]
    assert res["bad previous"]["msg"].startswith("previous_encryption_key: is not 32 bytes encoded in base64")
    assert res["rotate"]["changed"] and res["rotate"]["snapshot_id"] > res["first"]["snapshot_id"]
    assert not res["rotate again"]["changed"] and res["rotate again"]["snapshot_id"] == res["rotate"]["snapshot_id"]
    public = _keys.public_key(state["wg0"].private_key)
    assert res["restore new"]["interfaces"][name]["public_key"] == public
    assert res["restore old latest"]["failed"]
    assert "encryption_key does not match the key that encrypted snapshot" in res["restore old latest"]["msg"]
    assert res["restore old first"]["snapshot_id"] == res["first"]["snapshot_id"]
    assert res["restore old first"]["interfaces"][name]["public_key"] == public
