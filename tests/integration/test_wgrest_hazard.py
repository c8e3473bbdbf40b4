"""wgrest's file dumps, with the real wgrest: the hazard reproduced, and the collection's layout surviving it.

The layout (docs/wgrest.md): wgrest's --config-dir is its own directory, never
the wg-quick one, and every wg-quick file carries the PostUp of
``_wgrest_dump.restore_hook`` that gives a fresh interface back the peers that only
wgrest's dump holds. Each test checks what a user would see: the file's
bytes, the interface's addresses and hook, the device's peers.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import (
    _files,
    _keys,
    _wgconf,
    _wgrest,
    _wgrest_backend,
    _wgrest_dump,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.wgrest_real import WgrestHost

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "hazard-token-5d01"


@pytest.fixture
def layout(lab, tmp_path):
    """The collection's layout: /etc/wireguard-like dir owned by the collection, wgrest's own dump dir."""
    etc, dump = tmp_path / "etc-wireguard", tmp_path / "wgrest-wireguard"
    name = lab.wg_name("h")
    marker = tmp_path / "postup-ran"
    file_peer = _wgconf.Peer(public_key=new_key(), allowed_ips=["10.231.9.2/32"], name="managed-in-file")
    iface = _wgconf.Interface(
        private_key=_keys.generate_private_key(), listen_port=51820, address=["10.231.9.1/24"], mtu=1380,
        post_up=[f"touch {marker}", _wgrest_dump.restore_hook(str(_wgrest_dump.check_dump_dir(str(dump), str(etc))))],
        pre_down=[f"rm -f {marker}"], peers=[file_peer])
    path = _files.config_path(str(etc), name)
    _files.write_config(path, iface)
    return {"etc": etc, "dump": dump, "name": name, "path": path, "marker": marker, "iface": iface,
            "file_peer": file_peer}


def api_peers() -> list[PeerSpec]:
    return [PeerSpec(public_key=new_key(), allowed_ips=["10.231.9.10/32"], preshared_key=_keys.generate_private_key(),
                     persistent_keepalive=25),
            PeerSpec(public_key=new_key(), allowed_ips=["10.231.9.11/32"], endpoint="172.31.251.7:51820")]


def device_peers(host, name) -> dict[str, tuple]:
    """(preshared key, endpoint, allowed IPs, keepalive) per peer, from ``wg show dump``."""
    return {key: (r[1], r[2], r[3], r[7]) for key, r in host.peers(name).items()}


def test_the_hazard_is_real_when_wgrest_shares_the_wg_quick_dir(lab, layout):
    """What the collection prevents: wgrest, pointed at the wg-quick dir, strips the file."""
    host = WgrestHost(lab)
    host.quick("up", layout["path"])
    host.start_wgrest(layout["etc"], token=TOKEN)
    stripped = _files.read_config(layout["path"])
    assert stripped.address == () and stripped.mtu is None and stripped.post_up == ()
    assert stripped.private_key == layout["iface"].private_key
    with pytest.raises(WgValueError, match="would drop Address"):
        _wgrest_dump.check_dump_dir(str(layout["etc"]), str(layout["etc"]))


def test_wgrest_restarts_and_dumps_never_touch_the_wg_quick_file(lab, layout):
    host = WgrestHost(lab)
    host.quick("up", layout["path"])
    before = Path(layout["path"]).read_bytes()
    host.start_wgrest(layout["dump"], token=TOKEN, dump_interval="200ms")
    specs = api_peers()
    _wgrest_backend.WgrestBackend(layout["name"], host.api_url, TOKEN).apply(specs, False, False)
    host.stop_wgrest()  # SIGTERM: one more dump
    host.start_wgrest(layout["dump"], token=TOKEN, dump_interval="200ms")
    time.sleep(0.6)  # a few interval dumps
    assert Path(layout["path"]).read_bytes() == before, "wgrest rewrote the wg-quick file"
    # Peers survive the wgrest restart, and its dump (in its own dir) holds them.
    assert {s.public_key for s in specs} <= set(device_peers(host, layout["name"]))
    dumped = _files.read_config(str(layout["dump"] / f"{layout['name']}.conf"))
    assert {s.public_key for s in specs} <= set(dumped.peer_map())
    again = _wgrest_backend.WgrestBackend(layout["name"], host.api_url, TOKEN).apply(specs, False, False)
    assert not again["changed"]


def test_api_peers_survive_an_interface_restart_with_their_settings(lab, layout):
    host = WgrestHost(lab)
    host.quick("up", layout["path"])
    host.start_wgrest(layout["dump"], token=TOKEN)
    backend = _wgrest_backend.WgrestBackend(layout["name"], host.api_url, TOKEN)
    specs = api_peers()
    gone = PeerSpec(public_key=new_key(), allowed_ips=["10.231.9.12/32"])
    backend.apply([*specs, gone], False, False)
    backend.apply([PeerSpec(public_key=gone.public_key, state="absent")], False, False)
    before = device_peers(host, layout["name"])

    host.quick("down", layout["path"])
    assert not layout["marker"].exists()
    host.quick("up", layout["path"])

    assert device_peers(host, layout["name"]) == before
    assert gone.public_key not in before  # a peer deleted through the API stays deleted
    assert host.addresses(layout["name"]) == ["10.231.9.1/24"] and layout["marker"].exists()
    assert _files.read_config(layout["path"]) == layout["iface"], "the wg-quick file changed"
    assert not backend.apply(specs, False, False)["changed"]


def test_file_peers_keep_the_file_settings_over_a_stale_dump(lab, layout):
    """A peer managed in the file is restored from the file, never from an older wgrest dump."""
    host = WgrestHost(lab)
    host.quick("up", layout["path"])
    host.start_wgrest(layout["dump"], token=TOKEN)  # its start-up dump holds the file peer's old AllowedIPs
    newer = layout["iface"].replace(peers=(layout["file_peer"].replace(allowed_ips=["10.231.9.3/32"]),))
    _files.write_config(layout["path"], newer)
    host.quick("down", layout["path"])
    host.quick("up", layout["path"])
    assert device_peers(host, layout["name"])[layout["file_peer"].public_key][2] == "10.231.9.3/32"


def test_api_peers_survive_a_host_restart(lab, layout):
    """A crash (no hooks, no last dump) then a boot: wg-quick up from the file, then wgrest."""
    host = WgrestHost(lab, "before")
    host.quick("up", layout["path"])
    host.start_wgrest(layout["dump"], token=TOKEN)
    specs = api_peers()
    _wgrest_backend.WgrestBackend(layout["name"], host.api_url, TOKEN).apply(specs, False, False)
    expected = device_peers(host, layout["name"])
    host.stop_wgrest(kill=True)
    host.crash_interface(layout["name"])

    booted = WgrestHost(lab, "after")  # a new network namespace: only the disk is left
    booted.quick("up", layout["path"])  # what wg-quick@.service does at boot
    booted.start_wgrest(layout["dump"], token=TOKEN)

    assert device_peers(booted, layout["name"]) == expected
    assert booted.addresses(layout["name"]) == ["10.231.9.1/24"] and layout["marker"].exists()
    assert _files.read_config(layout["path"]) == layout["iface"]
    listed = {p["public_key"] for p in _wgrest.WgrestClient(booted.api_url, TOKEN).peers(layout["name"])}
    assert listed == set(expected)
