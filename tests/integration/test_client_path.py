"""The path from "a person needs access" to a working tunnel, with real wireguard-go and the real wgrest.

wg_client_config makes the client's keys and files on the controller (this
process's host), wg_peer lets the client in on the server (a namespace with its
own /run/wireguard, behind the real wgrest) and allocates its address; a client
namespace then brings the very file up with wg-quick. What the user notices is
read by other means: ``wg show dump`` on the server, a ping through the tunnel,
``zbarimg`` (Debian's zbar-tools) for the QR code.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import stat
import subprocess
import threading
import time
import urllib.request

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgrest_dump
from tests.conftest import needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.playbook import run_playbook
from tests.helpers.server_host import write_conf
from tests.helpers.wgrest_real import WgrestHost

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "client-path-token-5d1"
SUBNET = "10.231.12.0/24"


@pytest.fixture
def server(lab, tmp_path):
    """A server host with interface NAME (10.231.12.1/24) from a wg-quick file, behind the real wgrest."""
    host = WgrestHost(lab)
    host.name = lab.wg_name("s")
    host.private_key = _keys.generate_private_key()
    host.etc = tmp_path / "etc"
    host.conf = write_conf(host.etc / f"{host.name}.conf",
                           f"[Interface]\nPrivateKey = {host.private_key}\nListenPort = 51820\n"
                           f"Address = 10.231.12.1/24\nPostUp = {_wgrest_dump.restore_hook(str(tmp_path / 'wgrest'))}\n")
    host.quick("up", host.conf)
    host.start_wgrest(tmp_path / "wgrest", token=TOKEN)
    host.client_ns = lab.host("cli")
    host.underlay, _client_ip = lab.link(host.ns, host.client_ns)
    return host


def api(server, method: str, path: str, body: dict | None = None):
    req = urllib.request.Request(f"{server.api_url}/v1/devices/{server.name}/{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as answer:
        return json.loads(answer.read() or b"null")


def on_server(server, tasks, check=False):
    res = run_playbook(tasks, prefix=server.prefix, check=check)
    assert res.rc == 0, res.output[-3000:]
    return res


def peer_task(server, register="p", **options):
    return {"name": register, "register": register, "wgfleet.wireguard.wg_peer": {
        "interface": server.name, "config_dir": str(server.etc), **options}}


def client_task(name, dest, register="c", **options):
    return {"name": register, "register": register, "wgfleet.wireguard.wg_client_config": {
        "name": name, "dest_dir": str(dest), **options}, "delegate_to": "localhost"}


def allowed_ips_on_device(server) -> dict:
    return {row[0]: row[3] for row in server.dump(server.name)[1:]}


def make_client(lab, server, tmp_path, backend_options: dict):
    """Keys on the controller, the peer on the server, the config back on the controller; returns the results."""
    name, dest = lab.wg_name("c"), tmp_path / "clients"
    keys = run_playbook([client_task(name, dest)])
    assert keys.rc == 0, keys.output
    public = keys["c"]["public_key"]
    psk = (dest / f"{name}.psk").read_text().strip()
    peer = on_server(server, [peer_task(server, public_key=public, preshared_key=psk, **backend_options)])["p"]
    config = run_playbook([client_task(name, dest, address=peer["addresses"][public],
                                       server_public_key=_keys.public_key(server.private_key),
                                       endpoint=f"{server.underlay}:51820", allowed_ips=[SUBNET],
                                       dns=["10.231.12.1"], persistent_keepalive=1)], verbosity=3)
    assert config.rc == 0, config.output
    secrets = [(dest / f"{name}.key").read_text().strip(), psk]
    assert not any(s in keys.output + config.output for s in secrets), "a client secret in the playbook's output"
    return name, dest, public, peer, config["c"]


def bring_up(server, conf_text: str, path) -> None:
    """The client's own file, without its DNS line (resolvconf would change this machine's resolver)."""
    lines = [line for line in conf_text.split("\n") if not line.startswith("DNS = ")]
    write_conf(path, "\n".join(lines))
    sh("env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go", "wg-quick", "up", str(path), netns=server.client_ns)


@pytest.mark.parametrize("backend", ["file", "wgrest"])
def test_a_collection_made_client_config_completes_a_handshake(lab, server, tmp_path, backend):
    options = {"address_pool": ["10.231.12.0/25"]} if backend == "file" else \
        {"address_pool": ["10.231.12.0/25"], "backend": "wgrest", "api_url": server.api_url, "api_token": TOKEN}
    name, dest, public, peer, result = make_client(lab, server, tmp_path, options)
    conf = dest / f"{name}.conf"
    text = conf.read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600 and stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE((dest / f"{name}.key").stat().st_mode) == 0o600
    # The file, read line by line: everything a user needs.
    assert "Address = 10.231.12.2/32" in text and "DNS = 10.231.12.1" in text
    assert f"PublicKey = {_keys.public_key(server.private_key)}" in text
    assert f"Endpoint = {server.underlay}:51820" in text and f"AllowedIPs = {SUBNET}" in text
    assert "PersistentKeepalive = 1" in text and "PresharedKey = " in text
    assert "PrivateKey = **redacted**" in result["config"] and "PresharedKey = **redacted**" in result["config"]
    assert allowed_ips_on_device(server)[public] == "10.231.12.2/32"

    bring_up(server, text, tmp_path / "up" / f"{name}.conf")
    assert ping(server.client_ns, "10.231.12.1", count=2, deadline=8), "no traffic through the client's tunnel"
    assert int(server.peers(server.name)[public][4]) > 0, "the server saw no handshake"

    # The QR code holds exactly the file.
    decoded = subprocess.run(["zbarimg", "--quiet", "--raw", "-Sbinary", str(dest / f"{name}.png")],
                             capture_output=True, check=True).stdout
    assert decoded == text.encode()

    # Again: nothing changes, the address stays.
    again = make_client_again(server, name, dest, public, peer)
    assert not again["changed"] and conf.read_text() == text


def make_client_again(server, name, dest, public, peer):
    psk = (dest / f"{name}.psk").read_text().strip()
    backend = {"backend": "wgrest", "api_url": server.api_url, "api_token": TOKEN} if peer["applied"] == "api" else {}
    rerun = on_server(server, [peer_task(server, public_key=public, preshared_key=psk, address_pool=["10.231.12.0/25"],
                                         **backend)])["p"]
    assert not rerun["changed"] and rerun["addresses"][public] == peer["addresses"][public]
    res = run_playbook([client_task(name, dest, address=rerun["addresses"][public],
                                    server_public_key=_keys.public_key(server.private_key),
                                    endpoint=f"{server.underlay}:51820", allowed_ips=[SUBNET], dns=["10.231.12.1"],
                                    persistent_keepalive=1)])
    assert res.rc == 0, res.output
    return res["c"]


def test_two_hundred_peers_get_free_addresses_never_one_an_application_holds(server):
    # An application made three peers through the API, inside the pool (it should not, but it might).
    app_keys = {new_key(): f"10.231.12.{n}/32" for n in (2, 5, 77)}
    for key, cidr in app_keys.items():
        api(server, "POST", "peers/", {"public_key": key, "allowed_ips": [cidr]})
    keys = [new_key() for _n in range(200)]
    res = on_server(server, [peer_task(server, address_pool=["10.231.12.0/24"],
                                       peers=[{"public_key": k} for k in keys])])["p"]
    assert res["changed"] and len(res["allocated"]) == 200
    live = allowed_ips_on_device(server)
    given = [live[k] for k in keys]
    assert len(set(given)) == 200 and not set(given) & set(app_keys.values())
    net = ipaddress.ip_network(SUBNET)
    assert all(ipaddress.ip_interface(a).ip in net for a in given) and "10.231.12.1/32" not in given
    before = server.conf.read_bytes()
    again = on_server(server, [peer_task(server, address_pool=["10.231.12.0/24"],
                                         peers=[{"public_key": k} for k in reversed(keys)])])["p"]
    assert not again["changed"] and server.conf.read_bytes() == before and allowed_ips_on_device(server) == live


def test_two_concurrent_runs_get_different_addresses(server):
    batches = [[new_key() for _n in range(20)] for _batch in range(2)]
    results: list = [None, None]

    def run(i):
        results[i] = run_playbook([peer_task(server, address_pool=["10.231.12.0/25"],
                                             peers=[{"public_key": k} for k in batches[i]])], prefix=server.prefix)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert all(r is not None and r.rc == 0 for r in results), [r.output[-1500:] for r in results if r]
    live = allowed_ips_on_device(server)
    given = [live[k] for batch in batches for k in batch]
    assert len(given) == 40 and len(set(given)) == 40


def test_an_expired_peer_can_no_longer_complete_a_handshake(lab, server, tmp_path):
    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=25)
    name, dest, public, _peer, _result = make_client(lab, server, tmp_path, {
        "address_pool": ["10.231.12.0/25"], "expires": soon.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert f"# Expires = {soon.strftime('%Y-%m-%dT%H:%M:%SZ')}" in server.conf.read_text()
    bring_up(server, (dest / f"{name}.conf").read_text(), tmp_path / "up" / f"{name}.conf")
    assert ping(server.client_ns, "10.231.12.1", count=2, deadline=8)

    time.sleep(max(0.0, (soon - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1)
    predicted = on_server(server, [peer_task(server, public_key=new_key(), state="absent")], check=True)["p"]
    assert predicted["expired"] == [public] and public in server.peer_keys(server.name)
    done = on_server(server, [peer_task(server, public_key=new_key(), state="absent")])["p"]
    assert done["changed"] and done["expired"] == [public]
    assert public not in server.peer_keys(server.name) and public not in server.conf.read_text()

    # The client forgets its session and tries again: no new handshake.
    server_key = _keys.public_key(server.private_key)
    sh("wg", "set", name, "peer", server_key, "remove", netns=server.client_ns)
    conf = (tmp_path / "up" / f"{name}.conf").read_text()
    sh("wg", "addconf", name, "/dev/stdin", netns=server.client_ns,
       input=conf[conf.index("[Peer]"):])
    assert not ping(server.client_ns, "10.231.12.1", count=2, deadline=7)
    assert int(wg_dump(server.client_ns, name)[1][4]) == 0


def test_client_config_bad_input_names_the_option_and_writes_nothing(tmp_path):
    dest = tmp_path / "clients"
    base = {"server_public_key": new_key(), "endpoint": "vpn.example.com:51820", "address": ["10.231.12.9/32"]}
    for option, value in (("name", "a\nb"), ("name", "x" * 100_000), ("name", "a\x00b"), ("endpoint", "h:1\u2028"),
                          ("dns", ["10.0.0.1\nPostUp = id"]), ("allowed_ips", ["0.0.0.0/0\r"]),
                          ("address", ["10.231.12.9/32\x00"]), ("server_public_key", "x" * 100_000),
                          ("address", [])):
        args = {"name": "alice", **base, option: value}
        res = run_playbook([client_task(args.pop("name"), dest, **args)])
        assert res.rc != 0 and res["c"]["msg"].startswith(f"{option}:"), (option, res["c"].get("msg"))
    assert not os.path.exists(dest)
