"""upgrade_isolation.yml's first play (its checks) on localhost: a bad setting is refused by a message naming it,
no secret is shown, and the run ends there: no later play (the database role, the re-seal, the servers) starts."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers.playbook import COLLECTIONS, REPO, ensure_collection_path

MASTER = "VVBHUkFERS1tYXN0ZXIta2V5LVNFQ1JFVC0xMjM0NTY="  # 32 bytes
PASSWORD = "PW-upgrade-SECRET-777"
SECRETS = (MASTER, PASSWORD)


def fleet(**hosts) -> dict:
    """Two servers with their own logins; the hosts' play never runs when the checks refuse."""
    servers = {"srv-a": {"wgfleet_server_id": "srv-a", "wgfleet_db_user": "wgfleet_srv_a"},
               "srv-b": {"wgfleet_server_id": "srv-b", "wgfleet_db_user": "wgfleet_srv_b"}}
    for name, overrides in hosts.items():
        servers[name] = {**servers.get(name, {}), **overrides}
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                             "wgfleet_db_password": PASSWORD},
                    "children": {"wireguard_servers": {"hosts": servers},
                                 "wireguard_database": {"hosts": {"db-host": {}}}}}}


def run(tmp_path, inventory: dict, extra: dict, limit: str | None = None) -> tuple[int, str, list[str], str]:
    """rc, the failed task's message, the names of the plays that ran a task, the whole output."""
    ensure_collection_path()
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "vars.json").write_text(json.dumps(extra))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False")
    argv = [str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), "-i", str(tmp_path / "inventory.yml"),
            str(REPO / "playbooks" / "upgrade_isolation.yml"), "-e", f"@{tmp_path / 'vars.json'}"]
    if limit:
        argv += ["--limit", limit]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    msg, plays = "", []
    for play in data["plays"]:
        if play["tasks"]:
            plays.append(play["play"]["name"])
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if result.get("failed"):
                    msg = str(result.get("msg"))
    return proc.returncode, msg, plays, proc.stdout + proc.stderr


@pytest.mark.parametrize(("inventory", "extra", "limit", "starts"), [
    (fleet(), {"wgfleet_master_key": MASTER}, "localhost,srv-a", "upgrade_isolation moves the whole fleet at once"),
    (fleet(), {}, None, "wgfleet_master_key: missing"),
    (fleet(), {"wgfleet_master_key": ""}, None, "wgfleet_master_key: missing"),
    (fleet(), {"wgfleet_master_key": MASTER + "\n"}, None, "wgfleet_master_key: missing"),
    (fleet(), {"wgfleet_master_key": 42}, None, "wgfleet_master_key: missing"),
    (fleet(), {"wgfleet_master_key": MASTER, "wgfleet_upgrade_previous_key": "c2hvcnQ="}, None,
     "wgfleet_upgrade_previous_key: not a string"),
    (fleet(), {"wgfleet_master_key": MASTER, "wgfleet_legacy_db_logins": "wgfleet_sync"}, None,
     'wgfleet_legacy_db_logins: "wgfleet_sync" (str)'),
    (fleet(), {"wgfleet_master_key": MASTER, "wgfleet_legacy_db_logins": ["wgfleet_sync\nx"]}, None,
     "wgfleet_legacy_db_logins: "),
    (fleet(), {"wgfleet_master_key": MASTER, "wgfleet_legacy_db_logins": ["Bad-Name"]}, None,
     "wgfleet_legacy_db_logins: "),
    (fleet(**{"srv-b": {"wgfleet_db_user": "wgfleet_srv_a"}}), {"wgfleet_master_key": MASTER}, None,
     "wgfleet_db_user of the servers srv-a: wgfleet_srv_a, srv-b: wgfleet_srv_a"),
    (fleet(**{"srv-b": {"wgfleet_db_user": "wgfleet_sync"}}), {"wgfleet_master_key": MASTER}, None,
     "wgfleet_db_user of the servers"),
    (fleet(**{"srv-b": {"wgfleet_server_id": "srv-a"}}), {"wgfleet_master_key": MASTER}, None,
     "wgfleet_db_user of the servers"),
])
def test_a_bad_setting_stops_the_upgrade_before_anything_runs(tmp_path, inventory, extra, limit, starts):
    rc, msg, plays, output = run(tmp_path, inventory, extra, limit)
    assert rc != 0, output[-1500:]
    assert msg.startswith(starts), msg
    assert plays == ["Check the upgrade's settings"], f"later plays ran: {plays}"
    assert not [s for s in SECRETS if s in output]
