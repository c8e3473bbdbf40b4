"""The roles' meta/argument_specs.yml given careless values, through ansible.builtin.validate_argument_spec on
localhost (nothing but the validation runs): a mistyped or wrongly typed key of an interface entry is refused,
naming it, and a private key never shows in the output."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.helpers.keys import SERVER_KEY
from tests.helpers.playbook import COLLECTIONS, REPO, ensure_collection_path


def spec(role: str, entry_point: str = "main") -> dict:
    """The options of the role's entry point without their documentation (which may hold Jinja examples)."""
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in ("description", "default")}
        return value

    data = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return clean(data["argument_specs"][entry_point]["options"])


def validate(tmp_path, role: str, provided: dict, entry_point: str = "main") -> tuple[bool, str, str]:
    ensure_collection_path()
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "validate", "ansible.builtin.validate_argument_spec": {"argument_spec": spec(role, entry_point)},
        "vars": provided,
        "ignore_errors": True}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    proc = subprocess.run(
        [str(os.path.join(os.path.dirname(sys.executable), "ansible-playbook")), "-i", "localhost,", "-c", "local",
         str(tmp_path / "play.yml"), "-e", f"ansible_python_interpreter={sys.executable}"],
        capture_output=True, text=True, env=env, timeout=300, check=False)
    result = json.loads(proc.stdout[proc.stdout.index("{"):])["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return bool(result.get("failed")), str(result.get("msg")), proc.stdout + proc.stderr


@pytest.mark.parametrize(("entry", "named"), [
    ({"name": "wg0", "privte_key": SERVER_KEY}, "privte_key"),         # a typo: the key would be silently ignored
    ({"name": "wg0", "listenport": 51820}, "listenport"),
    ({"name": "wg0", "mtu": [1420], "private_key": SERVER_KEY}, "mtu"),  # wrong type (a list into str passes as text)
    ({"name": "wg0", "listen_port": "²"}, "listen_port"),
    ({"name": "wg0", "state": "gone"}, "state"),
    ({"address": ["10.10.0.1/24"], "private_key": SERVER_KEY}, "name"),  # no name
])
def test_a_bad_interface_entry_is_refused_naming_the_key_never_showing_a_private_key(tmp_path, entry, named):
    failed, msg, output = validate(tmp_path, "server", {"server_interfaces": [entry]})
    assert failed, output[-1500:]
    assert named in msg, msg
    assert SERVER_KEY not in output


def test_a_good_interface_entry_passes(tmp_path):
    entry = {"name": "wg0", "address": ["10.10.0.1/24"], "listen_port": 51820, "private_key": SERVER_KEY,
             "state": "present", "mtu": 1420, "dns": ["10.10.0.53"], "table": "off", "fwmark": 0,
             "pre_up": [], "post_up": ["true"], "pre_down": [], "post_down": []}
    failed, msg, output = validate(tmp_path, "server", {"server_interfaces": [entry]})
    assert not failed, msg
    assert SERVER_KEY not in output


@pytest.mark.parametrize(("entry", "named"), [
    ({"server_id": "srv1", "login": "wgfleet_srv1", "pasword": "secret-pw-1"}, "pasword"),  # a typo
    ({"server_id": "srv1", "login": "wgfleet_srv1", "password": "secret-pw-1", "state": "revoked"}, "state"),
    ({"login": "wgfleet_srv1", "password": "secret-pw-1"}, "server_id"),  # no server id
])
def test_a_bad_database_servers_entry_is_refused_naming_the_key_never_showing_a_password(tmp_path, entry, named):
    failed, msg, output = validate(tmp_path, "database", {"database_servers": [entry]})
    assert failed, output[-1500:]
    assert named in msg, msg
    assert "secret-pw-1" not in output


# roles/stack/tasks/validate.yml no longer repeats these checks: the spec alone refuses them, naming the option
# and the value, before the role's first task.
@pytest.mark.parametrize("entry_point", ["main", "loader"])
def test_a_restart_policy_docker_does_not_know_is_refused_by_the_stack_spec(tmp_path, entry_point):
    failed, msg, output = validate(tmp_path, "stack", {"stack_restart_policy": "sometimes"}, entry_point)
    assert failed, output[-1500:]
    assert "stack_restart_policy" in msg and "sometimes" in msg, msg


@pytest.mark.parametrize("entry_point", ["main", "loader"])
def test_a_known_restart_policy_passes_the_stack_spec(tmp_path, entry_point):
    failed, msg, _output = validate(tmp_path, "stack", {"stack_restart_policy": "on-failure"}, entry_point)
    assert not failed, msg
