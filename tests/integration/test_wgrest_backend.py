"""wg_peer's wgrest backend against the wgrest double and real wireguard-go devices."""
from __future__ import annotations

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgrest
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError, WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import ping, wg_dump
from tests.helpers.playbook import run_playbook
from tests.wgrest_server.harness import ServerHost, write_conf

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "backend-token-19c2"


@pytest.fixture
def server(lab, tmp_path):
    """A server host running wg0-like interface NAME (10.231.8.1/24) behind the wgrest double."""
    host = ServerHost(lab)
    host.name = lab.wg_name("b")
    host.private_key = _keys.generate_private_key()
    host.conf = write_conf(tmp_path / "etc" / f"{host.name}.conf",
                           f"[Interface]\nPrivateKey = {host.private_key}\nListenPort = 51820\n"
                           "Address = 10.231.8.1/24\n")
    host.quick("up", host.conf)
    host.start_wgrest(tmp_path / "wgrest", token=TOKEN)
    return host


def live(host) -> dict:
    """The device's peers as rows of ``wg show dump``, read independently of the code under test."""
    return {row[0]: row for row in wg_dump(host.ns, host.name)[1:]}


def test_backend_check_mode_apply_and_idempotence(server):
    backend = _wgrest.WgrestBackend(server.name, server.api_url, TOKEN)
    key, psk = new_key(), _keys.generate_private_key()
    specs = [PeerSpec(public_key=key, allowed_ips=["10.231.8.20/32"], preshared_key=psk, persistent_keepalive=25)]

    predicted = backend.apply(specs, exclusive=False, check_mode=True)
    assert predicted["changed"] and predicted["peers"]["added"] == [key]
    assert live(server) == {}, "check mode must not touch the device"
    assert psk not in str(predicted), "preshared key leaked into the result"
    assert "PresharedKey = **redacted**" in predicted["diff"]["after"]

    done = backend.apply(specs, exclusive=False, check_mode=False)
    assert {k: done[k] for k in ("changed", "peers", "peer_count", "applied")} == \
        {k: predicted[k] for k in ("changed", "peers", "peer_count")} | {"applied": "api"}
    row = live(server)[key]
    assert (row[1], row[3], row[7]) == (psk, "10.231.8.20/32", "25")

    again = backend.apply(specs, exclusive=False, check_mode=False)
    assert not again["changed"] and again["applied"] == "none"


def test_backend_updates_clears_and_removes(server):
    backend = _wgrest.WgrestBackend(server.name, server.api_url, TOKEN)
    keep, other = new_key(), new_key()
    backend.apply([PeerSpec(public_key=keep, allowed_ips=["10.231.8.21/32"], endpoint="172.31.250.9:51820"),
                   PeerSpec(public_key=other, allowed_ips=["10.231.8.22/32"])], False, False)

    # PATCH path: new allowed IPs replace the old ones.
    res = backend.apply([PeerSpec(public_key=keep, allowed_ips=["10.231.8.23/32"])], False, False)
    assert res["peers"]["updated"] == [keep] and live(server)[keep][3] == "10.231.8.23/32"
    # PATCH cannot forget an endpoint: the backend re-creates the peer.
    res = backend.apply([PeerSpec(public_key=keep, endpoint="")], False, False)
    assert res["changed"] and live(server)[keep][2] == "(none)"
    assert live(server)[keep][3] == "10.231.8.23/32"
    # exclusive removes what is not listed.
    res = backend.apply([PeerSpec(public_key=keep)], exclusive=True, check_mode=False)
    assert res["peers"]["removed"] == [other] and set(live(server)) == {keep}
    res = backend.apply([PeerSpec(public_key=keep, state="absent")], False, False)
    assert res["peers"]["removed"] == [keep] and live(server) == {}


def test_labels_are_ignored_with_a_warning_and_never_read_as_change(server):
    backend = _wgrest.WgrestBackend(server.name, server.api_url, TOKEN)
    spec = PeerSpec(public_key=new_key(), allowed_ips=["10.231.8.30/32"], name="alice")
    first = backend.apply([spec], False, False)
    assert first["changed"] and "no field for a peer label" in first["warnings"][0]
    assert not backend.apply([spec], False, False)["changed"]


def test_backend_errors_are_clear(server):
    with pytest.raises(WgValueError, match=r"interface: 'nosuchwg0' does not exist on wgrest"):
        _wgrest.WgrestBackend("nosuchwg0", server.api_url, TOKEN).apply([], False, True)
    with pytest.raises(WgError, match=r"authentication failed.*check api_token"):
        _wgrest.WgrestBackend(server.name, server.api_url, "wrong").apply([], False, True)


def test_wg_peer_backend_wgrest_through_ansible_with_a_handshake(server, lab):
    """check -> nothing changed -> apply -> a client completes a handshake -> again: not changed."""
    client_ns = lab.host("cli")
    server_ip, _client_ip = lab.link(server.ns, client_ns)
    client_priv, psk = _keys.generate_private_key(), _keys.generate_private_key()
    client_pub = _keys.public_key(client_priv)
    client_name = lab.wg_name("c")
    conf = write_conf(server.conf.parent.parent / "client" / f"{client_name}.conf",
                      f"[Interface]\nPrivateKey = {client_priv}\nAddress = 10.231.8.2/24\n\n[Peer]\n"
                      f"PublicKey = {_keys.public_key(server.private_key)}\nPresharedKey = {psk}\n"
                      f"Endpoint = {server_ip}:51820\nAllowedIPs = 10.231.8.1/32\nPersistentKeepalive = 1\n")
    client_host = type("Client", (), {"ns": client_ns})()
    ServerHost.quick(client_host, "up", conf)

    task = {"name": "peer", "wgfleet.wireguard.wg_peer": {
        "interface": server.name, "backend": "wgrest", "api_url": server.api_url, "api_token": TOKEN,
        "public_key": client_pub, "allowed_ips": ["10.231.8.2/32"], "preshared_key": psk, "name": "laptop"}}

    res = run_playbook([task], check=True, diff=True)
    assert res.rc == 0, res.output[-2000:]
    assert res["peer"]["changed"] and live(server) == {}
    assert psk not in res.output and TOKEN not in res.output, "secret leaked in check mode output"

    res = run_playbook([task], diff=True)
    assert res.rc == 0, res.output[-2000:]
    assert res["peer"]["changed"] and res["peer"]["applied"] == "api"
    assert "no field for a peer label" in res.output
    assert psk not in res.output and TOKEN not in res.output, "secret leaked in apply output"
    assert ping(client_ns, "10.231.8.1"), "no traffic through the tunnel after the API added the peer"
    assert live(server)[client_pub][4] != "0", "no handshake recorded on the server"

    res = run_playbook([task])
    assert res.rc == 0 and not res["peer"]["changed"]


def test_wg_peer_bulk_exclusive_through_ansible(server):
    stray = new_key()
    _wgrest.WgrestClient(server.api_url, TOKEN).create_peer(server.name, {"public_key": stray})
    keys = [new_key() for _unused in range(3)]
    task = {"name": "bulk", "wgfleet.wireguard.wg_peer": {
        "interface": server.name, "backend": "wgrest", "api_url": server.api_url, "api_token": TOKEN,
        "exclusive": True,
        "peers": [{"public_key": k, "allowed_ips": [f"10.231.8.{40 + i}/32"]} for i, k in enumerate(keys)]}}
    res = run_playbook([task])
    assert res.rc == 0, res.output[-2000:]
    assert res["bulk"]["peers"]["removed"] == [stray] and sorted(res["bulk"]["peers"]["added"]) == sorted(keys)
    assert set(live(server)) == set(keys)
    res = run_playbook([task])
    assert not res["bulk"]["changed"]


def test_wg_peer_reports_a_bad_token_naming_the_option(server):
    task = {"name": "bad", "wgfleet.wireguard.wg_peer": {
        "interface": server.name, "backend": "wgrest", "api_url": server.api_url, "api_token": "wrong-token",
        "public_key": new_key()}, "ignore_errors": True}
    res = run_playbook([task])
    assert res["bad"]["failed"] and "check api_token" in res["bad"]["msg"]
    assert "wrong-token" not in res.output
