"""restore_server.yml's option checks (playbooks/tasks/restore-options.yml) alone, on localhost: every bad
wgfleet_restore_* value is refused there, before any role touches the host, by a message naming that variable
and its value (and only it); no secret is shown. Nothing but ansible.builtin.assert runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers.playbook import COLLECTIONS, REPO, ensure_collection_path

PASSWORD, KEY = "PW-attack-SECRET-31337", "ENCKEY-attack-SECRET-777="
BASE = {"wgfleet_db_host": "db.example.org", "wgfleet_restore_db_password": PASSWORD, "wgfleet_encryption_key": KEY}
# The restore playbook's own variables (the play's vars in playbooks/restore_server.yml).
PLAY_VARS = yaml.safe_load((REPO / "playbooks" / "restore_server.yml").read_text())[0]["vars"]


def run_checks(tmp_path, **extra) -> tuple[int, str, str]:
    """rc, the failed task's message, and the whole output."""
    ensure_collection_path()
    play = [{"name": "Restore options only", "hosts": "localhost", "gather_facts": False,
             "vars": {k: v for k, v in PLAY_VARS.items() if k.startswith("restore__") and k != "restore__ca_cert"},
             "tasks": [{"name": "Check", "ansible.builtin.import_tasks": str(REPO / "playbooks/tasks/restore-options.yml")}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "vars.json").write_text(json.dumps({**BASE, **extra}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run(
        [str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), "-i", "localhost,", "-c", "local",
         "--limit", "localhost", str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'vars.json'}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    msg = ""
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    for task in data["plays"][0]["tasks"]:
        result = task["hosts"].get("localhost", {})
        if result.get("failed"):
            msg = str(result.get("msg"))
    return proc.returncode, msg, proc.stdout + proc.stderr


@pytest.mark.parametrize(("var", "value", "shown"), [
    ("wgfleet_restore_from", "srv\u2028evil", "srv\\u2028evil"),
    ("wgfleet_restore_from", "srv\u2029", "srv\\u2029"),
    ("wgfleet_restore_snapshot", "2024-13-01T00:00:00Z", "2024-13-01T00:00:00Z"),
    ("wgfleet_restore_snapshot", "2024-05-01T25:00:00Z", "2024-05-01T25:00:00Z"),
    ("wgfleet_restore_snapshot", "2024-05-32", "2024-05-32"),
    ("wgfleet_restore_snapshot", "2024-05-01T12:60:00+02:00", "2024-05-01T12:60:00+02:00"),
    ("wgfleet_restore_force", "maybe", "maybe"),
    ("wgfleet_restore_handshake_timeout", 3601, "3601"),
])
def test_a_bad_option_is_refused_naming_it_alone(tmp_path, var, value, shown):
    rc, msg, output = run_checks(tmp_path, **{var: value})
    assert rc != 0, output[-1500:]
    assert msg.startswith(f"{var}: "), msg
    assert shown in msg, msg
    others = {"wgfleet_restore_from", "wgfleet_restore_snapshot", "wgfleet_restore_force",
              "wgfleet_restore_handshake_timeout"} - {var}
    assert not [o for o in others if o in msg], f"the message blames a good option too: {msg}"
    assert PASSWORD not in output and KEY not in output


@pytest.mark.parametrize(("var", "value"), [("wgfleet_encryption_key", ""), ("wgfleet_encryption_key", " "),
                                            ("wgfleet_db_host", "db\nevil"), ("wgfleet_db_host", "db\u2028"),
                                            ("wgfleet_db_host", ["db1", "db2\n"]), ("wgfleet_db_host", ["db1", 5]),
                                            ("wgfleet_db_host", []), ("wgfleet_db_host", {"db1": 1})])
def test_database_settings_empty_or_multi_line_are_refused_without_values(tmp_path, var, value):
    rc, msg, output = run_checks(tmp_path, **{var: value})
    assert rc != 0, output[-1500:]
    assert var in msg
    assert PASSWORD not in output and KEY not in output


@pytest.mark.parametrize("extra", [{}, {"wgfleet_restore_snapshot": "2024-05-01T12:00:00Z"},
                                   {"wgfleet_db_host": ["db1.example.org", "db2.example.org"]},
                                   {"wgfleet_db_host": "db1.example.org,db2.example.org"},
                                   {"wgfleet_restore_snapshot": "2024-05-01 23:59:59.5+14:00"},
                                   {"wgfleet_restore_snapshot": 42}, {"wgfleet_restore_from": "vpn-eu-1.example.org"},
                                   {"wgfleet_restore_force": "yes", "wgfleet_restore_handshake_timeout": 0}])
def test_good_options_pass(tmp_path, extra):
    rc, msg, output = run_checks(tmp_path, **extra)
    assert rc == 0, msg or output[-1500:]
