"""wg_restore's file options against a real PostgreSQL, with apply=false (files only, no device touched)."""
from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher, generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.helpers.keys import PEER_A, PSK, SERVER_KEY
from tests.helpers.playbook import run_playbook

NAME = "wgattack2"


@pytest.fixture
def stored(pg_server, pg_db):
    key = generate_key()
    store = Store(pg_server.params(pg_db), KeyCipher.from_base64(key))
    try:
        store.migrate()
        peer = Peer(public_key=PEER_A, allowed_ips=("10.10.0.2/32",), preshared_key=PSK)
        iface = Interface(private_key=SERVER_KEY, listen_port=51820, address=("10.10.0.1/24",), peers=(peer,))
        store.save_state("srv-attack", {NAME: iface})
    finally:
        store.close()
    return {**pg_server.module_params(pg_db, unix_socket=True), "server_id": "srv-attack", "encryption_key": key}


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_restored_file_others_may_read_is_made_0600_and_reported(stored, tmp_path):
    args = {**stored, "config_dir": str(tmp_path)}
    conf = tmp_path / f"{NAME}.conf"
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": args, "register": "restore"}])
    assert res.rc == 0, res.output[-2000:]
    assert mode(conf) == 0o600
    text = conf.read_bytes()
    os.chmod(conf, 0o644)  # someone loosened it: the private key is readable by every user

    res = run_playbook([{"name": "predict", "wgfleet.wireguard.wg_restore": args, "register": "predict"}], check=True)
    assert res.rc == 0, res.output[-2000:]
    assert res["predict"]["changed"], "check mode does not predict the mode fix"
    assert mode(conf) == 0o644, "check mode changed the mode"

    res = run_playbook([{"name": "fix", "wgfleet.wireguard.wg_restore": args, "register": "fix"},
                        {"name": "again", "wgfleet.wireguard.wg_restore": args, "register": "again"}], diff=True)
    assert res.rc == 0, res.output[-2000:]
    assert res["fix"]["changed"] and res["fix"]["interfaces"][NAME]["file"] == "updated"
    assert mode(conf) == 0o600
    assert conf.read_bytes() == text
    assert not res["again"]["changed"]
    for secret in (SERVER_KEY, PSK, stored["encryption_key"], stored["login_password"]):
        assert secret not in res.output
