"""The database role's replication parts on real PostgreSQL 15 servers on this machine: the primary's side
(replication login, pg_hba.conf entry, slot; idempotent), the standby entry point on a standby (pointed at its
primary, streaming; idempotent), and the refusals (a standby given to the main entry point; a data directory
that holds a database of its own). Checked with SQL on the servers, not with the role's own reports."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers.playbook import run_playbook
from tests.helpers.postgres import PostgresServer, needs_postgres
from tests.helpers.replication import Standby

pytestmark = [needs_postgres]
PASSWORD = "repl-role-" + uuid.uuid4().hex[:10]
SLOT = "wgfleet_standby1"


def admin(server) -> dict:
    p = server.params()
    return {"database_login_host": "127.0.0.1", "database_login_port": server.port, "database_login_user": p["user"],
            "database_login_password": p["password"], "database_ssl_mode": "disable"}


def role(tasks_from: str, variables: dict, name: str = "role"):
    return run_playbook([{"name": name, "ignore_errors": True, "ansible.builtin.include_role": {
        "name": "wgfleet.wireguard.database", "tasks_from": tasks_from}, "vars": variables}])


def changed_tasks(res) -> list[str]:
    return [name for play in res.data["plays"] for task in play["tasks"]
            for name, host in [(task["task"]["name"].split(" : ", 1)[-1], task["hosts"].get("localhost", {}))]
            if host.get("changed")]


@pytest.fixture
def primary():
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


def test_primary_side_standby_entry_point_and_refusals(primary, tmp_path):
    replication = {**admin(primary), "database_replication_networks": ["127.0.0.1/32"],
                   "database_replication_password": PASSWORD, "database_replication_slots": [SLOT]}
    first = role("replication", replication)
    assert first.rc == 0, first.output
    assert primary.admin("SELECT rolreplication, rolcanlogin, rolsuper FROM pg_roles WHERE rolname = "
                         "'wgfleet_replication'") == [(True, True, False)]
    rules = primary.admin("SELECT type, database, user_name, address, auth_method FROM pg_hba_file_rules"
                          " WHERE 'wgfleet_replication' = ANY(user_name)")
    assert rules == [("host", ["replication"], ["wgfleet_replication"], "127.0.0.1", "scram-sha-256")]
    assert primary.admin("SELECT slot_type FROM pg_replication_slots WHERE slot_name = %s", params=(SLOT,)) == \
        [("physical",)]
    again = role("replication", replication)
    assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)
    assert PASSWORD not in first.output + again.output

    # The role's login and slot feed a standby (pg_basebackup -R -S, as the standby entry point runs it).
    standby = Standby(primary, password=PASSWORD, slot=SLOT, create_login=False)
    try:
        point = {**admin(standby), "database_standby_of": "127.0.0.1", "database_standby_primary_port": primary.port,
                 "database_standby_data_dir": str(standby.data), "database_replication_password": PASSWORD}
        res = role("standby", point)
        assert res.rc == 0, res.output
        assert changed_tasks(res) == ["Follow the primary (primary_conninfo; reloaded, PostgreSQL 13 and later)",
                                      "Reload the standby's configuration"]
        assert standby.admin("SELECT status, sender_port, slot_name FROM pg_stat_wal_receiver") == \
            [("streaming", primary.port, SLOT)]
        assert standby.admin("SELECT setting FROM pg_settings WHERE name = 'primary_conninfo'")[0][0].startswith(
            f"host=127.0.0.1 port={primary.port} user=wgfleet_replication"), "not the role's primary_conninfo"
        assert standby.in_recovery()
        again = role("standby", point)
        assert again.rc == 0 and changed_tasks(again) == [], changed_tasks(again)
        assert PASSWORD not in res.output + again.output

        # A standby given to the main entry point: refused before any task writes.
        refused = role("main", {**admin(standby), "database_standby_of": "127.0.0.1",
                                "database_owner_password": "x", "database_sync_password": "y",
                                "database_restore_password": "z"})
        assert refused.rc != 0 and "database_standby_of is set: this host is a standby" in refused.output
    finally:
        standby.destroy()

    # A data directory that holds a database of its own is never emptied without database_standby_rebuild.
    own = {**admin(primary), "database_standby_of": "127.0.0.1", "database_standby_data_dir": str(primary.data),
           "database_replication_password": PASSWORD}
    res = role("standby", own)
    assert res.rc != 0 and "holds a database that is not a standby" in res.output
    assert (primary.data / "PG_VERSION").exists() and primary.admin("SELECT 1") == [(1,)]
