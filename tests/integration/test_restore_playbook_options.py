"""restore_server.yml's option checks (playbooks/tasks/restore-options.yml) alone, on localhost: every bad
wgfleet_restore_* value is refused there, before any role touches the host, by a message naming that variable
and its value (and only it); no secret is shown. Nothing but ansible.builtin.assert runs."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tests.helpers.playbook import COLLECTIONS, REPO, ensure_collection_path

PASSWORD, KEY = "PW-attack-SECRET-31337", "TUFTVEVSLWF0dGFjay1TRUNSRVQtNzc3LW1hc3RlciE="  # 32 bytes
OTHER_PASSWORD = "PW-other-SECRET-4242"
# localhost as a server of the inventory: its own login (the restored server's, by default) and the master key.
BASE = {"wgfleet_db_host": "db.example.org", "wgfleet_db_user": "wgfleet_localhost", "wgfleet_db_password": PASSWORD,
        "wgfleet_master_key": KEY}
SECRETS = (PASSWORD, KEY, OTHER_PASSWORD)
# The restore playbook's own variables (the play's vars in playbooks/restore_server.yml).
PLAY_VARS = yaml.safe_load((REPO / "playbooks" / "restore_server.yml").read_text())[0]["vars"]


def run_checks(tmp_path, inventory="localhost,", after=(), base=None, **extra) -> tuple[int, str, str]:
    """rc, the failed task's message, and the whole output (tasks ``after`` the checks run too)."""
    ensure_collection_path()
    play = [{"name": "Restore options only", "hosts": "localhost", "gather_facts": False,
             "vars": {k: v for k, v in PLAY_VARS.items() if k.startswith("restore__") and k != "restore__ca_cert"},
             "tasks": [{"name": "Check", "ansible.builtin.import_tasks": str(REPO / "playbooks/tasks/restore-options.yml")},
                       *after]}]
    if inventory != "localhost,":
        (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
        inventory = str(tmp_path / "inventory.yml")
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    (tmp_path / "vars.json").write_text(json.dumps({**(BASE if base is None else base), **extra}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run(
        [str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), "-i", inventory, "-c", "local",
         "--limit", "localhost", str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'vars.json'}",
         "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    msg = ""
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    for task in data["plays"][0]["tasks"]:
        result = task["hosts"].get("localhost", {})
        if result.get("failed"):
            # A loop's failure: the failed item's own message.
            msg = next((str(r.get("msg")) for r in result.get("results", []) if r.get("failed")), str(result.get("msg")))
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
    assert not [s for s in SECRETS if s in output]


@pytest.mark.parametrize(("var", "value"), [("wgfleet_master_key", ""), ("wgfleet_master_key", " "),
                                            ("wgfleet_master_key", "c2hvcnQ="), ("wgfleet_master_key", 42),
                                            ("wgfleet_master_key", KEY + "\n"),
                                            ("wgfleet_db_host", "db\nevil"), ("wgfleet_db_host", "db\u2028"),
                                            ("wgfleet_db_host", ["db1", "db2\n"]), ("wgfleet_db_host", ["db1", 5]),
                                            ("wgfleet_db_host", []), ("wgfleet_db_host", {"db1": 1})])
def test_database_settings_empty_or_multi_line_are_refused_without_values(tmp_path, var, value):
    rc, msg, output = run_checks(tmp_path, **{var: value})
    assert rc != 0, output[-1500:]
    assert msg.startswith(f"{var}: "), msg
    assert not [s for s in SECRETS if s in output]


# A server outside the inventory: its login, password and key generation given as extra vars.
OUTSIDE = {"wgfleet_restore_from": "vpn-gone.example.org", "wgfleet_restore_from_db_user": "wgfleet_vpn_gone",
           "wgfleet_restore_from_db_password": OTHER_PASSWORD}


@pytest.mark.parametrize(("var", "value", "shown"), [
    ("wgfleet_restore_from_db_user", "wgfleet_a\nb", '"wgfleet_a\\nb"'),
    ("wgfleet_restore_from_db_user", "Wgfleet-A", '"Wgfleet-A"'),
    ("wgfleet_restore_from_db_user", "a\u2028", '"a\\u2028"'),
    ("wgfleet_restore_from_db_user", "x" * 64, '"xxxx'),
    ("wgfleet_restore_from_db_user", "", '""'),
    ("wgfleet_restore_from_db_user", 42, "(int)"),
    ("wgfleet_restore_from_db_user", ["wgfleet_a"], "(list)"),
    ("wgfleet_restore_from_db_password", "", "(str, value not shown)"),
    ("wgfleet_restore_from_db_password", "pw\u2029" + OTHER_PASSWORD, "(str, value not shown)"),
    ("wgfleet_restore_from_db_password", "pw\x00" + OTHER_PASSWORD, "(str, value not shown)"),
    ("wgfleet_restore_from_db_password", "pw\r\n" + OTHER_PASSWORD, "(str, value not shown)"),
    ("wgfleet_restore_from_db_password", "p" * 1025, "(str, value not shown)"),
    ("wgfleet_restore_from_db_password", 12345, "(int, value not shown)"),
    ("wgfleet_restore_from_db_password", None, "(NoneType, value not shown)"),
    ("wgfleet_restore_from_key_generation", 0, '"0" (int)'),
    ("wgfleet_restore_from_key_generation", 1000001, '"1000001" (int)'),
    ("wgfleet_restore_from_key_generation", "1x", '"1x" (str)'),
    ("wgfleet_restore_from_key_generation", True, "(bool)"),
    ("wgfleet_restore_from_key_generation", "2\n", '"2\\n" (str)'),
])
def test_a_bad_login_of_a_server_outside_the_inventory_is_refused_naming_it(tmp_path, var, value, shown):
    rc, msg, output = run_checks(tmp_path, **{**OUTSIDE, var: value})
    assert rc != 0, output[-1500:]
    assert msg.startswith(f"{var}: "), msg
    assert shown in msg, msg
    assert not [s for s in SECRETS if s in output]


@pytest.mark.parametrize("missing", ["wgfleet_restore_from_db_user", "wgfleet_restore_from_db_password"])
def test_a_server_outside_the_inventory_needs_its_own_login(tmp_path, missing):
    extra = {k: v for k, v in OUTSIDE.items() if k != missing}
    rc, msg, output = run_checks(tmp_path, **extra)
    assert rc != 0, output[-1500:]
    assert msg.startswith('wgfleet_restore_from: "vpn-gone.example.org" is no host'), msg
    assert "wgfleet_restore_from_db_user and wgfleet_restore_from_db_password" in msg, msg
    assert not [s for s in SECRETS if s in output]


@pytest.mark.parametrize("extra", [{}, {"wgfleet_restore_snapshot": "2024-05-01T12:00:00Z"},
                                   {"wgfleet_db_host": ["db1.example.org", "db2.example.org"]},
                                   {"wgfleet_db_host": "db1.example.org,db2.example.org"},
                                   {"wgfleet_restore_snapshot": "2024-05-01 23:59:59.5+14:00"},
                                   {"wgfleet_restore_snapshot": 42}, OUTSIDE,
                                   {**OUTSIDE, "wgfleet_restore_from_key_generation": 3},
                                   {**OUTSIDE, "wgfleet_restore_from_key_generation": "2"},
                                   {"wgfleet_restore_force": "yes", "wgfleet_restore_handshake_timeout": 0}])
def test_good_options_pass(tmp_path, extra):
    rc, msg, output = run_checks(tmp_path, **extra)
    assert rc == 0, msg or output[-1500:]
    assert not [s for s in SECRETS if s in output]


def hkdf_key_digest(master_b64: str, server_id: str, generation: int) -> str:
    """sha256 (hex) of the key the design derives (HKDF-SHA256, cryptography's own, not the collection's)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"wgfleet.wireguard fleet master v1",
               info=b"wgfleet.wireguard server key v1\0" + str(generation).encode() + b"\0" + server_id.encode(),
               ).derive(base64.b64decode(master_b64))
    return hashlib.sha256(base64.b64encode(key)).hexdigest()


# localhost and two other servers of the inventory, each with its own login (in the inventory: extra vars would
# be every host's).
FLEET_BASE = {"wgfleet_db_host": "db.example.org", "wgfleet_master_key": KEY}
FLEET = {"all": {"children": {"wireguard_servers": {"hosts": {
    "localhost": {"wgfleet_server_id": "localhost", "wgfleet_db_user": "wgfleet_localhost", "wgfleet_db_password": PASSWORD},
    "srv-a": {"wgfleet_server_id": "a.example", "wgfleet_db_user": "wgfleet_srv_a", "wgfleet_db_password": OTHER_PASSWORD,
              "wgfleet_server_key_generation": 3},
    "srv-b": {"wgfleet_server_id": "srv-b", "wgfleet_db_user": "wgfleet_srv_b", "wgfleet_db_password": "PW-b-SECRET"},
}}}}}
# What the restore would read with: the login, the generation, and the digest of the key (never the key).
SHOW = [{"name": "Show the restore's login and key digest", "ansible.builtin.debug": {
    "msg": "{{ restore__db_user }} {{ restore__key_generation }} {{ restore__key | hash('sha256') }}"}}]


def shown(output: str) -> list[str]:
    data = json.loads(output[output.index("{"):output.rindex("}") + 1])
    return data["plays"][0]["tasks"][-1]["hosts"]["localhost"]["msg"].split()


@pytest.mark.parametrize(("extra", "login", "server_id", "generation"), [
    ({}, "wgfleet_localhost", "localhost", 1),
    ({"wgfleet_restore_from": "a.example"}, "wgfleet_srv_a", "a.example", 3),
    ({"wgfleet_restore_from": "srv-b"}, "wgfleet_srv_b", "srv-b", 1),
    ({"wgfleet_restore_from": "gone.example", "wgfleet_restore_from_db_user": "wgfleet_gone",
      "wgfleet_restore_from_db_password": OTHER_PASSWORD, "wgfleet_restore_from_key_generation": "2"},
     "wgfleet_gone", "gone.example", 2),
])
def test_the_restore_reads_with_the_restored_servers_own_login_and_key(tmp_path, extra, login, server_id, generation):
    rc, msg, output = run_checks(tmp_path, inventory=FLEET, after=SHOW, base=FLEET_BASE, **extra)
    assert rc == 0, msg or output[-1500:]
    user, gen, digest = shown(output)
    assert (user, int(gen)) == (login, generation)
    assert digest == hkdf_key_digest(KEY, server_id, generation), "not the restored server's own derived key"
    assert digest != hkdf_key_digest(KEY, "localhost" if server_id != "localhost" else "a.example", generation)
    assert not [s for s in SECRETS if s in output]


def test_one_server_id_on_two_hosts_is_refused(tmp_path):
    fleet = json.loads(json.dumps(FLEET))
    fleet["all"]["children"]["wireguard_servers"]["hosts"]["srv-c"] = {"wgfleet_server_id": "a.example"}
    rc, msg, output = run_checks(tmp_path, inventory=fleet, base=FLEET_BASE, wgfleet_restore_from="a.example")
    assert rc != 0, output[-1500:]
    assert msg == 'wgfleet_restore_from: "a.example" is the server id of srv-a and srv-c in the inventory: one server id, one host', msg
