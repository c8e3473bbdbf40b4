"""wg_rekey: a server's whole history re-sealed under another key, against a real PostgreSQL.

What is checked is read back by other means than the code under test: the states the test saved (kept by the
test, rendered as wg-quick text), the sealed blobs opened with AES-GCM directly (the documented layout
0x01 | key id (8) | nonce (12) | ciphertext+tag), and every row compared with SQL.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import psycopg2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._rekey import rekey_server
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import (
    KeyCipher,
    derive_server_key,
    generate_key,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, render
from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import needs_postgres

pytestmark = [needs_postgres]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store_v1"
TABLES = {"snapshots": "id", "interfaces": "name, valid_from", "server_keys": "interface, valid_from",
          "peers": "interface, public_key, valid_from"}


def peer(i: int, psk: bool = True, **extra) -> Peer:
    values = {"public_key": _keys.public_key(_keys.generate_private_key()), "allowed_ips": (f"10.9.{i // 250}.{i % 250 + 2}/32",),
              "preshared_key": _keys.generate_private_key() if psk else None, "name": f"peer {i}",
              "persistent_keepalive": 25 if i % 2 else 0}
    values.update(extra)
    return Peer(**values)


def history(store: Store, server: str) -> list[tuple[int, dict[str, Interface]]]:
    """Four saves with changes between (rows closed, a key replaced, a partial save): (snapshot id, full state)."""
    wg0 = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.9.0.1/24",),
                    peers=tuple(peer(i, psk=bool(i % 3)) for i in range(6)))
    wg1 = Interface(private_key=_keys.generate_private_key(), listen_port=51821, address=("10.8.0.1/24",),
                    peers=(peer(100, endpoint="vpn.example.org:51820"),))
    states = [{"wg0": wg0, "wg1": wg1}]
    p = list(wg0.peers)
    p2 = [p[1].replace(allowed_ips=("10.9.7.1/32", "fd00::7/128")), peer(50), *p[2:]]  # p0 gone, p1 changed, one new
    states.append({"wg0": wg0.replace(peers=tuple(p2)), "wg1": wg1.replace(listen_port=51831)})
    p3 = list(p2)
    p3[3] = p3[3].replace(preshared_key=_keys.generate_private_key())
    states.append({"wg0": states[1]["wg0"].replace(private_key=_keys.generate_private_key(), peers=tuple(p3)),
                   "wg1": states[1]["wg1"]})
    out = []
    for state in states:
        saved = store.save_state(server, state)
        assert saved.changed
        out.append((saved.snapshot_id, state))
    grown = states[-1]["wg1"].replace(peers=(*states[-1]["wg1"].peers, peer(101)))
    saved = store.save_state(server, {"wg1": grown}, partial=True)
    assert saved.changed
    out.append((saved.snapshot_id, {"wg0": states[-1]["wg0"], "wg1": grown}))
    return out


def rows(pg_server, db, server=None) -> dict:
    """Every row of every table (of ``server``), as SQL gives it."""
    where = "" if server is None else " WHERE server_id = %s"
    return {t: [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in pg_server.admin(
        f"SELECT * FROM {t}{where} ORDER BY server_id, {order}", db, None if server is None else (server,))]
        for t, order in TABLES.items()}


def opens_with(key_b64: str, blob: bytes, context: bytes) -> bool:
    blob = bytes(blob)
    try:
        AESGCM(base64.b64decode(key_b64)).decrypt(blob[9:21], blob[21:], blob[:9] + context)
        return True
    except Exception:  # any failure means "not this key"
        return False


def all_blobs(pg_server, db, server) -> list[tuple[bytes, bytes]]:
    """Every sealed private and preshared key of ``server`` (current and closed rows), with its associated data."""
    found = [(bytes(b), f"server_key\x1f{server}\x1f{i}".encode()) for i, b in pg_server.admin(
        "SELECT interface, private_key FROM server_keys WHERE server_id = %s", db, (server,))]
    found += [(bytes(b), f"preshared_key\x1f{server}\x1f{i}\x1f{k}".encode()) for i, k, b in pg_server.admin(
        "SELECT interface, public_key, preshared_key FROM peers WHERE server_id = %s AND preshared_key IS NOT NULL",
        db, (server,))]
    return found


def wg_quick_strip(path) -> dict:
    """The file as wg-quick reads it (``wg-quick strip``), in a tiny parser of the test's own: the private key
    and, per peer public key, its other lines."""
    out = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, check=True,
                         timeout=30).stdout
    result: dict = {"private_key": None, "peers": {}}
    current = None
    for line in out.splitlines():
        key, _eq, value = (part.strip() for part in line.partition("="))
        if line.strip() == "[Peer]":
            current = {}
        elif key == "PrivateKey":
            result["private_key"] = value
        elif key == "PublicKey":
            result["peers"][value] = current
        elif current is not None and key:
            current[key] = value
    return result


def texts(state: dict[str, Interface]) -> dict[str, str]:
    return {name: render(iface) for name, iface in state.items()}


def assert_restores(pg_server, db, server, key_b64, saved, wrong_key_b64=None) -> None:
    """Every saved snapshot loads with ``key_b64`` as the test saved it, and fails as a key mismatch with the other."""
    with Store(pg_server.params(db), KeyCipher.from_base64(key_b64)) as store:
        for snap_id, state in saved:
            assert store.load_state(server, snap_id) == (snap_id, state)
            assert texts(store.load_state(server, snap_id)[1]) == texts(state)
    if wrong_key_b64 is not None:
        with Store(pg_server.params(db), KeyCipher.from_base64(wrong_key_b64)) as store:
            for snap_id, _state in saved:
                with pytest.raises(StoreError, match=f"encryption_key does not match the key that encrypted snapshot "
                                                     f"{snap_id} "):
                    store.load_state(server, snap_id)


def test_the_upgrade_reseals_every_snapshot_under_the_derived_key(pg_server, pg_db):
    master = generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        saved = {s: history(store, s) for s in ("srv-a", "srv-b")}
    closed = pg_server.admin("SELECT count(*) FROM peers WHERE server_id = 'srv-a' AND valid_to IS NOT NULL", pg_db)
    assert closed[0][0] >= 2 and len(saved["srv-a"]) == 4
    derived = {s: derive_server_key(master, s) for s in saved}
    before_b = rows(pg_server, pg_db, "srv-b")
    with Store(pg_server.params(pg_db), None) as store:
        done = rekey_server(store, "srv-a", KeyCipher.from_base64(derived["srv-a"]), KeyCipher.from_base64(master))
    assert done.changed and done.snapshots == 4 and done.snapshots_total == 4
    peer_rows = pg_server.admin("SELECT count(*) FROM peers WHERE server_id = 'srv-a'", pg_db)[0][0]
    assert done.rows == {"interfaces": 3, "server_keys": 3, "peers": peer_rows}
    # srv-b is untouched, byte for byte.
    assert rows(pg_server, pg_db, "srv-b") == before_b
    assert_restores(pg_server, pg_db, "srv-a", derived["srv-a"], saved["srv-a"], wrong_key_b64=master)
    assert_restores(pg_server, pg_db, "srv-b", master, saved["srv-b"])
    blobs = all_blobs(pg_server, pg_db, "srv-a")
    assert len(blobs) == 3 + sum(1 for _b, c in blobs if c.startswith(b"preshared_key")) and len(blobs) > 8
    assert all(opens_with(derived["srv-a"], b, c) and not opens_with(master, b, c) for b, c in blobs)
    key_ids = pg_server.admin("SELECT DISTINCT key_id, format FROM snapshots WHERE server_id = 'srv-a'", pg_db)
    assert [(bytes(k), f) for k, f in key_ids] == [(KeyCipher.from_base64(derived["srv-a"]).key_id, 2)]
    # Going back by time works too, and srv-a's derived key opens nothing of srv-b.
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(derived["srv-a"])) as store:
        (when,) = pg_server.admin("SELECT created_at FROM snapshots WHERE id = %s", pg_db, (saved["srv-a"][1][0],))[0]
        assert store.load_state("srv-a", when.isoformat()) == saved["srv-a"][1]
        with pytest.raises(StoreError, match="encryption_key does not match"):
            store.load_state("srv-b")
        # The sync goes on under the derived key: an unchanged state writes nothing, a change is saved.
        assert not store.save_state("srv-a", saved["srv-a"][-1][1], guard=True).changed
    # A second run changes nothing.
    after = rows(pg_server, pg_db)
    with Store(pg_server.params(pg_db), None) as store:
        again = rekey_server(store, "srv-a", KeyCipher.from_base64(derived["srv-a"]), KeyCipher.from_base64(master))
    assert not again.changed and again.snapshots == 0 and again.rows == {"interfaces": 0, "server_keys": 0, "peers": 0}
    assert again.already_new == 4
    assert rows(pg_server, pg_db) == after


def test_check_mode_counts_and_writes_nothing(pg_server, pg_db):
    master, new = generate_key(), generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        history(store, "srv")
    before = rows(pg_server, pg_db)
    with Store(pg_server.params(pg_db), None) as store:
        predicted = rekey_server(store, "srv", KeyCipher.from_base64(new), KeyCipher.from_base64(master),
                                 check_mode=True)
    assert rows(pg_server, pg_db) == before
    with Store(pg_server.params(pg_db), None) as store:
        done = rekey_server(store, "srv", KeyCipher.from_base64(new), KeyCipher.from_base64(master))
    assert predicted == done and done.changed


def test_a_failure_half_way_leaves_the_database_unchanged(pg_server, pg_db):
    """The last step (the snapshots' seals) fails after every row was written again: all of it is rolled back."""
    master, new = generate_key(), generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        saved = history(store, "srv")
    before = rows(pg_server, pg_db)
    pg_server.admin("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$"
                    " BEGIN RAISE EXCEPTION 'refused by the test'; END $$;"
                    " CREATE TRIGGER refuse BEFORE UPDATE ON snapshots FOR EACH ROW EXECUTE FUNCTION refuse()", pg_db)
    with Store(pg_server.params(pg_db), None) as store, pytest.raises(StoreError, match="refused by the test"):
        rekey_server(store, "srv", KeyCipher.from_base64(new), KeyCipher.from_base64(master))
    assert rows(pg_server, pg_db) == before
    pg_server.admin("DROP TRIGGER refuse ON snapshots", pg_db)
    assert_restores(pg_server, pg_db, "srv", master, saved)


def test_a_damaged_row_or_a_snapshot_under_another_key_fails_naming_it_and_writes_nothing(pg_server, pg_db):
    k1, k2, new = generate_key(), generate_key(), generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(k1)) as store:
        store.migrate()
        saved = history(store, "srv")
    # The history continues under k2 (wg_backup's own rotation): the first four snapshots stay under k1.
    last = saved[-1][1]
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(k2)) as store:
        rotated = store.save_state("srv", last, previous_cipher=KeyCipher.from_base64(k1))
    saved.append((rotated.snapshot_id, last))
    before = rows(pg_server, pg_db)
    with Store(pg_server.params(pg_db), None) as store:
        with pytest.raises(StoreError) as info:
            rekey_server(store, "srv", KeyCipher.from_base64(new), KeyCipher.from_base64(k2))
        ids = ", ".join(str(s) for s, _state in saved[:4])
        assert f"snapshots {ids} are encrypted with neither previous_encryption_key" in str(info.value)
        assert "nothing was changed" in str(info.value)
        assert rows(pg_server, pg_db) == before
        # A forged peer row (its label changed by SQL) in a snapshot: refused, naming the snapshot.
        (target,) = pg_server.admin("SELECT public_key FROM peers WHERE server_id = 'srv' AND name = 'peer 4'"
                                    " AND valid_to IS NULL", pg_db)[0]
        pg_server.admin("UPDATE peers SET name = 'forged' WHERE public_key = %s", pg_db, (target,))
        forged = rows(pg_server, pg_db)
        with pytest.raises(StoreError, match=re.escape(f"peer {target} of interface wg0 (from snapshot {saved[0][0]}) "
                                                       "is damaged: it does not match its digest")):
            rekey_server(store, "srv", KeyCipher.from_base64(k2), KeyCipher.from_base64(k1))
        assert rows(pg_server, pg_db) == forged
        pg_server.admin("UPDATE peers SET name = 'peer 4' WHERE public_key = %s", pg_db, (target,))
        # A snapshot whose seal was altered: refused, naming it.
        pg_server.admin("UPDATE snapshots SET seal = sha256(seal) WHERE id = %s", pg_db, (saved[2][0],))
        with pytest.raises(StoreError, match=f"snapshot {saved[2][0]} is damaged: it does not match its seal"):
            rekey_server(store, "srv", KeyCipher.from_base64(k2), KeyCipher.from_base64(k1))
        assert rows(pg_server, pg_db) != forged
        pg_server.admin("UPDATE snapshots SET seal = %s WHERE id = %s", pg_db,
                        (next(r for r in before["snapshots"] if r[0] == saved[2][0])[-1], saved[2][0]))
        assert rows(pg_server, pg_db) == before
        # The mixed history moves in two runs: k1 -> k2 (k2's snapshot is left), then k2 -> new.
        first = rekey_server(store, "srv", KeyCipher.from_base64(k2), KeyCipher.from_base64(k1))
        assert first.snapshots == 4 and first.already_new == 1
        second = rekey_server(store, "srv", KeyCipher.from_base64(new), KeyCipher.from_base64(k2))
        assert second.snapshots == 5
    assert_restores(pg_server, pg_db, "srv", new, saved, wrong_key_b64=k2)


def test_rotating_the_master_and_one_servers_generation(pg_server, pg_db):
    master, master2 = generate_key(), generate_key()
    saved = {}
    for server in ("srv-a", "srv-b"):
        with Store(pg_server.params(pg_db), KeyCipher.from_base64(derive_server_key(master, server))) as store:
            store.migrate()
            saved[server] = history(store, server)
    # The master rotated for srv-a (srv-b's turn would follow in the same loop).
    before_b = rows(pg_server, pg_db, "srv-b")
    old_a, new_a = derive_server_key(master, "srv-a"), derive_server_key(master2, "srv-a")
    with Store(pg_server.params(pg_db), None) as store:
        assert rekey_server(store, "srv-a", KeyCipher.from_base64(new_a), KeyCipher.from_base64(old_a)).snapshots == 4
    assert rows(pg_server, pg_db, "srv-b") == before_b
    assert_restores(pg_server, pg_db, "srv-a", new_a, saved["srv-a"], wrong_key_b64=old_a)
    # srv-a compromised: its generation bumped, srv-b again untouched.
    gen2 = derive_server_key(master2, "srv-a", 2)
    with Store(pg_server.params(pg_db), None) as store:
        assert rekey_server(store, "srv-a", KeyCipher.from_base64(gen2), KeyCipher.from_base64(new_a)).changed
    assert rows(pg_server, pg_db, "srv-b") == before_b
    assert_restores(pg_server, pg_db, "srv-a", gen2, saved["srv-a"], wrong_key_b64=new_a)
    assert_restores(pg_server, pg_db, "srv-b", derive_server_key(master, "srv-b"), saved["srv-b"])


def test_a_format_1_store_is_rekeyed_and_sealed(pg_server, pg_db):
    conn = psycopg2.connect(**pg_server.params(pg_db))
    try:
        with conn.cursor() as cur:
            cur.execute((FIXTURE / "dump.sql").read_text())
        conn.commit()
    finally:
        conn.close()
    legacy = json.loads((FIXTURE / "expected.json").read_text())
    old, new = legacy["encryption_key"], generate_key()
    with Store(pg_server.params(pg_db), None) as store:
        store.migrate()
        done = rekey_server(store, "legacy-srv", KeyCipher.from_base64(new), KeyCipher.from_base64(old))
        assert done.snapshots == 2
        # The plain-text server: nothing under a key, left as it is.
        before = rows(pg_server, pg_db, "legacy-plain")
        plain = rekey_server(store, "legacy-plain", KeyCipher.from_base64(new), KeyCipher.from_base64(old))
        assert not plain.changed and plain.plain == 1
        assert rows(pg_server, pg_db, "legacy-plain") == before
    assert pg_server.admin("SELECT DISTINCT format FROM snapshots WHERE server_id = 'legacy-srv'", pg_db) == [(2,)]
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(new)) as store:
        for snap in legacy["snapshots"]:
            if snap["server_id"] == "legacy-srv":
                assert texts(store.load_state("legacy-srv", snap["id"])[1]) == snap["state"]
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(old)) as store, \
            pytest.raises(StoreError, match="encryption_key does not match"):
        store.load_state("legacy-srv", 1)
    assert all(opens_with(new, b, c) for b, c in all_blobs(pg_server, pg_db, "legacy-srv"))


def test_the_module_reports_counts_and_never_a_key(pg_server, pg_db, tmp_path):
    master = generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        saved = history(store, "vpn-1")
    derived = derive_server_key(master, "vpn-1")
    db = pg_server.module_params(pg_db, unix_socket=True)
    task = {**db, "server_id": "vpn-1", "previous_encryption_key": master,
            "encryption_key": "{{ master | wgfleet.wireguard.server_key('vpn-1') }}"}
    before = rows(pg_server, pg_db)
    res = run_playbook([
        {"name": "check", "wgfleet.wireguard.wg_rekey": task, "check_mode": True},
        {"name": "rekey", "wgfleet.wireguard.wg_rekey": task},
        {"name": "again", "wgfleet.wireguard.wg_rekey": task},
        *({"name": f"restore {snap_id}", "wgfleet.wireguard.wg_restore": {
            **db, "server_id": "vpn-1", "encryption_key": derived, "config_dir": str(tmp_path / f"s{snap_id}"),
            "snapshot": str(snap_id)}} for snap_id, _state in saved),
        {"name": "old key", "ignore_errors": True, "wgfleet.wireguard.wg_restore": {
            **db, "server_id": "vpn-1", "encryption_key": master, "config_dir": str(tmp_path / "old"),
            "snapshot": str(saved[0][0])}},
    ], extra_vars={"master": master})
    secrets = [master, derived] + [i.private_key for _s, st in saved for i in st.values()] + \
        [p.preshared_key for _s, st in saved for i in st.values() for p in i.peers if p.preshared_key]
    for secret in secrets:
        assert secret not in res.output, "a key leaked into the playbook output"
    assert res.rc == 0, res.output[-3000:]
    assert res["check"]["changed"] and res["check"]["snapshots"] == 4
    assert res["rekey"]["changed"] and res["rekey"]["snapshots"] == 4 and res["rekey"]["rows"] == res["check"]["rows"]
    assert not res["again"]["changed"] and res["again"]["snapshots_already_rekeyed"] == 4
    # Every snapshot, the oldest included, written out by wg_restore and read back by wg-quick itself.
    for snap_id, state in saved:
        for name, iface in state.items():
            stripped = wg_quick_strip(tmp_path / f"s{snap_id}" / f"{name}.conf")
            assert stripped["private_key"] == iface.private_key
            assert {k: (v.get("PresharedKey"), v.get("AllowedIPs")) for k, v in stripped["peers"].items()} == {
                p.public_key: (p.preshared_key, ", ".join(p.allowed_ips)) for p in iface.peers}
    assert res["old key"]["failed"] and "encryption_key does not match the key" in res["old key"]["msg"]
    assert not (tmp_path / "old").exists()
    assert rows(pg_server, pg_db) != before
    assert_restores(pg_server, pg_db, "vpn-1", derived, saved, wrong_key_b64=master)


@pytest.mark.parametrize(("options", "message"), [
    ({"encryption_key": "c2hvcnQ="}, "encryption_key: is not 32 bytes encoded in base64"),
    ({"previous_encryption_key": "not base64 at all!"}, "previous_encryption_key: is not 32 bytes encoded in base64"),
    ({"server_id": "vpn\n1"}, "server_id:"),
    ({"server_id": "vpn\u20281"}, "server_id:"),
    ({"server_id": "vpn\x001"}, "server_id:"),
    ({"server_id": "x" * 300}, "server_id:"),
    ({"same": True}, "previous_encryption_key: is the same key as encryption_key"),
])
def test_bad_input_is_refused_naming_the_option(pg_server, pg_db, options, message):
    master = generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        history(store, "vpn-1")
    before = rows(pg_server, pg_db)
    new = generate_key()
    task = {**pg_server.module_params(pg_db, unix_socket=True), "server_id": "vpn-1",
            "previous_encryption_key": master, "encryption_key": new}
    if options.pop("same", False):
        task["encryption_key"] = master
    task.update(options)
    res = run_playbook([{"name": "bad", "wgfleet.wireguard.wg_rekey": task, "ignore_errors": True}])
    assert res["bad"]["failed"]
    assert res["bad"]["msg"].startswith(message), res["bad"]["msg"]
    assert master not in res.output and new not in res.output
    assert rows(pg_server, pg_db) == before


def test_a_rekey_waits_for_the_servers_save_lock(pg_server, pg_db):
    """A save (here: a transaction holding the lock saves take) and a rekey of the same server never interleave."""
    import threading
    import time

    from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_schema import LOCK_CLASS

    master, new = generate_key(), generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        history(store, "srv")
    holder = psycopg2.connect(**pg_server.params(pg_db))
    outcome = {}
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, "srv"))

        def run():
            with Store(pg_server.params(pg_db), None) as store:
                outcome["result"] = rekey_server(store, "srv", KeyCipher.from_base64(new),
                                                 KeyCipher.from_base64(master))

        worker = threading.Thread(target=run)
        worker.start()
        waiting = []
        for _attempt in range(100):  # up to 10 s for the rekey to reach the lock
            waiting = pg_server.admin("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                                      pg_db)[0][0]
            if waiting:
                break
            time.sleep(0.1)
        assert waiting == 1, "the rekey did not wait for the server's lock"
        assert [bytes(k) for (k,) in pg_server.admin("SELECT DISTINCT key_id FROM snapshots", pg_db)] == \
            [KeyCipher.from_base64(master).key_id]
    finally:
        holder.commit()
        holder.close()
    worker.join(60)
    assert not worker.is_alive() and outcome["result"].snapshots == 4


def test_a_rekey_killed_after_writing_every_row_leaves_the_database_unchanged(pg_server, pg_db):
    """The backend terminated while the rekey waits in its last statement (rows all written again): nothing stays."""
    import threading
    import time

    master, new = generate_key(), generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(master)) as store:
        store.migrate()
        saved = history(store, "srv")
    before = rows(pg_server, pg_db)
    pg_server.admin("CREATE FUNCTION stall() RETURNS trigger LANGUAGE plpgsql AS $$"
                    " BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$;"
                    " CREATE TRIGGER stall BEFORE UPDATE ON snapshots FOR EACH ROW EXECUTE FUNCTION stall()", pg_db)
    outcome = {}

    def run():
        try:
            with Store(pg_server.params(pg_db), None) as store:
                outcome["result"] = rekey_server(store, "srv", KeyCipher.from_base64(new),
                                                 KeyCipher.from_base64(master))
        except StoreError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=run)
    worker.start()
    pids = []
    for _attempt in range(200):  # up to 20 s to reach the snapshots' update
        pids = pg_server.admin("SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event = 'PgSleep'",
                               pg_db, (pg_db,))
        if pids:
            break
        time.sleep(0.1)
    assert pids, "the rekey never reached the update of the snapshots"
    pg_server.admin("SELECT pg_terminate_backend(%s)", pg_db, (pids[0][0],))
    worker.join(60)
    assert not worker.is_alive() and "result" not in outcome and "server closed the connection" in outcome["error"]
    assert rows(pg_server, pg_db) == before
    pg_server.admin("DROP TRIGGER stall ON snapshots", pg_db)
    assert_restores(pg_server, pg_db, "srv", master, saved)
