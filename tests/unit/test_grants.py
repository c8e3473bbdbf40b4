"""The GRANTs the logins need exist once: the database role's list. The tests grant exactly that list before they
sync and restore (tests/helpers/postgres.py), tests/integration/test_isolation.py checks that the role grants
exactly that, and the SQL shown in docs/backup-restore.md must say the same, right for right."""
from __future__ import annotations

from tests.helpers.postgres import MONITOR_GROUP, SERVER_GROUP, documented_grants, parse_grants, role_privileges


def test_the_documented_grants_are_the_database_roles():
    documented = parse_grants(documented_grants())
    role = role_privileges()
    assert documented == role, {"only in the docs": documented - role, "only in the role": role - documented}


def test_a_server_login_may_close_rows_but_not_rewrite_them():
    rights = {(kind, obj, priv, column) for login, kind, obj, priv, column in role_privileges() if login == SERVER_GROUP}
    assert ("TABLE", "peers", "UPDATE", "valid_to") in rights
    assert ("TABLE", "peers", "UPDATE", None) not in rights
    assert not any(priv in ("DELETE", "TRUNCATE") for _kind, _obj, priv, _col in rights)


def test_the_monitor_reads_no_key_table():
    rights = {(kind, obj, priv) for login, kind, obj, priv, _col in role_privileges() if login == MONITOR_GROUP}
    tables = {obj for kind, obj, _priv in rights if kind == "TABLE"}
    assert tables == {"schema_version", "snapshots", "sync_status"}
    assert {priv for kind, _obj, priv in rights if kind == "TABLE"} == {"SELECT"}
