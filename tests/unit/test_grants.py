"""The GRANTs a sync and a restore login need exist once: the database role's list. The tests grant exactly
that list before they sync and restore (tests/helpers/postgres.py); the SQL shown in docs/backup-restore.md
must say the same, right for right."""
from __future__ import annotations

from tests.helpers.postgres import documented_grants, parse_grants, role_privileges


def test_the_documented_grants_are_the_database_roles():
    documented = parse_grants(documented_grants())
    role = role_privileges()
    assert documented == role, {"only in the docs": documented - role, "only in the role": role - documented}


def test_the_sync_login_may_close_rows_but_not_rewrite_them():
    rights = {(kind, obj, priv, column) for login, kind, obj, priv, column in role_privileges() if login == "wgfleet_sync"}
    assert ("TABLE", "peers", "UPDATE", "valid_to") in rights
    assert ("TABLE", "peers", "UPDATE", None) not in rights
    assert not any(priv == "DELETE" for _kind, _obj, priv, _col in rights)
