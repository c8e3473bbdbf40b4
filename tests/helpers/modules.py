"""Tasks for wg_interface and wg_peer, and the two-host tunnel most module tests start from (fixtures)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.helpers.keys import PSK
from tests.helpers.netns import wg_dump
from tests.helpers.playbook import run_playbook


def iface_task(name, config_dir, register="r", **options):
    return {"name": register, "wgfleet.wireguard.wg_interface": {"name": name, "config_dir": config_dir, **options},
            "register": register}


def peer_task(interface, config_dir, register="p", **options):
    return {"name": register, "wgfleet.wireguard.wg_peer": {"interface": interface, "config_dir": config_dir, **options},
            "register": register}


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest() if os.path.exists(path) else None


@pytest.fixture
def tunnel(lab, tmp_path):
    """A server and a client namespace, each with a WireGuard interface made by wg_interface."""
    srv, cli = lab.host("srv"), lab.host("cli")
    srv_ip, _cli_ip = lab.link(srv, cli)
    hosts = {"srv": {"ns": srv, "wg": lab.wg_name("s"), "dir": str(tmp_path / "srv"), "addr": "10.10.0.1/24"},
             "cli": {"ns": cli, "wg": lab.wg_name("c"), "dir": str(tmp_path / "cli"), "addr": "10.10.0.2/24"}}
    for role, host in hosts.items():
        port = 51820 if role == "srv" else 51830
        res = run_playbook([iface_task(host["wg"], host["dir"], address=[host["addr"]], listen_port=port)],
                           netns=host["ns"])
        assert res.rc == 0, res.output
        host["public_key"] = res["r"]["public_key"]
        host["conf"] = os.path.join(host["dir"], f"{host['wg']}.conf")
    hosts["srv"]["underlay"] = srv_ip
    return hosts


def connect(tunnel, check=False):
    srv, cli = tunnel["srv"], tunnel["cli"]
    res_srv = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=cli["public_key"], allowed_ips=["10.10.0.2/32"],
                                      preshared_key=PSK, name="client one")], netns=srv["ns"], check=check)
    res_cli = run_playbook([peer_task(cli["wg"], cli["dir"], public_key=srv["public_key"], allowed_ips=["10.10.0.0/24"],
                                      endpoint=f"{srv['underlay']}:51820", persistent_keepalive=25,
                                      preshared_key=PSK)], netns=cli["ns"], check=check)
    assert res_srv.rc == 0, res_srv.output
    assert res_cli.rc == 0, res_cli.output
    return res_srv["p"], res_cli["p"]


def latest_handshake(ns, wg, public_key):
    for row in wg_dump(ns, wg)[1:]:
        if row[0] == public_key:
            return int(row[4])
    return None


@pytest.fixture
def connected(tunnel):
    srv_peer, cli_peer = connect(tunnel)
    assert srv_peer["changed"] and cli_peer["changed"]
    assert srv_peer["applied"] == "live"
    return tunnel
