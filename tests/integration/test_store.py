"""The PostgreSQL store against a real server: versioning, encryption at rest, atomicity, concurrency."""
from __future__ import annotations

import base64
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import psycopg2
import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError as WgError_
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, SecretError, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_plan import assign_positions
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.helpers.postgres import grant


def make_peer(i: int, psk: bool = True, name: str | None = None) -> Peer:
    return Peer(
        public_key=_keys.public_key(_keys.generate_private_key()),
        allowed_ips=(f"10.9.{i // 250}.{i % 250 + 1}/32", f"fd09::{i:x}/128"),
        endpoint=f"198.51.100.{i % 250 + 1}:{51000 + i}" if i % 2 else None,
        preshared_key=_keys.generate_private_key() if psk else None,
        persistent_keepalive=25 if i % 3 else 0,
        name=name or f"client {i}",
    )


def make_iface(peers: int, port: int = 51820, address: str = "10.9.0.1/24") -> Interface:
    return Interface(
        private_key=_keys.generate_private_key(), listen_port=port, address=(address, "fd09::1/64"),
        dns=("10.10.0.53",), mtu=1380, table="off", pre_up=("true pre",), post_up=("echo up %i",),
        pre_down=("true",), post_down=("echo down",), fwmark=0x51, save_config=False,
        peers=tuple(make_peer(i) for i in range(peers)),
    )


@pytest.fixture
def key():
    return generate_key()


@pytest.fixture
def store(pg_server, pg_db, key):
    s = Store(pg_server.params(pg_db), KeyCipher.from_base64(key))
    s.migrate()
    yield s
    s.close()


def count(pg_server, db, sql, params=None):
    return pg_server.admin(sql, dbname=db, params=params)[0][0]


def test_round_trip_two_interfaces(store):
    state = {"wg0": make_iface(3), "wg1": make_iface(2, port=51821, address="10.8.0.1/24")}
    saved = store.save_state("srv-a", state)
    assert saved.changed and saved.snapshot_id
    assert saved.counts == {"interfaces": 2, "peers": 5, "peer_rows_written": 5}
    snap, loaded = store.load_state("srv-a")
    assert snap == saved.snapshot_id
    assert loaded == state
    _snap, only = store.load_state("srv-a", interfaces=["wg1"])
    assert only == {"wg1": state["wg1"]}


def test_an_empty_interface_list_restores_every_interface_as_wg_backup_saves_every_one(store):
    """`interfaces: []` (a `default([])` in a playbook) means every interface, in wg_restore as in wg_backup;
    it once restored nothing and reported success."""
    state = {"wg0": make_iface(1), "wg1": make_iface(1, port=51821, address="10.8.0.1/24")}
    store.save_state("srv-a", state)
    assert store.load_state("srv-a", interfaces=[])[1] == state
    assert store.load_state("srv-a", interfaces=["wg1", "wg1"])[1] == {"wg1": state["wg1"]}


def test_unchanged_state_adds_nothing(store, pg_server, pg_db):
    state = {"wg0": make_iface(20)}
    first = store.save_state("srv", state)
    again = store.save_state("srv", state)
    assert not again.changed
    assert again.snapshot_id == first.snapshot_id
    assert again.counts["peer_rows_written"] == 0
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1
    assert count(pg_server, pg_db, "SELECT count(*) FROM peers") == 20


def test_one_peer_change_writes_one_row_and_history_stays(store, pg_server, pg_db):
    iface = make_iface(50)
    first = store.save_state("srv", {"wg0": iface})
    peers = list(iface.peers)
    peers[10] = peers[10].replace(allowed_ips=("10.77.0.1/32",))
    changed = iface.replace(peers=tuple(peers))
    second = store.save_state("srv", {"wg0": changed})
    assert second.changed and second.snapshot_id > first.snapshot_id
    assert second.counts["peer_rows_written"] == 1
    # Removing a peer and appending another: one row written, nobody else's row rewritten.
    new_peer = make_peer(999)
    third_iface = changed.replace(peers=(*peers[:5], *peers[6:], new_peer))
    third = store.save_state("srv", {"wg0": third_iface})
    assert third.counts["peer_rows_written"] == 1
    assert count(pg_server, pg_db, "SELECT count(*) FROM peers") == 52
    assert store.load_state("srv", first.snapshot_id)[1] == {"wg0": iface}
    assert store.load_state("srv", second.snapshot_id)[1] == {"wg0": changed}
    assert store.load_state("srv")[1] == {"wg0": third_iface}


def test_reordered_and_inserted_peers_keep_their_order(store):
    iface = make_iface(6)
    store.save_state("srv", {"wg0": iface})
    p = list(iface.peers)
    reordered = iface.replace(peers=(p[0], make_peer(100), p[1], p[5], p[2], p[3], p[4]))
    saved = store.save_state("srv", {"wg0": reordered})
    assert saved.counts["peer_rows_written"] <= 3
    assert store.load_state("srv")[1]["wg0"] == reordered


def test_assign_positions_keeps_what_it_can():
    peers = [make_peer(i, psk=False) for i in range(4)]
    stored = dict(zip([q.public_key for q in peers], [0, 1 << 20, 2 << 20, 3 << 20], strict=True))
    inserted = [peers[0], make_peer(50, psk=False), *peers[1:]]
    positions = assign_positions(inserted, stored)
    assert positions == sorted(set(positions))
    assert [positions[0], *positions[2:]] == [0, 1 << 20, 2 << 20, 3 << 20]


def test_two_servers_share_a_database(store):
    a = {"wg0": make_iface(3)}
    b = {"wg0": make_iface(4)}
    store.save_state("server-a", a)
    store.save_state("server-b", b)
    # An unchanged re-save of A after B is still no change: servers have separate histories.
    assert not store.save_state("server-a", a).changed
    assert store.load_state("server-a")[1] == a
    assert store.load_state("server-b")[1] == b
    with pytest.raises(StoreError, match="'server-c' has no snapshot"):
        store.load_state("server-c")


def test_older_snapshot_by_id_and_by_time(store, pg_server, pg_db):
    old = {"wg0": make_iface(2)}
    first = store.save_state("srv", old)
    time.sleep(0.05)
    new = {"wg0": old["wg0"].replace(listen_port=51999), "wg1": make_iface(1, port=51001)}
    second = store.save_state("srv", new)
    taken = dict(pg_server.admin("SELECT id, created_at FROM snapshots", dbname=pg_db))
    between = taken[first.snapshot_id] + (taken[second.snapshot_id] - taken[first.snapshot_id]) / 2
    assert store.load_state("srv", first.snapshot_id) == (first.snapshot_id, old)
    assert store.load_state("srv", between.isoformat()) == (first.snapshot_id, old)
    assert store.load_state("srv", taken[second.snapshot_id].isoformat()) == (second.snapshot_id, new)
    with pytest.raises(StoreError, match="no snapshot taken at or before"):
        store.load_state("srv", "2000-01-01T00:00:00Z")
    with pytest.raises(StoreError, match="is not a snapshot of server"):
        store.load_state("srv", 10**9)
    with pytest.raises(StoreError, match="no interface 'wg9'"):
        store.load_state("srv", interfaces=["wg9"])


def test_wrong_encryption_key_is_a_clear_error_and_writes_nothing(store, pg_server, pg_db):
    state = {"wg0": make_iface(3)}
    saved = store.save_state("srv", state)
    other_key = generate_key()
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(other_key)) as wrong:
        with pytest.raises(StoreError) as info:
            wrong.load_state("srv")
        assert f"encryption_key does not match the key that encrypted snapshot {saved.snapshot_id}" in str(info.value)
        changed = {"wg0": state["wg0"].replace(listen_port=4000)}
        with pytest.raises(StoreError, match="encryption_key does not match"):
            wrong.save_state("srv", changed)
        assert other_key not in str(info.value), "encryption key leaked"
    with Store(pg_server.params(pg_db), None) as keyless, pytest.raises(StoreError, match="give its encryption_key"):
        keyless.load_state("srv")
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1
    assert count(pg_server, pg_db, "SELECT count(*) FROM interfaces") == 1


def test_plaintext_keys_only_when_allowed(pg_server, pg_db):
    state = {"wg0": make_iface(2)}
    with Store(pg_server.params(pg_db), None) as refusing:
        refusing.migrate()
        with pytest.raises(WgError_, match="allow_plaintext_keys"):
            refusing.save_state("srv", state)
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 0
    with Store(pg_server.params(pg_db), None, allow_plaintext_keys=True) as plain:
        plain.save_state("srv", state)
        assert plain.load_state("srv")[1] == state


def test_stored_private_key_is_unusable_without_the_encryption_key(store, pg_server, pg_db):
    state = {"wg0": make_iface(3)}
    store.save_state("srv", state)
    (raw_key, pub), = pg_server.admin("SELECT private_key, public_key FROM server_keys", dbname=pg_db)
    raw_key = bytes(raw_key)
    private = state["wg0"].private_key
    assert private.encode() not in raw_key, "private key stored in clear"
    assert base64.b64decode(private) not in raw_key, "raw private key stored in clear"
    assert pub == _keys.public_key(private)
    other = KeyCipher.from_base64(generate_key())
    with pytest.raises(SecretError):
        other.open(raw_key, b"server_key\x1fsrv\x1fwg0")
    psks = [bytes(r[0]) for r in pg_server.admin("SELECT preshared_key FROM peers", dbname=pg_db)]
    for peer, blob in zip(state["wg0"].peers, psks, strict=False):
        assert peer.preshared_key.encode() not in blob, "preshared key stored in clear"
    dump = str(pg_server.admin("SELECT * FROM peers", dbname=pg_db)) + str(
        pg_server.admin("SELECT * FROM server_keys", dbname=pg_db))
    assert private not in dump, "private key stored in clear"


def test_damaged_rows_are_reported(store, pg_server, pg_db):
    state = {"wg0": make_iface(3)}
    store.save_state("srv", state)
    victim = state["wg0"].peers[1].public_key
    pg_server.admin("UPDATE peers SET allowed_ips = '{10.66.0.0/16}' WHERE public_key = %s", dbname=pg_db,
                    params=(victim,))
    with pytest.raises(StoreError, match=re.escape(f"peer {victim} of interface wg0 is damaged")):
        store.load_state("srv")
    pg_server.admin("UPDATE peers SET allowed_ips = %s WHERE public_key = %s", dbname=pg_db,
                    params=(list(state["wg0"].peers[1].allowed_ips), victim))
    assert store.load_state("srv")[1] == state
    pg_server.admin("UPDATE server_keys SET private_key = overlay(private_key placing '\\x00'::bytea from 30)",
                    dbname=pg_db)
    with pytest.raises(StoreError, match="private key of interface wg0 is damaged"):
        store.load_state("srv")


def test_database_unreachable_is_a_clear_error(pg_server, pg_db, key):
    params = pg_server.params(pg_db)
    params["port"] = _unused_port()
    with pytest.raises(StoreError) as info:
        Store(params, KeyCipher.from_base64(key))
    message = str(info.value)
    assert message.startswith(f"cannot connect to PostgreSQL at 127.0.0.1:{params['port']}/{pg_db}:")
    assert params["password"] not in message
    bad_password = dict(pg_server.params(pg_db), password="wrong-password-123")
    with pytest.raises(StoreError, match="password authentication failed") as info:
        Store(bad_password, None)
    assert "wrong-password-123" not in str(info.value)
    with pytest.raises(StoreError, match="does not exist"):
        Store(pg_server.params("no_such_db"), None)


def test_server_going_away_mid_session_writes_nothing(store, pg_server, pg_db):
    state = {"wg0": make_iface(2)}
    first = store.save_state("srv", state)
    pg_server.stop()
    try:
        with pytest.raises(StoreError, match=r"PostgreSQL at 127\.0\.0\.1"):
            store.save_state("srv", {"wg0": state["wg0"].replace(mtu=1400)})
    finally:
        pg_server.start()
    # The store reconnects by itself once the server is back.
    assert store.load_state("srv") == (first.snapshot_id, state)


SLOW_SAVE = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, os.environ["COLLECTIONS"])
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import parse
    store = Store(json.loads(os.environ["PG"]), KeyCipher.from_base64(os.environ["KEY"]))
    store.save_state("srv", {"wg0": parse(sys.stdin.read())})
    print("saved")
""")


@pytest.mark.parametrize("how", ["kill_process", "terminate_backend"])
def test_backup_killed_in_the_middle_leaves_previous_snapshot(store, pg_server, pg_db, key, how):
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import render
    from tests.helpers.playbook import COLLECTIONS

    state = {"wg0": make_iface(200)}
    first = store.save_state("srv", state)
    size_before = count(pg_server, pg_db, "SELECT pg_relation_size('peers')")
    changed = state["wg0"].replace(peers=tuple(p.replace(persistent_keepalive=7) for p in state["wg0"].peers))
    blocker = psycopg2.connect(**pg_server.params(pg_db))
    try:
        with blocker.cursor() as cur:
            # The save writes its rows, then waits here to add the snapshot row: killed while holding them.
            cur.execute("LOCK TABLE snapshots IN SHARE MODE")
        env = dict(os.environ, COLLECTIONS=str(COLLECTIONS), PG=__import__("json").dumps(pg_server.params(pg_db)),
                   KEY=key)
        proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, text=True)
        proc.stdin.write(render(changed))
        proc.stdin.close()
        pid = _wait_for_blocked_backend(pg_server, pg_db)
        # Uncommitted rows take room already: the save is past its COPY of 200 new peer rows.
        grown = count(pg_server, pg_db, "SELECT pg_relation_size('peers')") > size_before
        if how == "kill_process":
            proc.send_signal(signal.SIGKILL)
        else:
            pg_server.admin("SELECT pg_terminate_backend(%s)", params=(pid,))
        proc.wait(timeout=30)
        assert proc.returncode != 0
    finally:
        blocker.rollback()
        blocker.close()
    assert grown, "the save was killed before it wrote its peer rows"
    # The killed save's backend goes away (it rolls back) once PostgreSQL notices.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and count(
            pg_server, pg_db, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)):
        time.sleep(0.05)
    assert count(pg_server, pg_db, "SELECT count(*) FROM snapshots") == 1
    assert count(pg_server, pg_db, "SELECT count(*) FROM peers") == 200
    assert store.load_state("srv") == (first.snapshot_id, state)
    # And the next backup goes through.
    assert store.save_state("srv", {"wg0": changed}).counts["peer_rows_written"] == 200


def _wait_for_blocked_backend(pg_server, db) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rows = pg_server.admin(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'"
            " AND query LIKE 'INSERT INTO snapshots%%'", params=(db,))
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError("the save never reached the snapshot insert")


def _migrate(params):
    with Store(params, None) as s:
        s.migrate()


def test_concurrent_migrations_on_an_empty_database(pg_server, pg_db):
    params = pg_server.params(pg_db)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_migrate, args=(params,)) for _unused in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert pg_server.admin("SELECT version FROM schema_version ORDER BY 1", dbname=pg_db) == [(1,), (2,), (3,), (4,)]
    tables = {r[0] for r in pg_server.admin(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public'", dbname=pg_db)}
    assert {"snapshots", "interfaces", "server_keys", "peers", "sync_status", "schema_version"} <= tables
    _migrate(params)  # idempotent
    assert pg_server.admin("SELECT count(*) FROM schema_version", dbname=pg_db) == [(4,)]


def test_a_store_of_another_schema_is_refused_and_the_store_stays_usable(pg_server, pg_db, key):
    """Every load and save checks the schema first: none, older or newer is refused, saying what to do; the
    refusal leaves the connection usable (the next call, after the fix, works)."""
    state = {"wg0": make_iface(2)}
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(key)) as store:
        for call in (lambda: store.load_state("srv"), lambda: store.save_state("srv", state)):
            with pytest.raises(StoreError, match=r"holds no wgfleet state yet \(no schema; run wg_backup first\)"):
                call()
        store.migrate()
        store.save_state("srv", state)
        version = pg_server.admin("SELECT max(version) FROM schema_version", dbname=pg_db)[0][0]
        pg_server.admin(f"INSERT INTO schema_version (version, description) VALUES ({version + 1}, 'future')",
                        dbname=pg_db)
        with pytest.raises(StoreError, match=rf"schema version {version + 1}, newer than this collection knows"):
            store.load_state("srv")
        pg_server.admin(f"DELETE FROM schema_version WHERE version >= {version}", dbname=pg_db)
        with pytest.raises(StoreError, match=rf"schema version {version - 1}, older than this collection's"):
            store.save_state("srv", state)
        pg_server.admin(f"INSERT INTO schema_version (version, description) VALUES ({version}, 'back')",
                        dbname=pg_db)
        assert store.load_state("srv")[1] == state


def test_check_mode_writes_nothing(pg_server, pg_db, key):
    state = {"wg0": make_iface(2)}
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(key)) as s:
        predicted = s.save_state("srv", state, check_mode=True)
        assert predicted.changed and predicted.snapshot_id is None
        assert s.schema_version() == 0
        s.migrate()
        predicted = s.save_state("srv", state, check_mode=True)
        assert predicted.changed and predicted.counts["peer_rows_written"] == 2
        assert count(pg_server, pg_db, "SELECT count(*) FROM peers") == 0
        saved = s.save_state("srv", state)
        assert s.save_state("srv", state, check_mode=True) == (type(saved))(saved.snapshot_id, False, {
            "interfaces": 1, "peers": 2, "peer_rows_written": 0})


def test_partial_save_keeps_other_interfaces(store):
    both = {"wg0": make_iface(2), "wg1": make_iface(1, port=51001)}
    store.save_state("srv", both)
    wg1 = both["wg1"].replace(mtu=1300)
    saved = store.save_state("srv", {"wg1": wg1}, partial=True)
    assert saved.counts == {"interfaces": 2, "peers": 3, "peer_rows_written": 0}
    assert store.load_state("srv")[1] == {"wg0": both["wg0"], "wg1": wg1}
    # A full save without wg0 removes it from the new state only.
    store.save_state("srv", {"wg1": wg1})
    assert list(store.load_state("srv")[1]) == ["wg1"]


def test_record_sync_upserts(store):
    store.record_sync("srv", False, "wgrest unreachable", {"peers": 0}, 0.5)
    store.record_sync("srv", False, "wgrest unreachable", {"peers": 0}, 0.5)
    status = store.sync_status("srv")
    assert status["consecutive_failures"] == 2 and not status["ok"] and status["last_success_at"] is None
    store.record_sync("srv", True, None, {"peers": 12}, 1.25)
    status = store.sync_status("srv")
    assert status["ok"] and status["consecutive_failures"] == 0 and status["counts"] == {"peers": 12}
    assert status["last_success_at"] is not None
    assert store.sync_status("other") is None


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_module_connection_options(tmp_path):
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._db_module import (
        connection_params,
        database_argument_spec,
    )

    spec = database_argument_spec()
    assert spec["login_password"]["no_log"] and spec["db"]["default"] == "wgrest_backup"
    assert "port" in spec["login_port"]["aliases"] and "login_db" in spec["db"]["aliases"]
    spec["db"]["default"] = "changed"
    assert database_argument_spec()["db"]["default"] == "wgrest_backup", "each call must give a fresh dict"
    params = {k: v.get("default") for k, v in database_argument_spec().items()}
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here, only that it can be read\n")
    params.update(login_host="db.example.org", login_password="pw", ca_cert=str(ca), ssl_mode="verify-full")
    assert connection_params(params) == {
        "host": "db.example.org", "port": 5432, "user": "postgres", "password": "pw", "dbname": "wgrest_backup",
        "sslmode": "verify-full", "sslrootcert": str(ca), "connect_timeout": 10}
    params["login_unix_socket"] = "/run/postgresql"
    assert connection_params(params)["host"] == "/run/postgresql"


def test_plain_text_history_upgrades_to_encrypted(pg_server, pg_db, key):
    both = {"wg0": make_iface(2), "wg1": make_iface(1, port=51001)}
    with Store(pg_server.params(pg_db), None, allow_plaintext_keys=True) as plain:
        plain.migrate()
        first = plain.save_state("srv", both)
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(key)) as sealed:
        with pytest.raises(StoreError, match="must cover every interface"):
            sealed.save_state("srv", {"wg1": both["wg1"]}, partial=True)
        upgraded = sealed.save_state("srv", both)
        assert upgraded.changed and upgraded.counts["peer_rows_written"] == 3
        assert sealed.load_state("srv") == (upgraded.snapshot_id, both)
        # The plain-text snapshot before it is not restored with the key (nothing vouches for it) but without.
        with pytest.raises(StoreError, match=f"snapshot {first.snapshot_id} of server 'srv' is not encrypted"):
            sealed.load_state("srv", first.snapshot_id)
    with Store(pg_server.params(pg_db), None) as keyless:
        assert keyless.load_state("srv", first.snapshot_id) == (first.snapshot_id, both)
    raw = bytes(pg_server.admin("SELECT private_key FROM server_keys WHERE interface = 'wg0' AND valid_to IS NULL",
                                dbname=pg_db)[0][0])
    assert both["wg0"].private_key.encode() not in raw, "private key still in clear after the upgrade"


# --- forged and tampered snapshots: someone who can write to the database but has no encryption key ---------


def _copy_server_rows(pg_server, src_db: str, dst_db: str, server_id: str, snap_id: int) -> None:
    """Put the latest state of ``server_id`` in ``src_db`` into ``dst_db`` as its snapshot ``snap_id``, as
    an attacker with write access to ``dst_db`` would: the victim's current rows end there, the forged ones start."""
    import psycopg2.extras

    src = psycopg2.connect(**pg_server.params(src_db))
    dst = psycopg2.connect(**pg_server.params(dst_db))
    try:
        with src.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as scur, dst.cursor() as dcur:
            for table in ("interfaces", "server_keys", "peers"):
                dcur.execute(f"UPDATE {table} SET valid_to = %s WHERE server_id = %s AND valid_to IS NULL",
                             (snap_id, server_id))
                scur.execute(f"SELECT * FROM {table} WHERE server_id = %s AND valid_to IS NULL", (server_id,))
                for row in scur.fetchall():
                    row["valid_from"] = snap_id
                    if "settings" in row:
                        row["settings"] = psycopg2.extras.Json(row["settings"])
                    cols = ", ".join(row)
                    dcur.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(row))})",
                                 list(row.values()))
            scur.execute("SELECT * FROM snapshots WHERE server_id = %s ORDER BY id DESC LIMIT 1", (server_id,))
            snap = dict(scur.fetchone())
            snap["id"] = snap_id
            if snap.get("interface_digests") is not None:
                from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_codec import snapshot_seal

                snap["seal"] = snapshot_seal(None, server_id, snap_id, None, snap["interface_digests"])
                snap["interface_digests"] = psycopg2.extras.Json(snap["interface_digests"])
            dcur.execute(f"INSERT INTO snapshots ({', '.join(snap)}) VALUES ({', '.join(['%s'] * len(snap))})",
                         list(snap.values()))
        dst.commit()
    finally:
        src.close()
        dst.close()


def test_a_forged_plain_text_snapshot_is_refused_with_the_key(store, pg_server, pg_db):
    genuine = {"wg0": make_iface(2)}
    store.save_state("srv", genuine)
    attacker_state = {"wg0": make_iface(0).replace(peers=(Peer(public_key=_keys.public_key(
        _keys.generate_private_key()), allowed_ips=("0.0.0.0/0",)),))}
    scratch = pg_server.create_database("t_forge_" + os.urandom(4).hex())
    try:
        with Store(pg_server.params(scratch), None, allow_plaintext_keys=True) as attacker:
            attacker.migrate()
            attacker.save_state("srv", attacker_state)
        _copy_server_rows(pg_server, scratch, pg_db, "srv", 1000)
    finally:
        pg_server.drop_database(scratch)
    with pytest.raises(StoreError, match="snapshot 1000 of server 'srv' is not encrypted") as info:
        store.load_state("srv")
    assert attacker_state["wg0"].private_key not in str(info.value)
    # With the key id of the real key set on it, it is still not sealed by that key.
    pg_server.admin("UPDATE snapshots SET key_id = (SELECT key_id FROM snapshots WHERE id = 1) WHERE id = 1000",
                    dbname=pg_db)
    with pytest.raises(StoreError, match="snapshot 1000 of server 'srv' is damaged"):
        store.load_state("srv")


def test_a_revoked_peer_brought_back_by_editing_rows_is_refused(store, pg_server, pg_db):
    iface = make_iface(3)
    store.save_state("srv", {"wg0": iface})
    revoked = iface.peers[1]
    store.save_state("srv", {"wg0": iface.replace(peers=(iface.peers[0], iface.peers[2]))})
    # Its row is still there, closed: reopen it in the latest snapshot.
    pg_server.admin("UPDATE peers SET valid_to = NULL WHERE public_key = %s", dbname=pg_db, params=(revoked.public_key,))
    with pytest.raises(StoreError, match="interface wg0 is damaged"):
        store.load_state("srv")
    pg_server.admin("UPDATE peers SET valid_to = 2 WHERE public_key = %s", dbname=pg_db, params=(revoked.public_key,))
    assert revoked.public_key not in store.load_state("srv")[1]["wg0"].peer_map()
    # Dropping a current row is seen too.
    pg_server.admin("DELETE FROM peers WHERE public_key = %s", dbname=pg_db, params=(iface.peers[2].public_key,))
    with pytest.raises(StoreError, match="interface wg0 is damaged"):
        store.load_state("srv")


def test_an_unsealed_snapshot_newer_than_a_sealed_one_is_refused(store, pg_server, pg_db):
    saved = store.save_state("srv", {"wg0": make_iface(1)})
    pg_server.admin("INSERT INTO snapshots (id, server_id, source, key_id, interface_count, peer_count,"
                    " peer_rows_written) SELECT 500, server_id, source, key_id, interface_count, peer_count, 0"
                    " FROM snapshots WHERE id = %s", dbname=pg_db, params=(saved.snapshot_id,))
    with pytest.raises(StoreError, match="snapshot 500 of server 'srv' has no seal but is newer"):
        store.load_state("srv")


# --- least privilege: exactly the database role's GRANTs (the docs show the same, tests/unit/test_grants.py) ---


def test_logins_with_only_the_roles_grants(pg_server, pg_db, logins, key):
    cipher = KeyCipher.from_base64(key)
    with Store(logins["owner"], None) as owner:
        assert owner.migrate() is True
    grant(pg_server, logins, pg_db, "srv")

    state = {"wg0": make_iface(3), "wg1": make_iface(1, port=51001, address="10.8.0.1/24")}
    with Store(logins["server"], cipher) as sync:
        assert sync.migrate() is False  # a current schema: read, nothing created
        first = sync.save_state("srv", state, source="wgrest_sync", guard=True)
        changed = {**state, "wg0": state["wg0"].replace(peers=state["wg0"].peers[1:], mtu=1300)}
        second = sync.save_state("srv", changed, source="wgrest_sync", guard=True)
        assert second.changed and second.snapshot_id > first.snapshot_id
        assert not sync.save_state("srv", changed, guard=True).changed
        sync.save_state("srv", {"wg1": state["wg1"].replace(listen_port=51002)}, partial=True)
        sync.record_sync("srv", True, None, {"peers": 3}, 0.1)
        sync.record_sync("srv", False, "wgrest unreachable", {}, 0.1)
        assert sync.load_state("srv", second.snapshot_id) == (second.snapshot_id, changed)
    with Store(logins["monitor"], None) as monitor:
        assert monitor.migrate() is False
        assert [s.id for s in monitor.list_snapshots("srv")][:2] == [first.snapshot_id, second.snapshot_id]
    for kind, sql in (("server", "DELETE FROM peers"), ("server", "UPDATE peers SET allowed_ips = '{}'"),
                      ("server", "CREATE TABLE x (a int)"), ("server", "SELECT * FROM wgfleet_logins"),
                      ("monitor", "UPDATE snapshots SET source = 'x'"), ("monitor", "SELECT * FROM peers")):
        conn = psycopg2.connect(**logins[kind])
        try:
            with pytest.raises(psycopg2.Error, match="permission denied"), conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()


def test_wg_backup_schema_only_with_the_owners_login(pg_server, pg_db, logins):
    from tests.helpers.playbook import run_playbook

    owner = logins["owner"]
    args = {"login_host": owner["host"], "login_port": owner["port"], "login_user": owner["user"],
            "login_password": owner["password"], "db": pg_db, "schema_only": True}
    res = run_playbook([
        {"name": "predict", "wgfleet.wireguard.wg_backup": args, "check_mode": True},
        {"name": "create", "wgfleet.wireguard.wg_backup": args},
        {"name": "again", "wgfleet.wireguard.wg_backup": args},
    ])
    assert res.rc == 0, res.output[-2000:]
    assert res["predict"]["changed"] and res["predict"]["schema_version"] == {"before": 0, "after": 4}
    assert res["create"]["changed"] and not res["again"]["changed"]
    grant(pg_server, logins, pg_db, "srv")
    as_sync = {**args, "login_user": logins["server"]["user"], "login_password": logins["server"]["password"]}
    res = run_playbook([{"name": "as sync", "wgfleet.wireguard.wg_backup": as_sync}])
    assert res.rc == 0 and not res["as sync"]["changed"], res.output[-2000:]  # nothing to do: no right needed
    assert owner["password"] not in res.output
    assert pg_server.admin("SELECT tableowner FROM pg_tables WHERE tablename = 'peers'", dbname=pg_db) == [
        (owner["user"],)]
    assert pg_server.admin("SELECT count(*) FROM snapshots", dbname=pg_db) == [(0,)]
