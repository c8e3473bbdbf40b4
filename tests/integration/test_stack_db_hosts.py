"""The stack role's database host list: a list or a comma-separated string of hosts, one port or one per host,
written to wgrest-sync's .env settings as libpq's comma-separated form; an empty entry, a line break, more
than 16 hosts or ports that do not match are refused before anything is written (the role's own checks,
run through include_role on localhost)."""
from __future__ import annotations

import pytest

from tests.helpers.playbook import run_playbook

BASE = {"stack_wgrest_token": "t" * 32, "stack_sync_encryption_key": "A" * 43 + "=", "stack_sync_db_password": "pw",
        "stack_images_from": "registry", "stack_wgrest_image": "registry.example.org/wgrest:1",
        "stack_sync_image": "registry.example.org/wgrest-sync:1"}


def validate(**variables):
    return run_playbook([
        {"block": [{"name": "validate", "ansible.builtin.include_role": {
            "name": "wgfleet.wireguard.stack", "tasks_from": "validate"}, "vars": {**BASE, **variables}}],
         "rescue": [{"name": "refused", "ansible.builtin.debug": {"msg": "{{ ansible_failed_result.msg }}"}}]},
        {"name": "env", "ansible.builtin.debug": {"msg": "{{ stack__env | default({}) }}"}},
    ])


@pytest.mark.parametrize(("host", "port", "env_host", "env_port"), [
    ("db.example.org", 5432, "db.example.org", "5432"),
    (["db1.example.org", "db2.example.org"], 5432, "db1.example.org,db2.example.org", "5432"),
    ("db1, db2", "5432,5433", "db1,db2", "5432,5433"),
    (["db1", "db2"], [5432, 6432], "db1,db2", "5432,6432"),
])
def test_hosts_and_ports_reach_the_sync_as_libpq_lists(host, port, env_host, env_port):
    res = validate(stack_sync_db_host=host, stack_sync_db_port=port)
    assert "refused" not in res.tasks, res["refused"]["msg"]
    env = res["env"]["msg"]
    assert (env["WGSYNC_DB_HOST"], env["WGSYNC_DB_PORT"]) == (env_host, env_port)


@pytest.mark.parametrize(("host", "port"), [
    ("db1,,db2", 5432), (["db1", ""], 5432), ("db1\ndb2", 5432), ("db1,db2\n", 5432), (["db1", "db2\x85"], 5432), (["db1", "db2\u2028"], 5432),
    (["db1", "db2\x00"], 5432), ([f"db{i}" for i in range(17)], 5432), ("", 5432),
    (["db1", "db2", "db3"], [5432, 5433]), ("db1", "5432,5433"), (["db1", "db2"], [5432, 0]),
    (["db1", "db2"], "5432,x"),
])
def test_a_bad_host_list_is_refused_before_anything_is_written(host, port):
    res = validate(stack_sync_db_host=host, stack_sync_db_port=port)
    message = res["refused"]["msg"]
    assert "stack_sync_db_host" in message and "stack_sync_db_port" in message, message
    assert res["env"]["msg"] == {}, "the settings were collected after a refused host list"
