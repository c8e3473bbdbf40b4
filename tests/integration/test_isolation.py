"""One compromised server exposes only itself (issue 14), against a real PostgreSQL with the logins exactly as the
database role makes them: the role runs here through ansible-playbook against the throw-away server.

Each server's login and derived key are what that server holds. With server A's, the database itself (plain
SQL through psycopg2, not only the store) shows nothing of B and refuses every write of B's rows; B's sealed
keys do not open with A's key; A's own save, status and restore work; a snapshot forged for B under A's key is
refused by B's restore; the monitor reads every server's status and snapshots and no key table; a revoked
login can no longer connect or read; and bad role input is refused before anything is created.
"""
from __future__ import annotations

import base64
import hashlib
import io
import uuid

import psycopg2
import psycopg2.extras
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import (
    KeyCipher,
    derive_server_key,
    generate_key,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_types import StoreError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.helpers.database_role import changed_tasks, failure, role_vars, run_database_role
from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import role_privileges

TABLES = ("snapshots", "interfaces", "server_keys", "peers", "sync_status")
SERVERS = ("srv-a", "srv-b", "srv-c", "srv-d")  # c: revoked by a test; d: the victim of a forged snapshot


def make_state(port: int, peers: int = 3) -> dict[str, Interface]:
    return {"wg0": Interface(
        private_key=_keys.generate_private_key(), listen_port=port, address=("10.10.0.1/24",),
        peers=tuple(Peer(public_key=_keys.public_key(_keys.generate_private_key()),
                         allowed_ips=(f"10.10.{i // 200}.{i % 200 + 2}/32",), preshared_key=_keys.generate_private_key(),
                         name=f"client {i}") for i in range(peers)))}


class Fleet:
    def __init__(self, pg_server):
        tag = uuid.uuid4().hex[:6]
        self.pg, self.db = pg_server, f"fleet_{tag}"
        self.owner = {"user": f"wgfleet_owner_{tag}", "password": "pw-owner-" + uuid.uuid4().hex}
        self.master = generate_key()
        self.entries = [{"server_id": sid, "login": f"wgfleet_{sid[-1]}_{tag}", "password": "pw-" + uuid.uuid4().hex}
                        for sid in SERVERS]
        self.monitor = {"user": f"wgfleet_mon_{tag}", "password": "pw-mon-" + uuid.uuid4().hex}
        self.vars = role_vars(pg_server, self.db, self.owner["user"], self.owner["password"],
                              database_servers=self.entries, database_monitor_user=self.monitor["user"],
                              database_monitor_password=self.monitor["password"])
        self.states: dict[str, dict] = {}

    def login(self, sid: str) -> dict:
        entry = next(e for e in self.entries if e["server_id"] == sid)
        return dict(self.pg.params(self.db), user=entry["login"], password=entry["password"])

    def owner_params(self) -> dict:
        return dict(self.pg.params(self.db), user=self.owner["user"], password=self.owner["password"])

    def monitor_params(self) -> dict:
        return dict(self.pg.params(self.db), user=self.monitor["user"], password=self.monitor["password"])

    def key(self, sid: str) -> str:
        return derive_server_key(self.master, sid)

    def store(self, sid: str, as_login: str | None = None) -> Store:
        """``sid``'s login and key (as found on that server), or another server's with ``as_login``."""
        return Store(self.login(as_login or sid), KeyCipher.from_base64(self.key(as_login or sid)))

    def owner_rows(self, table: str, sid: str) -> list[str]:
        """A digest of each of ``sid``'s rows in ``table``, as the owner reads them (no key in a failure message)."""
        rows = self.pg.admin(f"SELECT * FROM {table} WHERE server_id = %s", dbname=self.db, params=(sid,))
        return sorted(hashlib.sha256(repr([bytes(v) if isinstance(v, memoryview) else v for v in row]).encode())
                      .hexdigest()[:16] for row in rows)


@pytest.fixture(scope="module")
def fleet(pg_server):
    made = Fleet(pg_server)
    res = run_database_role(made.vars)
    assert res.rc == 0, (failure(res), res.output[-3000:])
    try:
        for index, sid in enumerate(SERVERS):
            made.states[sid] = make_state(51820 + index)
            with made.store(sid) as own:
                assert own.save_state(sid, made.states[sid], source="wgrest_sync", guard=True).changed
                own.record_sync(sid, True, None, {"peers": 3}, 0.1)
        yield made
    finally:
        pg_server.drop_database(made.db)
        for name in [e["login"] for e in made.entries] + [made.monitor["user"], made.owner["user"]]:
            pg_server.admin(f'DROP ROLE IF EXISTS "{name}"')


def connect(params: dict):
    conn = psycopg2.connect(**params)
    conn.autocommit = True
    return conn


def privileges_in_catalog(pg_server, db: str) -> set:
    """What the group roles may do, read from PostgreSQL's catalog (not from the role's list)."""
    rows = pg_server.admin("""
        SELECT g.rolname, 'TABLE', c.relname, a.privilege_type, NULL FROM pg_class c
          CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = a.grantee
          WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'
            AND g.rolname IN ('wgfleet_server', 'wgfleet_monitor')
        UNION ALL
        SELECT g.rolname, 'SEQUENCE', c.relname, a.privilege_type, NULL FROM pg_class c
          CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles g ON g.oid = a.grantee
          WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'S'
            AND g.rolname IN ('wgfleet_server', 'wgfleet_monitor')
        UNION ALL
        SELECT g.rolname, 'TABLE', c.relname, a.privilege_type, att.attname FROM pg_attribute att
          JOIN pg_class c ON c.oid = att.attrelid CROSS JOIN LATERAL aclexplode(att.attacl) a
          JOIN pg_roles g ON g.oid = a.grantee
          WHERE c.relnamespace = 'public'::regnamespace AND g.rolname IN ('wgfleet_server', 'wgfleet_monitor')
        UNION ALL
        SELECT g.rolname, 'DATABASE', d.datname, a.privilege_type, NULL FROM pg_database d
          CROSS JOIN LATERAL aclexplode(d.datacl) a JOIN pg_roles g ON g.oid = a.grantee
          WHERE d.datname = current_database() AND g.rolname IN ('wgfleet_server', 'wgfleet_monitor')
        UNION ALL
        SELECT g.rolname, 'SCHEMA', n.nspname, a.privilege_type, NULL FROM pg_namespace n
          CROSS JOIN LATERAL aclexplode(n.nspacl) a JOIN pg_roles g ON g.oid = a.grantee
          WHERE n.nspname = 'public' AND g.rolname IN ('wgfleet_server', 'wgfleet_monitor')
    """, dbname=db)
    return {tuple(r) for r in rows}


def test_the_role_makes_the_logins_groups_grants_and_mapping(fleet):
    assert privileges_in_catalog(fleet.pg, fleet.db) == role_privileges(fleet.db)
    mapped = fleet.pg.admin("SELECT login::text, server_id, monitor FROM wgfleet_logins ORDER BY 1", dbname=fleet.db)
    assert set(mapped) >= {(e["login"], e["server_id"], False) for e in fleet.entries if e["server_id"] != "srv-c"}
    assert (fleet.monitor["user"], None, True) in mapped
    members = dict(fleet.pg.admin(
        "SELECT m.rolname::text, array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members am"
        " JOIN pg_roles g ON g.oid = am.roleid JOIN pg_roles m ON m.oid = am.member"
        " WHERE m.rolname = ANY(%s) GROUP BY 1", params=([e["login"] for e in fleet.entries] + [fleet.monitor["user"]],)))
    assert members[fleet.login("srv-a")["user"]] == ["wgfleet_server"]
    assert members[fleet.monitor["user"]] == ["wgfleet_monitor"]
    attrs = fleet.pg.admin("SELECT rolcanlogin, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
                           " WHERE rolname = %s", params=(fleet.login("srv-a")["user"],))
    assert attrs == [(True, False, False, False, False)]
    # The RLS is on, and only the owner reads the mapping.
    assert fleet.pg.admin("SELECT relname::text FROM pg_class WHERE relrowsecurity AND relnamespace = 'public'::regnamespace"
                          " ORDER BY 1", dbname=fleet.db) == [(t,) for t in sorted(TABLES)]


def test_a_servers_login_reads_nothing_of_another_server_in_any_table(fleet):
    conn = connect(fleet.login("srv-a"))
    try:
        with conn.cursor() as cur:
            for table in TABLES:
                # Every row it can see is its own; the others are simply not there for it.
                cur.execute(f"SELECT DISTINCT server_id FROM {table}")
                assert cur.fetchall() == [("srv-a",)], table
                cur.execute(f"SELECT count(*) FROM {table} WHERE server_id = 'srv-b'")
                assert cur.fetchone() == (0,), table
                assert fleet.owner_rows(table, "srv-b"), f"srv-b has rows in {table}: the test would prove nothing"
            cur.execute("SELECT wgfleet_login_server(), wgfleet_login_monitor()")
            assert cur.fetchone() == ("srv-a", False)
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("SELECT * FROM wgfleet_logins")
            # Turning row-level security off for the session is refused, not ignored.
            with pytest.raises(psycopg2.Error, match="row-level security"):
                cur.execute("SET row_security = off; SELECT count(*) FROM peers")
    finally:
        conn.close()
    with fleet.store("srv-a") as a_store:
        with pytest.raises(StoreError, match=r"no snapshot of server 'srv-b' is visible to login 'wgfleet_a_\w+'"):
            a_store.load_state("srv-b")
        assert a_store.list_snapshots("srv-b") == []
        assert a_store.sync_status("srv-b") is None


def test_another_servers_stored_keys_do_not_open_with_this_servers_key(fleet):
    sealed = bytes(fleet.pg.admin("SELECT private_key FROM server_keys WHERE server_id = 'srv-b' AND valid_to IS NULL",
                                  dbname=fleet.db)[0][0])
    context = "\x1f".join(("server_key", "srv-b", "wg0")).encode()
    nonce, body, aad = sealed[9:21], sealed[21:], sealed[:9] + context

    def opens_with(sid: str) -> bool:
        try:
            AESGCM(base64.b64decode(fleet.key(sid))).decrypt(nonce, body, aad)
            return True
        except InvalidTag:
            return False

    assert opens_with("srv-b"), "B's own key should open B's sealed key (else this test proves nothing)"
    assert not opens_with("srv-a")
    assert fleet.key("srv-a") != fleet.key("srv-b")
    # Even given B's rows (as the owner reads them), A's key opens nothing of them.
    with Store(fleet.owner_params(), KeyCipher.from_base64(fleet.key("srv-a"))) as with_a_key, \
            pytest.raises(StoreError, match="encryption_key does not match the key that encrypted snapshot"):
        with_a_key.load_state("srv-b")


def _refused(cur, sql: str, params=None) -> str:
    with pytest.raises(psycopg2.Error) as info:
        cur.execute(sql, params)
    return str(info.value.diag.message_primary)


def test_writes_of_another_servers_rows_are_refused_by_the_database(fleet):
    before = {table: fleet.owner_rows(table, "srv-b") for table in TABLES}
    conn = connect(fleet.login("srv-a"))
    digest = psycopg2.Binary(bytes(33))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT max(id) FROM snapshots")
            own_latest = cur.fetchone()[0]
            for sql in (
                "INSERT INTO snapshots (server_id, source, interface_count, peer_count, peer_rows_written)"
                " VALUES ('srv-b', 'forged', 1, 0, 0)",
                "INSERT INTO interfaces (server_id, name, valid_from, settings, digest) VALUES ('srv-b', 'wg0', 9999, '{}', %s)",
                "INSERT INTO server_keys (server_id, interface, valid_from, public_key, private_key, digest)"
                " VALUES ('srv-b', 'wg0', 9999, 'x', %s, %s)",
                "INSERT INTO peers (server_id, interface, public_key, valid_from, position, allowed_ips,"
                " persistent_keepalive, digest) VALUES ('srv-b', 'wg0', 'x', 9999, 0, '{}', 0, %s)",
                "INSERT INTO sync_status (server_id, last_attempt_at, ok, duration_seconds) VALUES ('srv-b', now(), false, 0)",
                # The sync's own upsert, aimed at B's row.
                "INSERT INTO sync_status AS s (server_id, last_attempt_at, ok, duration_seconds)"
                " VALUES ('srv-b', now(), false, 0) ON CONFLICT (server_id) DO UPDATE SET ok = false",
                # A's own row moved onto B's server id: the new row fails the check.
                "INSERT INTO peers SELECT 'srv-b', interface, public_key, valid_from, valid_to, position, allowed_ips,"
                " endpoint, persistent_keepalive, name, preshared_key, digest FROM peers",
            ):
                args = tuple(digest for _n in range(sql.count("%s")))
                assert "row-level security" in _refused(cur, sql, args or None), sql
            # COPY FROM is not even allowed under row-level security.
            with pytest.raises(psycopg2.Error, match="row-level security"):
                cur.copy_expert("COPY peers FROM STDIN", io.StringIO(""))
            # Closing or changing B's rows: B's rows are not there to update (0 rows), whatever the WHERE says.
            for table in ("interfaces", "server_keys", "peers"):
                cur.execute(f"UPDATE {table} SET valid_to = %s WHERE server_id = 'srv-b' AND valid_to IS NULL",
                            (own_latest,))
                assert cur.rowcount == 0, table
                cur.execute(f"UPDATE {table} SET valid_to = %s WHERE valid_to IS NULL AND server_id <> 'srv-a'",
                            (own_latest,))
                assert cur.rowcount == 0, table
            cur.execute("UPDATE sync_status SET ok = false, error = 'forged' WHERE server_id = 'srv-b'")
            assert cur.rowcount == 0
            # Only valid_to may change, so A cannot turn its own rows into B's either.
            assert "permission denied" in _refused(cur, "UPDATE peers SET server_id = 'srv-b'")
            assert "row-level security" in _refused(cur, "UPDATE sync_status SET server_id = 'srv-b'")
            assert "permission denied" in _refused(cur, "DELETE FROM peers")
    finally:
        conn.close()
    # Through the store: refused, naming the server, never a key.
    with fleet.store("srv-a") as a_store:
        forged = make_state(51900)
        with pytest.raises(StoreError, match=r"login 'wgfleet_a_\w+' may not write rows of server 'srv-b'") as info:
            a_store.save_state("srv-b", forged)
        assert forged["wg0"].private_key not in str(info.value)
        with pytest.raises(StoreError, match=r"may not write rows of server 'srv-b'.*row-level security"):
            a_store.record_sync("srv-b", False, "forged", {}, 0.1)
    assert {table: fleet.owner_rows(table, "srv-b") for table in TABLES} == before


def test_a_servers_own_save_status_and_restore_keep_working(fleet, tmp_path):
    state = fleet.states["srv-a"]
    changed = {"wg0": state["wg0"].replace(peers=state["wg0"].peers[1:] + make_state(1, 1)["wg0"].peers, mtu=1380)}
    with fleet.store("srv-a") as own:
        saved = own.save_state("srv-a", changed, source="wgrest_sync", guard=True)
        assert saved.changed and saved.counts["peer_rows_written"] == 1
        assert not own.save_state("srv-a", changed, guard=True).changed
        own.record_sync("srv-a", False, "wgrest unreachable", {}, 0.2)
        own.record_sync("srv-a", True, None, {"peers": 3}, 0.2)
        assert own.load_state("srv-a") == (saved.snapshot_id, changed)
    fleet.states["srv-a"] = changed
    assert fleet.pg.admin("SELECT ok, consecutive_failures, last_success_at > last_attempt_at - interval '1 min'"
                          " FROM sync_status WHERE server_id = 'srv-a'", dbname=fleet.db) == [(True, 0, True)]
    assert fleet.pg.admin("SELECT count(*) FROM peers WHERE server_id = 'srv-a' AND valid_to IS NULL",
                          dbname=fleet.db) == [(3,)]
    login = fleet.login("srv-a")
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": {
        "login_host": login["host"], "login_port": login["port"], "login_user": login["user"],
        "login_password": login["password"], "db": fleet.db, "server_id": "srv-a", "config_dir": str(tmp_path),
        "encryption_key": fleet.key("srv-a")}}])
    assert res.rc == 0 and res["restore"]["changed"], res.output[-2000:]
    text = (tmp_path / "wg0.conf").read_text()
    # A tiny parser: the restored file holds A's private key and its three peers.
    lines = [line.split("=", 1) for line in text.splitlines() if "=" in line]
    values = [(k.strip(), v.strip()) for k, v in lines]
    assert ("PrivateKey", changed["wg0"].private_key) in values, "wg0.conf lacks A's private key"
    assert sorted(v for k, v in values if k == "PublicKey") == sorted(p.public_key for p in changed["wg0"].peers)
    assert login["password"] not in res.output and fleet.key("srv-a") not in res.output
    # Many new rows at once (a first save of a big interface) take the other way in under row-level security.
    big = {"wg0": changed["wg0"].replace(peers=make_state(1, 300)["wg0"].peers)}
    with fleet.store("srv-a") as own:
        saved = own.save_state("srv-a", big)
        assert saved.counts["peer_rows_written"] == 300
        assert own.load_state("srv-a") == (saved.snapshot_id, big)
    fleet.states["srv-a"] = big
    assert fleet.pg.admin("SELECT count(*) FROM peers WHERE server_id = 'srv-a' AND valid_to IS NULL",
                          dbname=fleet.db) == [(300,)]


def test_a_snapshot_forged_for_another_server_with_this_servers_key_is_refused(fleet, pg_server, tmp_path):
    """The owner (a database administrator) inserts a snapshot for D sealed with A's key: D's restore with D's key
    refuses it, whether it carries A's key id or D's."""
    forged = make_state(51999, 1)
    scratch = pg_server.create_database("t_forge_" + uuid.uuid4().hex[:6])
    try:
        with Store(pg_server.params(scratch), KeyCipher.from_base64(fleet.key("srv-a"))) as attacker:
            attacker.migrate()
            pg_server.admin("SELECT setval('snapshots_id_seq', 900000)", dbname=scratch)
            snap_id = attacker.save_state("srv-d", forged).snapshot_id
        owner = psycopg2.connect(**fleet.owner_params())
        src = psycopg2.connect(**pg_server.params(scratch))
        try:
            with src.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as scur, owner.cursor() as dcur:
                for table in ("interfaces", "server_keys", "peers"):
                    dcur.execute(f"UPDATE {table} SET valid_to = %s WHERE server_id = 'srv-d' AND valid_to IS NULL",
                                 (snap_id,))
                for table in ("interfaces", "server_keys", "peers", "snapshots"):
                    scur.execute(f"SELECT * FROM {table}")
                    for row in scur.fetchall():
                        for column in ("settings", "interface_digests"):
                            if row.get(column) is not None:
                                row[column] = psycopg2.extras.Json(row[column])
                        dcur.execute(f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})",
                                     list(row.values()))
            owner.commit()
        finally:
            owner.close()
            src.close()
    finally:
        pg_server.drop_database(scratch)
    with fleet.store("srv-d") as victim:
        with pytest.raises(StoreError, match=f"encryption_key does not match the key that encrypted snapshot {snap_id}"):
            victim.load_state("srv-d")
        # With D's key id written over A's, the seal still says no.
        fleet.pg.admin("UPDATE snapshots SET key_id = %s WHERE id = %s", dbname=fleet.db,
                       params=(psycopg2.Binary(KeyCipher.from_base64(fleet.key("srv-d")).key_id), snap_id))
        with pytest.raises(StoreError, match=f"snapshot {snap_id} of server 'srv-d' is damaged") as info:
            victim.load_state("srv-d")
        assert forged["wg0"].private_key not in str(info.value)
    login = fleet.login("srv-d")
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": {
        "login_host": login["host"], "login_port": login["port"], "login_user": login["user"],
        "login_password": login["password"], "db": fleet.db, "server_id": "srv-d", "config_dir": str(tmp_path),
        "encryption_key": fleet.key("srv-d")}, "ignore_errors": True}])
    assert res["restore"]["failed"] and f"snapshot {snap_id} of server 'srv-d' is damaged" in res["restore"]["msg"]
    assert not (tmp_path / "wg0.conf").exists()
    assert forged["wg0"].private_key not in res.output


def test_the_monitor_sees_every_servers_status_and_snapshots_and_no_key_table(fleet):
    conn = connect(fleet.monitor_params())
    try:
        with conn.cursor() as cur:
            for table in ("snapshots", "sync_status"):
                cur.execute(f"SELECT DISTINCT server_id FROM {table} ORDER BY 1")
                assert {r[0] for r in cur.fetchall()} >= set(SERVERS) - {"srv-c"}, table
            for table in ("interfaces", "server_keys", "peers", "wgfleet_logins"):
                assert "permission denied" in _refused(cur, f"SELECT count(*) FROM {table}"), table
            assert "permission denied" in _refused(cur, "UPDATE sync_status SET ok = false")
            assert "permission denied" in _refused(
                cur, "INSERT INTO snapshots (server_id, source, interface_count, peer_count, peer_rows_written)"
                     " VALUES ('srv-a', 'x', 0, 0, 0)")
    finally:
        conn.close()


def test_a_revoked_login_can_no_longer_connect_or_read(fleet):
    open_before = connect(fleet.login("srv-c"))
    with open_before.cursor() as cur:
        cur.execute("SELECT count(*) FROM snapshots")
        assert cur.fetchone()[0] >= 1
    history = fleet.owner_rows("snapshots", "srv-c")
    entries = [dict(e, state="absent") if e["server_id"] == "srv-c" else e for e in fleet.entries]
    entries = [{k: v for k, v in e.items() if k != "password"} if e.get("state") == "absent" else e for e in entries]
    res = run_database_role(dict(fleet.vars, database_servers=entries))
    assert res.rc == 0, (failure(res), res.output[-3000:])
    try:
        # A session opened before: its next statement gets nothing.
        with open_before.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT count(*) FROM snapshots")
    finally:
        open_before.close()
    with pytest.raises(psycopg2.OperationalError, match="not permitted to log in"):
        psycopg2.connect(**fleet.login("srv-c"))
    assert fleet.pg.admin("SELECT count(*) FROM wgfleet_logins WHERE server_id = 'srv-c'", dbname=fleet.db) == [(0,)]
    assert fleet.owner_rows("snapshots", "srv-c") == history  # its history stays
    # The others are untouched, and the same variables again change nothing.
    with fleet.store("srv-b") as other:
        assert other.load_state("srv-b")[1] == fleet.states["srv-b"]
    again = run_database_role(dict(fleet.vars, database_servers=entries))
    assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)


def test_a_login_is_not_moved_to_another_server_id_unless_the_entry_says_so(fleet):
    entries = [dict(e, server_id="srv-b2") if e["server_id"] == "srv-b" else e for e in fleet.entries
               if e["server_id"] != "srv-c"]
    res = run_database_role(dict(fleet.vars, database_servers=entries))
    assert res.rc != 0
    _task, msg = failure(res)
    assert f"login {fleet.login('srv-b')['user']} is mapped to server id \"srv-b\", the entry makes it server id " \
           "\"srv-b2\"" in msg, msg
    assert fleet.pg.admin("SELECT server_id FROM wgfleet_logins WHERE login = %s", dbname=fleet.db,
                          params=(fleet.login("srv-b")["user"],)) == [("srv-b",)]
    assert all(e["password"] not in res.output for e in fleet.entries)


BAD = "\u2028"


@pytest.mark.parametrize(("change", "named"), [
    ({"server_id": "srv\nx"}, "database_servers[0].server_id"),
    ({"server_id": "srv\rx"}, "database_servers[0].server_id"),
    ({"server_id": f"srv{BAD}x"}, "database_servers[0].server_id"),
    ({"server_id": "srv\x85x"}, "database_servers[0].server_id"),
    ({"server_id": "srv\x00x"}, "database_servers[0].server_id"),
    ({"server_id": "srv'x"}, "database_servers[0].server_id"),
    ({"server_id": 'srv"x'}, "database_servers[0].server_id"),
    ({"server_id": " srv"}, "database_servers[0].server_id"),
    ({"server_id": "s" * 256}, "database_servers[0].server_id"),
    ({"server_id": ""}, "database_servers[0].server_id"),
    ({"login": "wgfleet_x\n"}, "database_servers[0].login"),
    ({"login": "wgfleet_x\x00"}, "database_servers[0].login"),
    ({"login": "wgfleet_'x"}, "database_servers[0].login"),
    ({"login": "w" * 64}, "database_servers[0].login"),
    ({"login": "Wgfleet"}, "database_servers[0].login"),
    ({"password": ""}, "database_servers[0].password"),
    ({"duplicate_login": True}, "login"),
    ({"duplicate_server": True}, "server id"),
])
def test_bad_role_input_is_refused_before_anything_is_created(pg_server, change, named):
    tag = uuid.uuid4().hex[:6]
    db, owner = f"bad_{tag}", f"wgfleet_owner_{tag}"
    entry = {"server_id": "srv-x", "login": f"wgfleet_x_{tag}", "password": "pw-" + uuid.uuid4().hex}
    second = {"server_id": "srv-y", "login": f"wgfleet_y_{tag}", "password": "pw-" + uuid.uuid4().hex}
    if change.get("duplicate_login"):
        second["login"] = entry["login"]
    elif change.get("duplicate_server"):
        second["server_id"] = entry["server_id"]
    else:
        entry.update(change)
    res = run_database_role(role_vars(pg_server, db, owner, "pw-owner-" + tag, database_servers=[entry, second]))
    assert res.rc != 0
    found = failure(res)
    assert found is not None, res.output[-2000:]
    assert named in found[1], found
    for password in (entry["password"], second["password"]):
        if password:
            assert password not in res.output
    # Nothing was created: no database, no owner, no login.
    assert pg_server.admin("SELECT count(*) FROM pg_database WHERE datname = %s", params=(db,)) == [(0,)]
    assert pg_server.admin("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", params=(f"%{tag}%",)) == [(0,)]
