"""The database modules given hostile values and another server's credentials, through their own main().

Against a real PostgreSQL with the logins the database role makes (the isolation fleet of test_isolation):
every failure is a message naming the option, never an unexpected error, and no password, master key or
derived key shows in any output.
"""
from __future__ import annotations

import contextlib
import io
import json

import psycopg2
import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.modules import wg_fleet_info, wg_retention, wg_snapshot_info
from tests.helpers.database_role import failure, run_database_role
from tests.integration import test_isolation


@pytest.fixture(scope="module")
def fleet(pg_server):
    """test_isolation's fleet: four servers' logins as the database role makes them, each with a saved state."""
    made = test_isolation.Fleet(pg_server)
    res = run_database_role(made.vars)
    assert res.rc == 0, (failure(res), res.output[-3000:])
    try:
        for index, sid in enumerate(test_isolation.SERVERS):
            made.states[sid] = test_isolation.make_state(51820 + index)
            with made.store(sid) as own:
                assert own.save_state(sid, made.states[sid], source="wgrest_sync", guard=True).changed
                own.record_sync(sid, True, None, {"peers": 3}, 0.1)
        yield made
    finally:
        pg_server.drop_database(made.db)
        for name in [e["login"] for e in made.entries] + [made.monitor["user"], made.owner["user"]]:
            pg_server.admin(f'DROP ROLE IF EXISTS "{name}"')


def call(module, args) -> tuple[str, dict]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    text = out.getvalue()
    return text, json.loads(text[text.index("{"):])


def login_args(fl, sid: str) -> dict:
    params = fl.login(sid)
    return {"login_host": params["host"], "login_port": params["port"], "login_user": params["user"],
            "login_password": params["password"], "db": fl.db}


def secrets(fl) -> list[str]:
    """Every credential of the fleet: each login's password and derived key, the master, the owner's password."""
    out = [fl.master, fl.owner["password"], fl.monitor["password"]]
    for entry in fl.entries:
        out += [entry["password"], fl.key(entry["server_id"])]
    return out


def assert_clean(fl, text: str) -> None:
    assert "Traceback" not in text and "unexpected error" not in text, text[:2000]
    leaked = [index for index, secret in enumerate(secrets(fl)) if secret in text]
    assert not leaked, f"credential(s) number {leaked} of the fleet shown in the output"


def test_a_limit_too_large_for_a_float_is_refused_naming_it(fleet):
    # Ansible turns the text "1e400" into a 401-digit int; math.isfinite() raised OverflowError on it.
    for value in ("1e400", 10**400):
        text, data = call(wg_snapshot_info, {**login_args(fleet, "srv-a"), "server_id": "srv-a", "limit": value})
        assert_clean(fleet, text)
        assert data.get("failed") and data["msg"].startswith("limit: "), data


def counts(fl) -> dict:
    """Rows per table and server, as the owner reads them (not through the code under test)."""
    out = {}
    for table in test_isolation.TABLES:
        for sid, n in fl.pg.admin(f"SELECT server_id, count(*) FROM {table} GROUP BY server_id", dbname=fl.db):
            out[(table, sid)] = n
    return out


def test_a_servers_login_does_not_pass_for_the_whole_fleet_in_the_fleet_report(fleet):
    # Server A's login sees its own sync_status row only: wg_fleet_info reported a healthy fleet of one, and
    # with servers: [srv-b] said srv-b was unknown and stale.
    for extra in ({}, {"servers": ["srv-b"]}, {"servers": ["srv-a"]}):
        text, data = call(wg_fleet_info, {**login_args(fleet, "srv-a"), **extra})
        assert_clean(fleet, text)
        assert data.get("failed"), data
        assert "is the login of server 'srv-a'" in data["msg"] and "monitor login" in data["msg"], data["msg"]
    monitor = {**login_args(fleet, "srv-a"), "login_user": fleet.monitor["user"], "login_password": fleet.monitor["password"]}
    text, data = call(wg_fleet_info, monitor)
    assert_clean(fleet, text)
    assert [s["server_id"] for s in data["servers"]] == sorted(test_isolation.SERVERS), data


def test_a_servers_login_is_told_it_cannot_see_another_servers_snapshots(fleet):
    # wg_snapshot_info with A's login and server_id srv-b returned "snapshots: []" as if B had no backup.
    text, data = call(wg_snapshot_info, {**login_args(fleet, "srv-b"), "server_id": "srv-a"})
    assert_clean(fleet, text)
    assert data.get("failed") and "is the login of server 'srv-b'" in data["msg"], data
    text, data = call(wg_snapshot_info, {**login_args(fleet, "srv-a"), "server_id": "srv-a"})
    assert [s["id"] for s in data["snapshots"]] == [row[0] for row in fleet.pg.admin(
        "SELECT id FROM snapshots WHERE server_id = 'srv-a' ORDER BY id", dbname=fleet.db)], data


def test_retention_check_mode_refuses_a_login_bound_by_row_level_security(fleet):
    # In check mode a server's login (or the monitor's) got a plan of what it can see; the real run then failed.
    before = counts(fleet)
    monitor = {**login_args(fleet, "srv-a"), "login_user": fleet.monitor["user"], "login_password": fleet.monitor["password"]}
    for args, whose in ((login_args(fleet, "srv-a"), "the login of server 'srv-a'"), (monitor, "the monitor login")):
        for check in (True, False):
            text, data = call(wg_retention, {**args, "keep_days": 1, "keep_latest": 1, "_ansible_check_mode": check})
            assert_clean(fleet, text)
            assert data.get("failed") and whose in data["msg"] and "owner" in data["msg"], data
    assert counts(fleet) == before


EXPIRES = "2035-01-31T18:00:00Z"


def test_another_servers_login_neither_reads_nor_writes_a_peers_expiry(fleet):
    """Schema 4's expires column under row-level security: B's login sees none of A's expiries and can neither
    change one on A's rows nor insert a row of A's carrying one. Checked as the owner reads the rows."""
    own_state = fleet.states["srv-a"]["wg0"]
    state = {"wg0": own_state.replace(peers=tuple(p.replace(expires=EXPIRES) for p in own_state.peers))}
    with fleet.store("srv-a") as own:
        assert own.save_state("srv-a", state, source="wgrest_sync", guard=True).changed
    fleet.states["srv-a"] = state
    sql = "SELECT count(*) FROM peers WHERE server_id = %s AND valid_to IS NULL AND expires = %s"
    assert fleet.pg.admin(sql, dbname=fleet.db, params=("srv-a", EXPIRES)) == [(len(own_state.peers),)], \
        "A's rows hold no expiry: the test would prove nothing"
    before = fleet.owner_rows("peers", "srv-a")
    conn = psycopg2.connect(**fleet.login("srv-b"))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT expires FROM peers WHERE server_id = 'srv-a'")
            assert cur.fetchall() == []
            cur.execute("SELECT count(*) FROM peers WHERE expires IS NOT NULL")
            assert cur.fetchone() == (0,)
            for sql in ("UPDATE peers SET expires = '2000-01-01T00:00:00Z' WHERE server_id = 'srv-a'",
                        "UPDATE peers SET expires = NULL"):
                with pytest.raises(psycopg2.Error, match="permission denied"):
                    cur.execute(sql)
            with pytest.raises(psycopg2.Error, match="row-level security"):
                cur.execute("INSERT INTO peers (server_id, interface, public_key, valid_from, position, allowed_ips,"
                            " persistent_keepalive, expires, digest) VALUES ('srv-a', 'wg0', 'x', 9999, 0, '{}', 0,"
                            " '2000-01-01T00:00:00Z', %s)", (psycopg2.Binary(bytes(33)),))
            # Its own rows moved to A's server id, with an expiry: refused as well.
            with pytest.raises(psycopg2.Error, match="row-level security"):
                cur.execute("INSERT INTO peers SELECT 'srv-a', interface, public_key, valid_from, valid_to, position,"
                            " allowed_ips, endpoint, persistent_keepalive, name, preshared_key, digest,"
                            " '2000-01-01T00:00:00Z' FROM peers")
    finally:
        conn.close()
    assert fleet.owner_rows("peers", "srv-a") == before
    with fleet.store("srv-a") as own:
        assert own.load_state("srv-a")[1] == state
