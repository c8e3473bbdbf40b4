"""_module.run_core: the one place where the core's answers and errors leave a module."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files, _keys, _wgconf
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._module import run_core
from tests.helpers.keys import PEER_A, PSK, SERVER_KEY
from tests.helpers.module_process import module_tracebacks

FILE = f"[Interface]\nPrivateKey = {SERVER_KEY}\n[Peer]\nPublicKey = {PEER_A}\nPresharedKey = {PSK}\n"


def run(action, capsys, diff=False):
    args = {"_ansible_diff": diff, "_ansible_module_name": "wg_test", "_ansible_tracebacks_for": ["error"]}
    with patch_module_args(args), module_tracebacks():
        module = AnsibleModule(argument_spec={}, supports_check_mode=True)
        with pytest.raises(SystemExit):
            run_core(module, action)
    out = capsys.readouterr().out
    return out, json.loads(out)


def test_a_core_error_goes_out_as_is_but_without_the_secrets_the_run_read(capsys):
    def action():
        iface = _wgconf.parse(FILE)
        raise WgError(f"could not apply {iface.private_key} / {PSK} for peer {PEER_A}")

    out, data = run(action, capsys)
    assert data["failed"] and SERVER_KEY not in out and PSK not in out
    assert data["msg"].startswith("could not apply **redacted** / **redacted** for peer " + PEER_A)


def test_a_generated_key_never_goes_out_even_inside_a_result(capsys):
    made = {}

    def action():
        made["key"] = _keys.generate_private_key()
        return {"changed": True, "note": f"generated {made['key']}", "nested": [{"k": made["key"]}]}

    out, data = run(action, capsys)
    assert made["key"] not in out
    assert data["note"] == "generated **redacted**"


def test_an_unexpected_error_says_what_and_where_without_a_key(capsys, tmp_path):
    def action():
        _wgconf.parse(FILE)
        _files.write_atomic(str(tmp_path / "wg\x000.conf"), FILE)

    out, data = run(action, capsys)
    assert data["failed"]
    msg = data["msg"]
    assert msg.startswith("unexpected error while running wg_test: ValueError: ")
    assert "null" in msg  # the exception's own words
    assert "(at plugins/module_utils/_files.py:" in msg
    assert SERVER_KEY not in out and PSK not in out
    assert "Traceback" in data["exception"] and "_files.py" in data["exception"]


def test_an_unexpected_error_quoting_a_key_it_never_saw_hides_it_anyway(capsys):
    other = _keys.public_key(SERVER_KEY)

    def action():
        raise KeyError(f"peer {other} and secret {SERVER_KEY}")

    out, data = run(action, capsys)
    assert SERVER_KEY not in out, "an unexpected error's text is scrubbed of everything key-shaped"
    assert "KeyError" in data["msg"]


def test_diff_is_dropped_unless_asked_for(capsys):
    _out, data = run(lambda: {"changed": False, "diff": {"before": "a", "after": "a"}}, capsys)
    assert "diff" not in data
    _out, data = run(lambda: {"changed": False, "diff": {"before": "a", "after": "a"}}, capsys, diff=True)
    assert data["diff"] == {"before": "a", "after": "a"}


def test_an_unexpected_error_names_the_module_when_ansible_does_not_send_its_name(capsys):
    """Without ``_ansible_module_name`` AnsibleModule calls itself ``basic.py``; the module file's name is used."""
    import types

    def action():
        raise OSError(28, "No space left on device")

    with patch_module_args({"_ansible_tracebacks_for": ["error"]}), module_tracebacks():
        module = AnsibleModule(argument_spec={}, supports_check_mode=True)
        assert module._name == "basic.py"
        # run_core called from a module file as AnsiballZ runs it: as __main__, with its dotted name in __spec__.
        spec = types.SimpleNamespace(name="ansible_collections.wgfleet.wireguard.plugins.modules.wg_peer")
        with pytest.raises(SystemExit):
            exec("run_core(module, action)", {"__name__": "__main__", "__spec__": spec, "run_core": run_core,
                                              "module": module, "action": action})
    data = json.loads(capsys.readouterr().out)
    assert data["msg"].startswith("unexpected error while running wg_peer: OSError: "), data["msg"]
