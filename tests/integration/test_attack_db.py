"""The database modules given hostile values and another server's credentials, through their own main().

Against a real PostgreSQL with the logins the database role makes (the isolation fleet of test_isolation):
every failure is a message naming the option, never an unexpected error, and no password, master key or
derived key shows in any output.
"""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.modules import wg_snapshot_info
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
