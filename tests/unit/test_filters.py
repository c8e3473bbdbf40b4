"""The collection's filters, run by ansible-playbook on the controller as a playbook calls them.

They run in a playbook rather than imported here: importing Ansible's controller code into the test process
changes how AnsibleModule reports errors for the module tests that share it.
"""
from __future__ import annotations

import subprocess

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import derive_server_key, generate_key
from tests.helpers.playbook import run_playbook


def _value(expression: str, **extra_vars):
    result = run_playbook([{"name": "eval", "ansible.builtin.debug": {"msg": "{{ " + expression + " }}"}}],
                          extra_vars=extra_vars)
    return result, result.tasks.get("eval", {})


def test_public_key_matches_wg_pubkey_and_server_key_matches_the_core():
    private, master = _keys.generate_private_key(), generate_key()
    expected = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout
    result, task = _value("[k | wgfleet.wireguard.public_key, m | wgfleet.wireguard.server_key('srv1'),"
                          " m | wgfleet.wireguard.server_key('srv1', 2)]", k=private, m=master)
    assert task.get("msg") == [expected.strip(), derive_server_key(master, "srv1"),
                               derive_server_key(master, "srv1", 2)], result.output[-2000:]


@pytest.mark.parametrize("expression", ["k | wgfleet.wireguard.public_key",
                                        "m | wgfleet.wireguard.server_key(sid)",
                                        "k | wgfleet.wireguard.server_key('srv1')"])
def test_bad_values_fail_naming_the_filter_without_quoting_them(expression):
    private, master = _keys.generate_private_key(), generate_key()
    bad_key = private[:-2] + "\n"
    result, _task = _value(expression, k=bad_key, m=master, sid="srv1\nsrv2")
    assert result.rc != 0
    assert ("public_key: " in result.output) or ("server_key: " in result.output), result.output[-2000:]
    assert master not in result.output and bad_key.strip() not in result.output
