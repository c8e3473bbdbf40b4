"""wg_client_config through its own main(): check mode, idempotence, hostile values, no secret in any output."""
from __future__ import annotations

import contextlib
import io
import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.modules import wg_client_config
from tests.helpers.keys import PEER_A

VALUES = ["x\ny", "x\x1cy", "x\u2028y", "x\x00y", "", "a" * 100_000, {"a": 1}, [1, 2], ["a\nb"], [None], True, 2**70,
          -1, "#", "../x"]
OPTIONS = ["name", "dest_dir", "address", "server_public_key", "endpoint", "dns", "allowed_ips",
           "persistent_keepalive", "mtu", "preshared_key", "qr_code"]


def call(args) -> tuple[str, dict]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        wg_client_config.main()
    text = out.getvalue()
    return text, json.loads(text[text.index("{"):])


def full(dest) -> dict:
    return {"name": "alice", "dest_dir": str(dest), "address": ["10.10.0.5/32"], "server_public_key": PEER_A,
            "endpoint": "vpn.example.com:51820", "dns": ["10.10.0.1"]}


def test_check_mode_writes_nothing_then_a_run_makes_0600_files_then_nothing_changes(tmp_path):
    dest = tmp_path / "clients"
    _out, predicted = call({**full(dest), "_ansible_check_mode": True})
    assert predicted["changed"] and not dest.exists(), predicted
    text, made = call(full(dest))
    assert made["changed"] and set(made["changes"]) == {"key", "preshared_key", "config", "qr_code"}, made
    secrets = [(dest / f).read_text().strip() for f in ("alice.key", "alice.psk")]
    assert not any(s in text for s in secrets)
    assert sorted(os.listdir(dest)) == [".alice.lock", "alice.conf", "alice.key", "alice.png", "alice.psk"]
    assert all(os.stat(dest / f).st_mode & 0o077 == 0 for f in os.listdir(dest))
    conf = (dest / "alice.conf").read_text()
    assert f"PrivateKey = {secrets[0]}" in conf and f"PresharedKey = {secrets[1]}" in conf
    assert "AllowedIPs = 0.0.0.0/0, ::/0" in conf  # the full tunnel by default
    assert made["config"] == conf.replace(secrets[0], "**redacted**").replace(secrets[1], "**redacted**")
    _out, again = call(full(dest))
    assert not again["changed"] and again["public_key"] == made["public_key"]


@pytest.mark.parametrize("option", OPTIONS)
def test_hostile_values_in_every_option(tmp_path, option, monkeypatch):
    monkeypatch.chdir(tmp_path)
    dest = tmp_path / "clients"
    call(full(dest))
    before = {f: (dest / f).read_bytes() for f in os.listdir(dest)}
    secrets = [before["alice.key"].decode().strip(), before["alice.psk"].decode().strip()]
    for value in VALUES:
        text, data = call({**full(dest), option: value})
        assert "unexpected error" not in data.get("msg", ""), (option, value, data.get("msg"))
        assert not any(s in text for s in secrets), (option, repr(value)[:40])
        if data.get("failed") and option not in ("name", "dest_dir"):
            assert data["msg"].startswith(f"{option}:") or "argument" in data["msg"], (option, data["msg"][:200])
            assert {f: (dest / f).read_bytes() for f in os.listdir(dest)} == before
        call(full(dest))
