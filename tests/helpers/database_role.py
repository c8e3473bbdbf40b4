"""Run the database role (roles/database) through ansible-playbook against the test session's PostgreSQL, so that
tests use the logins, group roles, GRANTs and wgfleet_logins rows exactly as the role makes them."""
from __future__ import annotations

from tests.helpers.playbook import PlaybookResult, run_playbook
from tests.helpers.postgres import PASSWORD, SUPERUSER


def role_vars(pg_server, db: str, owner: str, owner_password: str, **more) -> dict:
    """The role's variables for the throw-away server: administered as its superuser over TCP."""
    return {"database_login_host": "127.0.0.1", "database_login_port": pg_server.port,
            "database_login_user": SUPERUSER, "database_login_password": PASSWORD, "database_become_user": "",
            "database_name": db, "database_owner": owner, "database_owner_password": owner_password,
            "database_owner_login_host": "127.0.0.1", **more}


def run_database_role(variables: dict, check: bool = False) -> PlaybookResult:
    return run_playbook([{"name": "database role", "ansible.builtin.include_role": {"name": "wgfleet.wireguard.database"},
                          "vars": variables}], check=check)


def failure(result: PlaybookResult) -> tuple[str, str] | None:
    """(task name, message) of the task that failed, None when none did."""
    for play in (result.data or {}).get("plays", []):
        for task in play["tasks"]:
            for host in task["hosts"].values():
                if host.get("failed") and not host.get("ignore_errors"):
                    msg = host.get("msg") or ""
                    for item in host.get("results", []):
                        if item.get("failed"):
                            msg = item.get("msg") or msg
                    return task["task"]["name"], str(msg)
    return None


def changed_tasks(result: PlaybookResult) -> list[str]:
    return [task["task"]["name"] for play in (result.data or {}).get("plays", []) for task in play["tasks"]
            if any(h.get("changed") for h in task["hosts"].values())]
