"""The fleet's database as a primary and a streaming standby (two real PostgreSQL 15 servers on 127.0.0.1):
the real wgrest-sync (its own process, a real wireguard-go interface and the real wgrest) connects through the
host list; the primary dies (SIGKILL) in the middle of a save, after a save the standby never received (an
asynchronous failover's loss); a restore reads the standby meanwhile; the standby is promoted, and within two
intervals the sync stores the live state there again. Verified with SQL on the promoted server against
``wg show dump`` and the wg-quick file, not with the store's reader. The sync and the restore use the
server's own login (schema version 3: row-level security), and on the promoted server each login still sees
and writes only its own server's rows.

Run with ``-s`` to see the recovery point and the time to the first good save.
"""
from __future__ import annotations

import json
import socket
import time
import uuid

import psycopg2
import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _secrets
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import PostgresServer, ensure_group_roles, grant_sql, needs_postgres, role_privileges
from tests.helpers.replication import Standby, kill
from tests.integration.test_wgrest_sync import SERVER_ID, Setup, api_peer

pytestmark = [needs_lab, needs_postgres, pytest.mark.lab]
INTERVAL = 3.0
BULK = 600  # peers added at once: the save the primary dies in


@pytest.fixture
def cluster():
    primary = PostgresServer()
    standby = None
    try:
        db = primary.create_database("wgfleet_failover")
        standby = Standby(primary)
        yield primary, standby, db
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


OTHER_ID = "srv-failover-other"
LOGINS = {SERVER_ID: ("wgfleet_failover_a", "pw-a-" + uuid.uuid4().hex[:10]),
          OTHER_ID: ("wgfleet_failover_b", "pw-b-" + uuid.uuid4().hex[:10])}


def prepare_schema(primary, db, cipher) -> None:
    """What the database role does, on the primary (replicated from there): the schema, the group roles' GRANTs,
    a login per server mapped in wgfleet_logins; and a snapshot of another server, for the logins not to see."""
    with Store(primary.params(db), cipher) as store:
        store.migrate()
    ensure_group_roles(primary)
    primary.admin(grant_sql(role_privileges(db)), dbname=db)
    for server_id, (login, password) in LOGINS.items():
        primary.admin(f"CREATE ROLE {login} LOGIN PASSWORD %s IN ROLE wgfleet_server", params=(password,))
        sql(primary, db, "INSERT INTO wgfleet_logins (login, server_id) VALUES (%s, %s)", (login, server_id))
    sql(primary, db, "INSERT INTO snapshots (server_id, source, interface_count, peer_count, peer_rows_written)"
        " VALUES (%s, 'test', 0, 0, 0)", (OTHER_ID,))


def as_login(server, db, server_id: str, query: str, params=None):
    login, password = LOGINS[server_id]
    conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=login, password=password, dbname=db)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


@pytest.fixture
def replicated(lab, cluster, tmp_path):
    primary, standby, db = cluster
    made = Setup(lab, primary, db, tmp_path)
    prepare_schema(primary, db, _secrets.KeyCipher.from_file(str(made.key_file)))
    login, password = LOGINS[SERVER_ID]
    (tmp_path / "loginpw").write_text(password + "\n")
    made.env.update(WGSYNC_DB_HOST="127.0.0.1,127.0.0.1", WGSYNC_DB_PORT=f"{primary.port},{standby.port}",
                    WGSYNC_INTERVAL=str(INTERVAL), WGSYNC_DB_USER=login,
                    WGSYNC_DB_PASSWORD_FILE=str(tmp_path / "loginpw"))
    try:
        yield made, primary, standby, db
    finally:
        made.stop()


def sql(server, db, query, params=None):
    return server.admin(query, dbname=db, params=params)


def latest_snapshot(server, db) -> tuple[int, object]:
    row = sql(server, db, "SELECT id, created_at FROM snapshots WHERE server_id = %s ORDER BY id DESC LIMIT 1",
              (SERVER_ID,))
    return row[0] if row else (0, None)


def add_bulk(setup: Setup, count: int, first: int = 0) -> set[str]:
    """Peers straight onto the device (wgrest lists them like its own), each with a preshared key; addresses
    from number ``first`` on (a peer given another's address takes it from that one, as WireGuard does)."""
    keys = [new_key() for _n in range(count)]
    conf = "".join(f"[Peer]\nPublicKey = {k}\nPresharedKey = {new_key()}\n"
                   f"AllowedIPs = 10.232.{i // 250}.{i % 250 + 1}/32\n" for i, k in enumerate(keys, first))
    setup.host.run("wg", "addconf", setup.name, "/dev/stdin", input=conf)
    return set(keys)


def file_settings(path) -> dict:
    """A tiny reader of the wg-quick file's [Interface] keys (independent of the collection's parser)."""
    out, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Interface]" and "=" in line and not line.startswith("#"):
            key, value = (p.strip() for p in line.split("=", 1))
            out[key] = value
    return out


def assert_holds_the_live_state(setup: Setup, server, db) -> int:
    """The server's current rows in ``server`` (SQL) are exactly the device (``wg show dump``) and the file."""
    dump = setup.host.dump(setup.name)
    own, peers = dump[0], {row[0]: row for row in dump[1:]}
    rows = sql(server, db, "SELECT public_key, allowed_ips, endpoint, persistent_keepalive, preshared_key IS NOT NULL,"
               " name FROM peers WHERE server_id = %s AND interface = %s AND valid_to IS NULL", (SERVER_ID, setup.name))
    stored = {r[0]: r for r in rows}
    assert set(stored) == set(peers), (f"{len(set(peers) - set(stored))} live peers missing, "
                                       f"{len(set(stored) - set(peers))} stored peers not live")
    for key, row in peers.items():
        _key, psk, endpoint, allowed, _hs, _rx, _tx, keepalive = row
        got = stored[key]
        assert allowed != "(none)" and set(got[1]) == set(allowed.split(",")), (key, got, row)
        assert got[3] == (0 if keepalive == "off" else int(keepalive))
        assert got[4] == (psk != "(none)") and (got[2] is None) == (endpoint == "(none)")
    assert stored[setup.file_peer.public_key][5] == "from-file", "the file's label was not stored"
    key_rows = sql(server, db, "SELECT public_key FROM server_keys WHERE server_id = %s AND interface = %s"
                   " AND valid_to IS NULL", (SERVER_ID, setup.name))
    assert key_rows == [(own[1],)], "the stored server key is not the device's"
    settings = sql(server, db, "SELECT settings FROM interfaces WHERE server_id = %s AND name = %s AND valid_to IS NULL",
                   (SERVER_ID, setup.name))[0][0]
    on_file = file_settings(setup.etc / f"{setup.name}.conf")
    assert settings["listen_port"] == int(own[2]) == int(on_file["ListenPort"])
    assert settings["address"] == [a.strip() for a in on_file["Address"].split(",")]
    count = sql(server, db, "SELECT peer_count FROM snapshots WHERE server_id = %s ORDER BY id DESC LIMIT 1",
                (SERVER_ID,))[0][0]
    assert count == len(peers), "the latest snapshot's peer count is not the device's"
    return len(peers)


def duplicates(server, db) -> int:
    """Snapshots that store the same state as the one before them (a save that should have written nothing)."""
    return sql(server, db, """
        SELECT count(*) FROM (SELECT interface_digests, lag(interface_digests) OVER (ORDER BY id) AS before
                              FROM snapshots WHERE server_id = %s) s WHERE interface_digests = before""",
               (SERVER_ID,))[0][0]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} within {timeout} s")


def test_the_sync_survives_losing_the_primary_mid_save_and_heals_the_lost_save(replicated, tmp_path):
    setup, primary, standby, db = replicated
    setup.backend.apply([api_peer(n) for n in range(20, 60)], False, False)
    add_bulk(setup, 200)
    setup.start()
    setup.wait_status(lambda s: s["ok"], timeout=40)
    standby.caught_up()
    kept_id, _kept_time = latest_snapshot(primary, db)
    assert latest_snapshot(standby, db)[0] == kept_id > 0
    kept_peers = {r[0] for r in sql(standby, db, "SELECT public_key FROM peers WHERE server_id = %s AND valid_to IS NULL",
                                    (SERVER_ID,))}
    assert f"connected to the database at 127.0.0.1:{primary.port}" in setup.log()

    # A save the standby never receives (asynchronous replication: the newest commits are what a failover loses).
    standby.detach()
    lost_peer = api_peer(99)
    setup.backend.apply([lost_peer], False, False)
    lost_id, lost_at = wait_for(lambda: latest_snapshot(primary, db)[0] > kept_id and latest_snapshot(primary, db),
                                INTERVAL + 10, "the sync did not store the new peer on the primary")

    # The next save stalls with its rows written but its snapshot row not yet in (another session holds SHARE on
    # snapshots, which its INSERT waits for), and the primary dies right there.
    blocker = psycopg2.connect(**primary.params(db))
    blocker.cursor().execute("LOCK TABLE snapshots IN SHARE MODE")
    bulk = add_bulk(setup, BULK, first=1000)
    wait_for(lambda: sql(primary, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name ="
                         " 'wgrest-sync' AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO snapshots%%'")[0][0],
             INTERVAL + 20, "no save of the bulk change reached its snapshot row")
    in_flight = primary.admin("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE"
                              " a.application_name = 'wgrest-sync' AND l.relation = 'peers'::regclass AND"
                              " l.mode = 'RowExclusiveLock'", dbname=db)[0][0]
    assert in_flight == 1, "the save had not written peer rows yet"
    killed = kill(primary)
    blocker.close()

    # Meanwhile: each cycle fails and says so locally (the database cannot take the record); the service lives on.
    status = setup.wait_status(lambda s: not s["ok"], timeout=INTERVAL + 10)
    assert "save failed" in status["error"] and setup.key not in json.dumps(status)
    meanwhile = status["error"]
    wait_for(lambda: "could not record the sync status in the database" in setup.log(), INTERVAL + 10,
             "the lost record was not logged")
    assert setup.daemon.poll() is None, "the service died with the primary"

    # A restore reads the standby while the primary is down (the same host list, as a YAML list).
    restored = tmp_path / "restored"
    res = run_playbook([{"name": "restore", "ignore_errors": True, "wgfleet.wireguard.wg_restore": {
        "server_id": SERVER_ID, "config_dir": str(restored), "interfaces": [setup.name], "encryption_key": setup.key,
        "login_host": ["127.0.0.1", "127.0.0.1"], "login_port": [primary.port, standby.port],
        "login_user": LOGINS[SERVER_ID][0], "login_password": LOGINS[SERVER_ID][1], "db": db, "ssl_mode": "disable",
        "connect_timeout": 3}}])
    result = res["restore"]
    assert not result.get("failed"), result.get("msg")
    assert result["snapshot_id"] == kept_id
    restored_keys = {line.split("=", 1)[1].strip() for line in (restored / f"{setup.name}.conf").read_text().splitlines()
                     if line.replace(" ", "").startswith("PublicKey=")}
    assert restored_keys == kept_peers and lost_peer.public_key not in restored_keys

    # While no host takes writes, each cycle says why: the standby is read-only (the primary refuses to connect).
    read_only = wait_for(lambda: "read-only" in (setup.status().get("error") or "") and setup.status()["error"],
                         INTERVAL + 10, "the sync never said that the only host left is read-only")
    assert read_only.startswith("save failed: cannot connect to PostgreSQL at (127.0.0.1:"), read_only
    assert "\n" not in read_only and f'port {standby.port} failed: session is read-only' in read_only, read_only
    assert standby.in_recovery()
    standby.promote()
    promoted = time.monotonic()
    status = setup.wait_status(lambda s: s["ok"] and s["counts"].get("snapshot_id", 0) > kept_id,
                               timeout=2 * INTERVAL + 15)
    healed = time.monotonic()
    assert healed - promoted <= 2 * INTERVAL, f"the first good save came {healed - promoted:.1f} s after promotion"
    assert f"connected to the database at 127.0.0.1:{standby.port}" in setup.log()

    # The promoted database holds exactly the live state: the lost peer and the bulk are back.
    peers = assert_holds_the_live_state(setup, standby, db)
    current = {r[0] for r in sql(standby, db, "SELECT public_key FROM peers WHERE server_id = %s AND valid_to IS NULL",
                                 (SERVER_ID,))}
    assert lost_peer.public_key in current and bulk <= current
    snapshots = sql(standby, db, "SELECT id FROM snapshots WHERE server_id = %s ORDER BY id", (SERVER_ID,))
    assert [s[0] for s in snapshots if s[0] > kept_id] == [status["counts"]["snapshot_id"]], \
        "the failover should leave exactly one new snapshot on the promoted server"
    assert duplicates(standby, db) == 0
    # Unchanged cycles afterwards write nothing; the sync's status row is on the promoted server.
    time.sleep(2 * INTERVAL)
    assert sql(standby, db, "SELECT count(*) FROM snapshots WHERE server_id = %s", (SERVER_ID,))[0][0] == len(snapshots)
    row = sql(standby, db, "SELECT ok, consecutive_failures FROM sync_status WHERE server_id = %s", (SERVER_ID,))
    assert row == [(True, 0)]
    assert setup.key not in setup.log() and lost_peer.preshared_key not in setup.log()

    # Row-level security holds on the promoted server: each server's login sees and writes only its own rows.
    for me, other in ((SERVER_ID, OTHER_ID), (OTHER_ID, SERVER_ID)):
        assert as_login(standby, db, me, "SELECT DISTINCT server_id FROM snapshots") == [(me,)]
        for table in ("interfaces", "server_keys", "peers", "sync_status"):
            assert as_login(standby, db, me, f"SELECT count(*) FROM {table} WHERE server_id = %s", (other,)) == [(0,)]
        with pytest.raises(psycopg2.Error, match="row-level security"):
            as_login(standby, db, me, "INSERT INTO snapshots (server_id, source, interface_count, peer_count,"
                     " peer_rows_written) VALUES (%s, 'forged', 0, 0, 0)", (other,))
    assert as_login(standby, db, SERVER_ID, "SELECT count(*) FROM peers WHERE valid_to IS NULL") == [(peers,)]

    lost_at_age = (time.time() - lost_at.timestamp()) - (time.monotonic() - killed)
    print(f"\nfailover: {peers} peers; RPO: 1 committed save lost (snapshot {lost_id}, committed {lost_at_age:.1f} s "
          f"before the kill) and the save in flight ({BULK} new peers, never committed); the sync showed: "
          f"{meanwhile[:160]!r}, then {read_only[-120:]!r}; first good save {healed - killed:.1f} s after the kill, "
          f"{healed - promoted:.1f} s after promotion (interval {INTERVAL:g} s)")


def _listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


def test_a_bad_host_list_is_refused_by_the_modules_before_any_connection():
    sock = _listener()
    port = sock.getsockname()[1]
    here = "127.0.0.1"
    cases = {
        "empty entry": ({"login_host": f"{here},,{here}"}, "login_host: entry 2 of"),
        "line break": ({"login_host": f"{here},{here}\n"}, "login_host: "),
        "unicode line break": ({"login_host": [here, f"{here}\u2028"]}, "login_host: "),
        "nul": ({"login_host": [here, f"{here}\x00"]}, "login_host: "),
        "too many": ({"login_host": [here] * 17}, "login_host: 17 hosts; at most 16 are allowed"),
        "ports": ({"login_host": [here, here, here], "login_port": [port, port]},
                  f"login_port: 2 ports ({port}, {port}) for 3 hosts"),
    }
    tasks = []
    for name, (options, _message) in cases.items():
        module = "wgfleet.wireguard.wg_backup" if len(tasks) % 2 else "wgfleet.wireguard.wg_restore"
        tasks.append({"name": name, "ignore_errors": True, module: {
            "server_id": "srv-bad-hosts", "config_dir": "/nonexistent/wgfleet-bad-hosts", "login_port": port,
            "login_password": "pw-bad-hosts", "encryption_key": "a" * 43 + "=", **options}})
    try:
        res = run_playbook(tasks)
        for name, (_options, message) in cases.items():
            result = res[name]
            assert result.get("failed") and result["msg"].startswith(message), (name, result.get("msg"))
            assert "pw-bad-hosts" not in res.output
        with pytest.raises(BlockingIOError):
            sock.accept()  # no module ever tried to connect
    finally:
        sock.close()
