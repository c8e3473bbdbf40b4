"""The database role given passwords the rest of the collection could never use (a line break of each kind, a
control character, more than 4096 characters): refused naming the variable, before anything is created, and the
password never shown."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers.database_role import failure, role_vars, run_database_role


@pytest.mark.parametrize(("where", "password"), [
    ("database_servers[1].password", "pw-{tag}\nx"),
    ("database_owner_password", "pw-{tag}\x85x"),
    ("database_monitor_password", "pw-{tag}\u2028x"),
    ("database_servers[0].password", "pw-{tag}" + "p" * 5000),
])
def test_a_password_the_clients_would_refuse_is_refused_by_the_role_first(pg_server, where, password):
    tag = uuid.uuid4().hex[:6]
    password = password.format(tag=tag)
    db, owner = f"badpw_{tag}", f"wgfleet_owner_{tag}"
    servers = [{"server_id": f"srv-{i}", "login": f"wgfleet_{i}_{tag}", "password": f"pw-{i}-{uuid.uuid4().hex}"}
               for i in range(2)]
    owner_password, monitor_password = f"pw-owner-{tag}", f"pw-mon-{tag}"
    if where.startswith("database_servers"):
        servers[int(where[17])]["password"] = password
    elif where == "database_owner_password":
        owner_password = password
    else:
        monitor_password = password
    res = run_database_role(role_vars(pg_server, db, owner, owner_password, database_servers=servers,
                                      database_monitor_user=f"wgfleet_mon_{tag}",
                                      database_monitor_password=monitor_password))
    assert res.rc != 0
    found = failure(res)
    assert found is not None and found[1].startswith(where) and "line break" in found[1], (found, res.output[-1500:].replace(password, "?"))
    for secret in [owner_password, monitor_password] + [s["password"] for s in servers]:
        assert secret.split("\n")[0] not in res.output, "a password in the output"
    assert pg_server.admin("SELECT count(*) FROM pg_database WHERE datname = %s", params=(db,)) == [(0,)]
    assert pg_server.admin("SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", params=(f"%{tag}%",)) == [(0,)]
