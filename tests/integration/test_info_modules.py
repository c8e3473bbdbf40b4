"""wg_interface_info, wg_snapshot_info and wg_fleet_info through ansible-playbook, checked by other means.

The live view against ``wg show dump`` and the file; the database views against plain SQL, read with a monitor
login that may SELECT only ``schema_version``, ``snapshots`` and ``sync_status`` (the isolation design's monitor).
"""
from __future__ import annotations

import threading
import time
import uuid

import psycopg2
import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.conftest import needs_lab
from tests.helpers.keys import PSK
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import needs_postgres

MONITOR_TABLES = ("schema_version", "snapshots", "sync_status")


def peer(i: int) -> Peer:
    return Peer(public_key=_keys.public_key(_keys.generate_private_key()), allowed_ips=(f"10.77.0.{i + 2}/32",),
                preshared_key=_keys.generate_private_key(), name=f"client {i}")


def state(peers: int) -> dict:
    return {"wg0": Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.77.0.1/24",),
                             peers=tuple(peer(i) for i in range(peers)))}


@pytest.fixture
def monitor(pg_server, pg_db):
    """A login that may read only the three monitor tables (the schema made first by the owner)."""
    name, password = f"wgmon_{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    pg_server.admin(f"CREATE ROLE {name} LOGIN PASSWORD %s", params=(password,))
    yield {"login_host": "127.0.0.1", "login_port": pg_server.port, "login_user": name, "login_password": password,
           "db": pg_db, "ssl_mode": "disable"}
    pg_server.drop_database(pg_db)
    pg_server.admin(f"DROP ROLE IF EXISTS {name}")


def grant_monitor(pg_server, db: str, login: str) -> None:
    """SELECT on the three tables; under row-level security (schema 3) also the login's monitor row, without
    which it would see no server at all."""
    pg_server.admin(f"GRANT SELECT ON {', '.join(MONITOR_TABLES)} TO {login}", dbname=db)
    if pg_server.admin("SELECT to_regclass('wgfleet_logins') IS NOT NULL", dbname=db)[0][0]:
        pg_server.admin("INSERT INTO wgfleet_logins (login, monitor) VALUES (%s, true)", dbname=db, params=(login,))


def sql(pg_server, db: str, query: str, params=None):
    return pg_server.admin(query, dbname=db, params=params)


def task(module: str, register: str = "r", **args) -> dict:
    return {"name": register, f"wgfleet.wireguard.{module}": args, "register": register, "ignore_errors": True}


# --- the live view ---------------------------------------------------------------------------------------------

@needs_lab
def test_interface_info_matches_wg_dump_and_the_file(connected):
    srv, cli = connected["srv"], connected["cli"]
    assert ping(cli["ns"], "10.10.0.1"), "no traffic through the tunnel"
    res = run_playbook([task("wg_interface_info", config_dir=srv["dir"])], netns=srv["ns"], check=True)
    assert res.rc == 0, res.output
    info = res["r"]
    dump = {row[0]: row for row in wg_dump(srv["ns"], srv["wg"])[1:]}
    assert info["changed"] is False
    assert PSK not in res.output and "PrivateKey" not in res.output
    iface = info["interfaces"][srv["wg"]]
    assert iface["running"] and iface["public_key"] == srv["public_key"] and iface["listen_port"] == 51820
    assert iface["file"] == srv["conf"]
    (p,) = iface["peers"]
    row = dump[cli["public_key"]]
    assert p["public_key"] == cli["public_key"] and p["name"] == "client one"  # the label: from the file only
    assert p["has_preshared_key"] is True and p["in_file"] and p["live"]
    assert p["latest_handshake"] == int(row[4]) > 0
    assert p["endpoint"] == row[2] and p["configured_endpoint"] is None
    # Counters only grow: what the module read lies between 1 and what wg shows just after.
    assert 0 < p["rx_bytes"] <= int(row[5]) and 0 < p["tx_bytes"] <= int(row[6])
    assert iface["counts"] == {"peers": 1, "live_only": 0, "file_only": 0, "recent_handshakes": 1,
                               "rx_bytes": p["rx_bytes"], "tx_bytes": p["tx_bytes"]}
    # A peer only the device has, and a file with a peer the device lacks: told apart.
    live_only = _keys.public_key(_keys.generate_private_key())

    sh("wg", "set", srv["wg"], "peer", live_only, "allowed-ips", "10.10.0.9/32", netns=srv["ns"])
    res = run_playbook([task("wg_interface_info", config_dir=srv["dir"], interfaces=[srv["wg"]])], netns=srv["ns"])
    peers = {p["public_key"]: p for p in res["r"]["interfaces"][srv["wg"]]["peers"]}
    assert peers[live_only]["in_file"] is False and peers[live_only]["latest_handshake"] is None
    assert res["r"]["interfaces"][srv["wg"]]["counts"]["live_only"] == 1


@needs_lab
def test_interface_info_bad_options_are_named(tunnel):
    srv = tunnel["srv"]
    for args, option in (({"recent_handshake": 0}, "recent_handshake"), ({"recent_handshake": 10 ** 9}, "recent_handshake"),
                         ({"interfaces": ["wg0\nx"]}, "interfaces"), ({"interfaces": ["a\u2028b"]}, "interfaces"),
                         ({"config_dir": "/etc/x\x00y"}, "config_dir"), ({"config_dir": ""}, "config_dir")):
        res = run_playbook([task("wg_interface_info", **{"config_dir": srv["dir"], **args})], netns=srv["ns"])
        assert res["r"].get("failed"), (args, res.output)
        assert res["r"]["msg"].startswith(option) or f"{option}:" in res["r"]["msg"], (args, res["r"]["msg"])


# --- the database views ------------------------------------------------------------------------------------------

@needs_postgres
def test_snapshot_info_with_the_monitor_login_only(pg_server, pg_db, monitor):
    cipher = KeyCipher.from_base64(generate_key())
    with Store(pg_server.params(pg_db), cipher) as store:
        store.migrate()
        base = state(3)
        store.save_state("srv-a", base)
        time.sleep(0.05)
        grown = {"wg0": base["wg0"].replace(peers=(*base["wg0"].peers, peer(7)))}
        store.save_state("srv-a", grown)
        time.sleep(0.05)
        store.save_state("srv-a", {"wg0": grown["wg0"].replace(peers=grown["wg0"].peers[1:])})
        store.save_state("srv-b", state(1))
    grant_monitor(pg_server, pg_db, monitor["login_user"])
    rows = sql(pg_server, pg_db, "SELECT id, created_at, peer_count FROM snapshots WHERE server_id = 'srv-a' ORDER BY id")
    res = run_playbook([task("wg_snapshot_info", server_id="srv-a", **monitor)], check=True)
    assert res.rc == 0, res.output
    got = res["r"]["snapshots"]
    assert res["r"]["changed"] is False
    assert [(s["id"], s["peers"]) for s in got] == [(r[0], r[2]) for r in rows] and [s["peers"] for s in got] == [3, 4, 3]
    assert all(s["encrypted"] and s["source"] == "wg_backup" and s["interfaces"] == 1 for s in got)
    middle = rows[1][1].isoformat()
    res = run_playbook([task("wg_snapshot_info", server_id="srv-a", since=middle, until=middle, **monitor),
                        task("wg_snapshot_info", "newest", server_id="srv-a", limit=2, **monitor),
                        task("wg_snapshot_info", "other", server_id="srv-b", **monitor)])
    assert [s["id"] for s in res["r"]["snapshots"]] == [rows[1][0]]
    assert [s["id"] for s in res["newest"]["snapshots"]] == [rows[1][0], rows[2][0]]
    assert [s["peers"] for s in res["other"]["snapshots"]] == [1]
    # The monitor login really may read nothing else.
    conn = psycopg2.connect(host="127.0.0.1", port=pg_server.port, user=monitor["login_user"],
                            password=monitor["login_password"], dbname=pg_db)
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT count(*) FROM peers")
    finally:
        conn.close()


class Syncing:
    """Records a successful sync of each server in ``ids`` every 0.2 s, as running services would."""

    def __init__(self, params: dict, ids: set):
        self.ids, self.stop = set(ids), threading.Event()
        self.store = Store(params, None, allow_plaintext_keys=True)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            for sid in sorted(self.ids):
                self.store.record_sync(sid, True, None, {"interfaces": 1, "peers": 2}, 0.01)
            self.stop.wait(0.2)

    def close(self):
        self.stop.set()
        self.thread.join(timeout=10)
        self.store.close()


@needs_postgres
def test_fleet_info_a_server_whose_sync_stops_goes_stale(pg_server, pg_db, monitor):
    interval, intervals = 1.0, 3
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(generate_key())) as store:
        store.migrate()
        for sid in ("srv-a", "srv-b"):
            store.save_state(sid, state(2))
    grant_monitor(pg_server, pg_db, monitor["login_user"])
    args = dict(interval=interval, stale_intervals=intervals, **monitor)
    syncing = Syncing(pg_server.params(pg_db), {"srv-a", "srv-b"})
    try:
        time.sleep(0.5)
        res = run_playbook([task("wg_fleet_info", **args)], check=True)
        assert res.rc == 0, res.output
        fleet = res["r"]
        assert fleet["changed"] is False and fleet["stale"] == [] and fleet["failing"] == [], fleet
        assert [s["server_id"] for s in fleet["servers"]] == ["srv-a", "srv-b"]
        assert all(s["peers"] == 2 and s["ok"] and s["consecutive_failures"] == 0 for s in fleet["servers"])
        # srv-b's sync stops; srv-a's goes on.
        syncing.ids.discard("srv-b")
        time.sleep(interval * intervals + 1)
        res = run_playbook([task("wg_fleet_info", **args),
                            task("wg_fleet_info", "named", servers=["srv-a", "srv-never"], **args)])
    finally:
        syncing.close()
    fleet = res["r"]
    assert fleet["stale"] == ["srv-b"] and fleet["failing"] == [], fleet
    age = sql(pg_server, pg_db, "SELECT extract(epoch FROM now() - last_success_at) FROM sync_status"
                                " WHERE server_id = 'srv-b'")[0][0]
    assert float(age) > interval * intervals
    by_id = {s["server_id"]: s for s in fleet["servers"]}
    assert by_id["srv-b"]["success_age_seconds"] > interval * intervals
    named = res["named"]
    assert [s["server_id"] for s in named["servers"]] == ["srv-a", "srv-never"]
    assert named["stale"] == ["srv-never"] and named["servers"][1]["known"] is False
    assert named["servers"][1]["sync"] is False and named["servers"][1]["last_success_at"] is None
    # srv-a then fails twice, with a message that quotes a key: failing, the count from the table, no key shown.
    leaked = _keys.generate_private_key()
    with Store(pg_server.params(pg_db), None, allow_plaintext_keys=True) as store:
        store.record_sync("srv-a", False, f"save failed: key {leaked} refused", {}, 0.01)
        store.record_sync("srv-a", False, f"save failed: key {leaked} refused", {}, 0.01)
    res = run_playbook([task("wg_fleet_info", **args)])
    by_id = {s["server_id"]: s for s in res["r"]["servers"]}
    assert "srv-a" in res["r"]["failing"] and by_id["srv-a"]["ok"] is False
    failures = sql(pg_server, pg_db, "SELECT consecutive_failures FROM sync_status WHERE server_id = 'srv-a'")[0][0]
    assert by_id["srv-a"]["consecutive_failures"] == failures == 2
    assert leaked not in res.output and "refused" in by_id["srv-a"]["error"]


@needs_postgres
def test_database_info_bad_options_are_named(pg_server, pg_db, monitor):
    with Store(pg_server.params(pg_db), None, allow_plaintext_keys=True) as store:
        store.migrate()
    grant_monitor(pg_server, pg_db, monitor["login_user"])
    cases = [
        ("wg_snapshot_info", {"server_id": "a", "since": "yesterday"}, "since"),
        ("wg_snapshot_info", {"server_id": "a", "until": "2026-01-01T00:00:00\n"}, "until"),
        ("wg_snapshot_info", {"server_id": "a", "since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ("wg_snapshot_info", {"server_id": "a", "limit": 0}, "limit"),
        ("wg_snapshot_info", {"server_id": "a", "limit": -5}, "limit"),
        ("wg_snapshot_info", {"server_id": "a", "limit": 10 ** 12}, "limit"),
        ("wg_snapshot_info", {"server_id": "a\u2029b"}, "server_id"),
        ("wg_snapshot_info", {"server_id": "a\x00b"}, "server_id"),
        ("wg_fleet_info", {"interval": 0}, "interval"),
        ("wg_fleet_info", {"interval": -60}, "interval"),
        ("wg_fleet_info", {"interval": 1e12}, "interval"),
        ("wg_fleet_info", {"interval": "nan"}, "interval"),
        ("wg_fleet_info", {"stale_intervals": 0}, "stale_intervals"),
        ("wg_fleet_info", {"stale_intervals": "inf"}, "stale_intervals"),
        ("wg_fleet_info", {"servers": ["ok", "bad\nid"]}, "servers"),
        ("wg_fleet_info", {"servers": [""]}, "servers"),
    ]
    res = run_playbook([task(module, f"t{i}", **args, **monitor) for i, (module, args, _o) in enumerate(cases)])
    for i, (module, args, option) in enumerate(cases):
        result = res[f"t{i}"]
        assert result.get("failed"), (module, args, result)
        assert result["msg"].startswith(f"{option}:"), (module, args, result["msg"])
