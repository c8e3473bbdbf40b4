"""wg_peer's wgrest backend against the real wgrest and real wireguard-go devices.

What a user would notice is read independently of the code under test: the
device with ``wg show dump``, a client's handshake and ping through the tunnel.
"""
from __future__ import annotations

import time

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgrest, _wgrest_backend, _wgrest_dump
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError, WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import sh
from tests.helpers.playbook import run_playbook
from tests.helpers.scripted_http import JSON, ScriptedHTTP
from tests.helpers.server_host import write_conf
from tests.helpers.wgrest_real import Client, WgrestHost

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "backend-token-19c2"


@pytest.fixture
def server(lab, tmp_path):
    """A server host running interface NAME (10.231.8.1/24, with wgrest's restore hook) behind the real wgrest."""
    host = WgrestHost(lab)
    host.name = lab.wg_name("b")
    host.private_key = _keys.generate_private_key()
    host.dump_dir = tmp_path / "wgrest"
    host.conf = write_conf(tmp_path / "etc" / f"{host.name}.conf",
                           f"[Interface]\nPrivateKey = {host.private_key}\nListenPort = 51820\n"
                           f"Address = 10.231.8.1/24\nPostUp = {_wgrest_dump.restore_hook(str(host.dump_dir))}\n")
    host.quick("up", host.conf)
    host.start_wgrest(host.dump_dir, token=TOKEN)
    return host


def peer_task(server, task: str, **options) -> dict:
    return {"name": task, "wgfleet.wireguard.wg_peer": {
        "interface": server.name, "backend": "wgrest", "api_url": server.api_url, "api_token": TOKEN, **options}}


def test_backend_check_mode_apply_and_idempotence(server):
    backend = _wgrest_backend.WgrestBackend(server.name, server.api_url, TOKEN)
    key, psk = new_key(), _keys.generate_private_key()
    specs = [PeerSpec(public_key=key, allowed_ips=["10.231.8.20/32"], preshared_key=psk, persistent_keepalive=25)]

    predicted = backend.apply(specs, exclusive=False, check_mode=True)
    assert predicted["changed"] and predicted["peers"]["added"] == [key]
    assert server.peers(server.name) == {}, "check mode must not touch the device"
    assert psk not in str(predicted), "preshared key leaked into the result"
    assert "PresharedKey = **redacted**" in predicted["diff"]["after"]

    done = backend.apply(specs, exclusive=False, check_mode=False)
    assert {k: done[k] for k in ("changed", "peers", "peer_count", "applied")} == \
        {k: predicted[k] for k in ("changed", "peers", "peer_count")} | {"applied": "api"}
    row = server.peers(server.name)[key]
    assert (row[1], row[3], row[7]) == (psk, "10.231.8.20/32", "25")

    again = backend.apply(specs, exclusive=False, check_mode=False)
    assert not again["changed"] and again["applied"] == "none"


def test_backend_updates_clears_and_removes(server):
    backend = _wgrest_backend.WgrestBackend(server.name, server.api_url, TOKEN)
    keep, other = new_key(), new_key()
    backend.apply([PeerSpec(public_key=keep, allowed_ips=["10.231.8.21/32"], endpoint="172.31.250.9:51820"),
                   PeerSpec(public_key=other, allowed_ips=["10.231.8.22/32"])], False, False)

    # PATCH path: new allowed IPs replace the old ones.
    res = backend.apply([PeerSpec(public_key=keep, allowed_ips=["10.231.8.23/32"])], False, False)
    assert res["peers"]["updated"] == [keep] and server.peers(server.name)[keep][3] == "10.231.8.23/32"
    # PATCH cannot forget an endpoint: the backend re-creates the peer.
    res = backend.apply([PeerSpec(public_key=keep, endpoint="")], False, False)
    assert res["changed"] and server.peers(server.name)[keep][2] == "(none)"
    assert server.peers(server.name)[keep][3] == "10.231.8.23/32"
    # exclusive removes what is not listed.
    res = backend.apply([PeerSpec(public_key=keep)], exclusive=True, check_mode=False)
    assert res["peers"]["removed"] == [other] and set(server.peers(server.name)) == {keep}
    res = backend.apply([PeerSpec(public_key=keep, state="absent")], False, False)
    assert res["peers"]["removed"] == [keep] and server.peers(server.name) == {}


def test_labels_are_ignored_with_a_warning_and_never_read_as_change(server):
    backend = _wgrest_backend.WgrestBackend(server.name, server.api_url, TOKEN)
    spec = PeerSpec(public_key=new_key(), allowed_ips=["10.231.8.30/32"], name="alice")
    first = backend.apply([spec], False, False)
    assert first["changed"] and "no field for a peer label" in first["warnings"][0]
    assert not backend.apply([spec], False, False)["changed"]


def test_backend_errors_are_clear(server):
    with pytest.raises(WgValueError, match=r"interface: 'nosuchwg0' does not exist on wgrest"):
        _wgrest_backend.WgrestBackend("nosuchwg0", server.api_url, TOKEN).apply([], False, True)
    with pytest.raises(WgError, match=r"authentication failed.*check api_token"):
        _wgrest_backend.WgrestBackend(server.name, server.api_url, "wrong").apply([], False, True)


def test_wg_peer_backend_wgrest_through_ansible_with_a_handshake(server, lab, tmp_path):
    """check -> nothing changed -> apply -> a client completes a handshake -> again: not changed."""
    client = Client(lab, server, tmp_path, "10.231.8.2")
    psk = _keys.generate_private_key()
    sh("wg", "set", client.name, "peer", _keys.public_key(server.private_key), "preshared-key", "/dev/stdin",
       input=psk + "\n", netns=client.ns)
    task = peer_task(server, "peer", public_key=client.public_key, allowed_ips=["10.231.8.2/32"], preshared_key=psk,
                     name="laptop")

    res = run_playbook([task], check=True, diff=True)
    assert psk not in res.output and TOKEN not in res.output, "secret leaked in check mode output"
    assert res.rc == 0, res.output[-2000:]
    assert res["peer"]["changed"] and server.peers(server.name) == {}

    res = run_playbook([task], diff=True)
    assert psk not in res.output and TOKEN not in res.output, "secret leaked in apply output"
    assert res.rc == 0, res.output[-2000:]
    assert res["peer"]["changed"] and res["peer"]["applied"] == "api"
    assert "no field for a peer label" in res.output
    assert client.can_reach_server(), "no traffic through the tunnel after the API added the peer"
    assert server.peers(server.name)[client.public_key][4] != "0", "no handshake recorded on the server"

    res = run_playbook([task])
    assert res.rc == 0 and not res["peer"]["changed"]


def revoked(client, server) -> None:
    """The revoked client cannot complete a new handshake, and the server does not hold it."""
    assert client.public_key not in server.peer_keys(server.name)
    client.reconnect()
    assert not client.can_reach_server(deadline=4), "the revoked client still passes traffic"
    assert client.handshake() == 0, "the revoked client completed a handshake"


@pytest.mark.parametrize("how", ["absent", "exclusive"])
def test_a_revoked_peer_can_no_longer_handshake(server, lab, tmp_path, how):
    """Revocation through wgrest takes the peer off the live device at once, and it stays off after a restart
    of the interface (the restore hook reads wgrest's dump, which no longer has it)."""
    client = Client(lab, server, tmp_path, "10.231.8.3")
    other = new_key()
    present = peer_task(server, "add", peers=[{"public_key": client.public_key, "allowed_ips": ["10.231.8.3/32"]},
                                              {"public_key": other, "allowed_ips": ["10.231.8.4/32"]}])
    res = run_playbook([present])
    assert res.rc == 0, res.output[-2000:]
    assert client.can_reach_server() and client.handshake() > 0

    if how == "absent":
        revoke = peer_task(server, "revoke", public_key=client.public_key, state="absent")
    else:
        revoke = peer_task(server, "revoke", exclusive=True,
                           peers=[{"public_key": other, "allowed_ips": ["10.231.8.4/32"]}])
    res = run_playbook([revoke, {**revoke, "name": "again"}])
    assert res.rc == 0, res.output[-2000:]
    assert res["revoke"]["changed"] and res["revoke"]["peers"]["removed"] == [client.public_key]
    assert not res["again"]["changed"]
    revoked(client, server)
    assert server.peer_keys(server.name) == {other}

    server.quick("down", server.conf)
    server.quick("up", server.conf)
    assert server.peer_keys(server.name) == {other}, "the restart brought the revoked peer back"
    revoked(client, server)


def test_malformed_answers_fail_cleanly(tmp_path):
    """A server answering garbage in place of wgrest: a message, no traceback, no half-applied change."""
    import json

    answers = {"/v1/devices/wg0/": {"name": "wg0"}, "/v1/devices/wg0/peers/": [{"foo": 1}]}
    with ScriptedHTTP(lambda request: (200, JSON, json.dumps(answers.get(request.path, [])).encode())) as server:
        task = {"name": "peer", "wgfleet.wireguard.wg_peer": {
            "interface": "wg0", "backend": "wgrest", "api_url": server.url, "api_token": TOKEN,
            "public_key": new_key()}, "ignore_errors": True}
        for garbage in ([{"foo": 1}], ["x", 1], [{"public_key": 5}], [{"public_key": new_key(), "allowed_ips": "x"}],
                        {"not": "a list"}):
            answers["/v1/devices/wg0/peers/"] = garbage
            start = time.monotonic()
            res = run_playbook([task])
            assert res["peer"]["failed"], res.output[-1500:]
            assert "wgrest" in res["peer"]["msg"] and "unexpected error" not in res["peer"]["msg"], res["peer"]["msg"]
            assert "Traceback" not in res.output and TOKEN not in res.output
            assert time.monotonic() - start < 60
        assert all(r.method == "GET" for r in server.requests), "a change was attempted on a garbage read"


def test_wg_peer_bulk_exclusive_through_ansible(server):
    stray = new_key()
    _wgrest.WgrestClient(server.api_url, TOKEN).create_peer(server.name, {"public_key": stray})
    keys = [new_key() for _unused in range(3)]
    task = peer_task(server, "bulk", exclusive=True,
                     peers=[{"public_key": k, "allowed_ips": [f"10.231.8.{40 + i}/32"]} for i, k in enumerate(keys)])
    res = run_playbook([task])
    assert res.rc == 0, res.output[-2000:]
    assert res["bulk"]["peers"]["removed"] == [stray] and sorted(res["bulk"]["peers"]["added"]) == sorted(keys)
    assert set(server.peers(server.name)) == set(keys)
    res = run_playbook([task])
    assert not res["bulk"]["changed"]


@pytest.mark.parametrize("token", ["wrong-tk-6d1f", "tk-8f2a6d\n", "tk-8f2a6d\r\nX-Evil: 1", "tk-ö8f2a6d",
                                   "tk 8f2a6d", "tk\x008f2a6d"])
def test_wg_peer_reports_a_bad_token_naming_the_option(server, token):
    task = {**peer_task(server, "bad", public_key=new_key()), "ignore_errors": True}
    task["wgfleet.wireguard.wg_peer"]["api_token"] = token
    res = run_playbook([task])
    assert res["bad"]["failed"] and "api_token" in res["bad"]["msg"], res.output[-1500:]
    assert "unexpected error" not in res["bad"]["msg"] and "Traceback" not in res.output
    assert "8f2a6d" not in res.output and "6d1f" not in res.output, "the token leaked"
