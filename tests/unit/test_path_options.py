"""Path options of every module given careless values: refused before anything is read or written, by a short
message naming the option (never a 1 MB echo, a "cannot read <path>" without the option, or a key)."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.modules import wg_backup, wg_interface, wg_peer, wg_restore
from tests.helpers.keys import PEER_B

NAME = "wgattack1"


def call(module, args) -> dict:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    text = out.getvalue()
    return json.loads(text[text.index("{"):])


def base_args(module, tmp_path) -> dict:
    db = {"login_unix_socket": str(tmp_path / "no-database-here"), "server_id": "srv-attack"}
    return {
        wg_interface: {"name": NAME, "up": False},
        wg_peer: {"interface": NAME, "public_key": PEER_B},
        wg_backup: {**db, "interfaces": [NAME], "allow_plaintext_keys": True},
        wg_restore: db,
    }[module]


MODULES = [wg_interface, wg_peer, wg_backup, wg_restore]
IDS = ["wg_interface", "wg_peer", "wg_backup", "wg_restore"]


@pytest.mark.parametrize("module", MODULES, ids=IDS)
@pytest.mark.parametrize("value", ["/tmp/" + "a" * 1_000_000, "", "/tmp/x\x00y", "/tmp/x\u2028y"],
                         ids=["1MB", "empty", "nul", "u2028"])
def test_config_dir_is_checked_first_and_named(module, value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = call(module, {**base_args(module, tmp_path), "config_dir": value})
    assert result.get("failed"), result
    assert result["msg"].startswith("config_dir: "), result["msg"][:300]
    assert len(result["msg"]) < 300, result["msg"][:300]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("module", [wg_backup, wg_restore], ids=["wg_backup", "wg_restore"])
def test_a_1mb_key_file_path_is_refused_naming_the_option(module, tmp_path):
    result = call(module, {**base_args(module, tmp_path), "config_dir": str(tmp_path),
                           "encryption_key_file": "/tmp/" + "k" * 1_000_000})
    assert result.get("failed"), result
    assert result["msg"].startswith("encryption_key_file: "), result["msg"][:300]
    assert len(result["msg"]) < 300


def test_a_1mb_api_peers_dir_is_refused_naming_the_option(tmp_path):
    result = call(wg_interface, {"name": NAME, "up": False, "config_dir": str(tmp_path / "etc"),
                                 "api_peers_dir": "/var/lib/" + "w" * 1_000_000})
    assert result.get("failed"), result
    assert result["msg"].startswith("api_peers_dir: "), result["msg"][:300]
    assert len(result["msg"]) < 300
    assert not (tmp_path / "etc").exists()
