"""wg_backup and wg_restore through ansible-playbook, against wireguard-go interfaces in namespaces and real PostgreSQL.

PostgreSQL runs in the root namespace; the playbooks run inside test namespaces
and reach it through its Unix socket (filesystem sockets are shared by namespaces).
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files, _keys, _wgrest_backend, _wgrest_dump
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, parse
from tests.conftest import needs_lab
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.playbook import run_playbook

pytestmark = [needs_lab, pytest.mark.lab]


def quick(ns: str, action: str, path) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "env", "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go",
                    "wg-quick", action, str(path)], check=True, capture_output=True, text=True, timeout=60)


def new_peer(i: int, **extra) -> tuple[str, Peer]:
    private = _keys.generate_private_key()
    values = {"public_key": _keys.public_key(private), "allowed_ips": (f"10.62.{100 + i}.2/32",),
              "preshared_key": _keys.generate_private_key(), "name": f"laptop {i}"}
    values.update(extra)
    return private, Peer(**values)


def secrets_of(*ifaces: Interface) -> list[str]:
    out = []
    for iface in ifaces:
        out.append(iface.private_key)
        out.extend(p.preshared_key for p in iface.peers if p.preshared_key)
    return out


def db_args(pg_server, db: str, key: str | None) -> dict:
    args = pg_server.module_params(db, unix_socket=True)
    if key:
        args["encryption_key"] = key
    return args


def no_leaks(output: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in output, "a key leaked into the playbook output"


def read(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def succeeded(res, secrets: list[str]) -> None:
    """The play passed; its output is shown only once it is known to hold no key."""
    no_leaks(res.output, secrets)
    assert res.rc == 0, res.output[-3000:]


EXPIRES = "2031-05-01T12:00:00Z"


@pytest.fixture
def host_a(lab, tmp_path):
    """Server A: one interface running (with a peer added only live), one only in its file."""
    ns = lab.host("a")
    conf = tmp_path / "a"
    running, idle = lab.wg_name("ar"), lab.wg_name("ai")
    # One running peer and the idle one expire: the expiry is a file comment the database keeps too.
    peers = tuple(new_peer(i)[1].replace(expires=EXPIRES if i == 1 else None) for i in range(3))
    iface_run = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.62.0.1/24",),
                          mtu=1420, post_up=("true up",), peers=peers)
    iface_idle = Interface(private_key=_keys.generate_private_key(), listen_port=51821,
                           address=("10.63.0.1/24", "fd63::1/64"), dns=("10.63.0.53",), table="off",
                           pre_up=("echo pre",), post_down=("echo post down",), fwmark=0x42,
                           peers=(new_peer(9, endpoint="vpn.example.org:51820", persistent_keepalive=25)[1]
                                  .replace(expires=EXPIRES),))
    _files.write_config(_files.config_path(str(conf), running), iface_run)
    _files.write_config(_files.config_path(str(conf), idle), iface_idle)
    quick(ns, "up", _files.config_path(str(conf), running))
    live_only = new_peer(20, preshared_key=None, name=None)[1]
    sh("wg", "set", running, "peer", live_only.public_key, "allowed-ips", live_only.allowed_ips[0], netns=ns)
    expected = {running: iface_run.replace(peers=(*peers, live_only)), idle: iface_idle}
    return {"ns": ns, "conf": conf, "running": running, "idle": idle, "expected": expected}


# What host_a's two files say in wg-quick's own keys, as host_a wrote them.
WG_QUICK_KEYS = ("Address", "DNS", "MTU", "Table", "FwMark", "PreUp", "PostUp", "PostDown")
WG_QUICK_WRITTEN = {
    "running": {"Address": ["10.62.0.1/24"], "DNS": [], "MTU": ["1420"], "Table": [], "FwMark": [], "PreUp": [],
                "PostUp": ["true up"], "PostDown": []},
    "idle": {"Address": ["10.63.0.1/24, fd63::1/64"], "DNS": ["10.63.0.53"], "MTU": [], "Table": ["off"],
             "FwMark": ["0x42"], "PreUp": ["echo pre"], "PostUp": [], "PostDown": ["echo post down"]},
}


def test_backup_and_restore_round_trip(pg_server, pg_db, host_a, lab, tmp_path):
    key = generate_key()
    db = db_args(pg_server, pg_db, key)
    expected = host_a["expected"]
    secrets = [*secrets_of(*expected.values()), key, db["login_password"]]
    backup = {"server_id": "server-a", "config_dir": str(host_a["conf"]), **db}
    res = run_playbook([
        {"name": "predict", "wgfleet.wireguard.wg_backup": backup, "check_mode": True},
        {"name": "backup", "wgfleet.wireguard.wg_backup": backup},
        {"name": "again", "wgfleet.wireguard.wg_backup": backup},
        {"name": "other server", "wgfleet.wireguard.wg_backup": {
            **backup, "server_id": "server-b", "interfaces": [host_a["idle"]]}},
    ], netns=host_a["ns"], verbosity=3)
    succeeded(res, secrets)
    assert res["predict"]["changed"] and res["predict"]["snapshot_id"] is None
    assert res["backup"]["changed"] and res["backup"]["counts"] == {"interfaces": 2, "peers": 5, "peer_rows_written": 5}
    assert res["backup"]["interfaces"][host_a["running"]]["live_only_peers"] == 1
    assert res["again"]["changed"] is False
    assert res["again"]["snapshot_id"] == res["backup"]["snapshot_id"]
    assert res["again"]["counts"]["peer_rows_written"] == 0
    # Another server in the same database: its own snapshot, server-a's state untouched (checked below).
    assert res["other server"]["changed"] and res["other server"]["counts"]["interfaces"] == 1
    assert pg_server.admin("SELECT server_id, count(*) FROM snapshots GROUP BY 1 ORDER BY 1", dbname=pg_db) == [
        ("server-a", 1), ("server-b", 1)]

    # Onto another host (only its files: restore without apply), check mode and diff first.
    ns_b = lab.host("b")
    conf_b = tmp_path / "b"
    restore = {"server_id": "server-a", "config_dir": str(conf_b), **db}
    res = run_playbook([
        {"name": "predict", "wgfleet.wireguard.wg_restore": restore, "check_mode": True, "diff": True},
        {"name": "restore", "wgfleet.wireguard.wg_restore": restore},
        {"name": "again", "wgfleet.wireguard.wg_restore": restore},
    ], netns=ns_b, verbosity=3)
    succeeded(res, secrets)
    predicted = res["predict"]
    assert predicted["changed"] and predicted["snapshot_id"] == res["restore"]["snapshot_id"]
    assert "**redacted**" in predicted["diff"][0]["after"]
    assert res["restore"]["changed"] and not res["again"]["changed"]
    assert res["restore"]["counts"] == {"interfaces": 2, "peers": 5}
    for name, iface in expected.items():
        path = _files.config_path(str(conf_b), name)
        assert parse(read(path)) == iface
        # And as wg-quick itself reads the file.
        stripped = wg_quick_strip(path)
        # (Compared to a boolean, so that a failure shows no key.)
        key_restored = stripped["private_key"] == iface.private_key
        assert key_restored, f"{name}: the restored file's private key is not the backed-up one"
        assert {k: v.get("AllowedIPs") for k, v in stripped["peers"].items()} == {
            p.public_key: ", ".join(p.allowed_ips) for p in iface.peers}
        psks_restored = {k: v.get("PresharedKey") for k, v in stripped["peers"].items()} == {
            p.public_key: p.preshared_key for p in iface.peers}
        assert psks_restored, f"{name}: a restored preshared key is not the backed-up one"
        assert {k: (v.get("Endpoint"), v.get("PersistentKeepalive")) for k, v in stripped["peers"].items()} == {
            p.public_key: (p.endpoint, str(p.persistent_keepalive) if p.persistent_keepalive else None)
            for p in iface.peers}
        # Expiries, as the file's comment lines (read by the test).
        assert read(path).count(f"# Expires = {EXPIRES}") == sum(1 for p in iface.peers if p.expires)
        # wg-quick's own settings, read from the file by the test, against the values host_a wrote.
        assert {key: quick_lines(path, key) for key in WG_QUICK_KEYS} == WG_QUICK_WRITTEN[
            "running" if name == host_a["running"] else "idle"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert res["restore"]["interfaces"][name]["public_key"] == _keys.public_key(iface.private_key)
        # Check mode ran first and wrote nothing: the real run still had to create each file.
        assert res["predict"]["interfaces"][name]["file"] == res["restore"]["interfaces"][name]["file"] == "created"


def test_history_wrong_key_and_unreachable_database(pg_server, pg_db, host_a, tmp_path):
    key = generate_key()
    db = db_args(pg_server, pg_db, key)
    conf = host_a["conf"]
    idle = host_a["idle"]
    backup = {"server_id": "server-a", "config_dir": str(conf), **db}
    first = run_playbook([{"name": "b", "wgfleet.wireguard.wg_backup": backup}], netns=host_a["ns"])["b"]
    old = host_a["expected"][idle]
    time.sleep(0.05)
    _files.write_config(_files.config_path(str(conf), idle), old.replace(mtu=1300))
    second = run_playbook([{"name": "b", "wgfleet.wireguard.wg_backup": backup}], netns=host_a["ns"])["b"]
    assert second["changed"] and second["snapshot_id"] > first["snapshot_id"]
    (first_time,), = pg_server.admin("SELECT created_at FROM snapshots WHERE id = %s", dbname=pg_db,
                                     params=(first["snapshot_id"],))

    target = tmp_path / "restored"
    restore = {"server_id": "server-a", "config_dir": str(target), "interfaces": [idle], **db}
    wrong = {**restore, "encryption_key": generate_key()}
    unreachable = {**restore, "login_host": "127.0.0.1", "login_port": 1}
    res = run_playbook([
        {"name": "by id", "wgfleet.wireguard.wg_restore": {**restore, "snapshot": str(first["snapshot_id"])}},
        {"name": "by time", "wgfleet.wireguard.wg_restore": {
            **restore, "config_dir": str(tmp_path / "by_time"), "snapshot": first_time.isoformat()}},
        {"name": "wrong key", "wgfleet.wireguard.wg_restore": {**wrong, "config_dir": str(tmp_path / "w")},
         "ignore_errors": True},
        {"name": "no database", "wgfleet.wireguard.wg_restore": {**unreachable, "config_dir": str(tmp_path / "u")},
         "ignore_errors": True},
        {"name": "backup wrong key", "wgfleet.wireguard.wg_backup": {**backup, "encryption_key": wrong["encryption_key"]},
         "ignore_errors": True},
        {"name": "backup no database", "wgfleet.wireguard.wg_backup": {**backup, "login_host": "127.0.0.1",
                                                                       "login_port": 1}, "ignore_errors": True},
    ], netns=host_a["ns"], verbosity=3)
    no_leaks(res.output, [*secrets_of(old), key, wrong["encryption_key"], db["login_password"]])
    assert res["by id"]["snapshot_id"] == first["snapshot_id"]
    assert parse(read(_files.config_path(str(target), idle))) == old
    assert res["by time"]["snapshot_id"] == first["snapshot_id"]
    assert parse(read(_files.config_path(str(tmp_path / "by_time"), idle))) == old
    assert res["wrong key"]["failed"]
    assert "encryption_key does not match the key that encrypted snapshot" in res["wrong key"]["msg"]
    assert "Traceback" not in res["wrong key"]["msg"]
    assert res["no database"]["failed"]
    assert res["no database"]["msg"].startswith("cannot connect to PostgreSQL at 127.0.0.1:1/")
    assert res["backup wrong key"]["failed"] and "does not match" in res["backup wrong key"]["msg"]
    assert res["backup no database"]["failed"] and "cannot connect" in res["backup no database"]["msg"]
    assert not (tmp_path / "w").exists() and not (tmp_path / "u").exists()
    assert pg_server.admin("SELECT count(*) FROM snapshots", dbname=pg_db) == [(2,)]


def test_restore_refuses_another_private_key_unless_forced(pg_server, pg_db, host_a, tmp_path):
    db = db_args(pg_server, pg_db, generate_key())
    idle = host_a["idle"]
    backup = {"server_id": "server-a", "config_dir": str(host_a["conf"]), **db}
    assert run_playbook([{"name": "b", "wgfleet.wireguard.wg_backup": backup}], netns=host_a["ns"])["b"]["changed"]
    target = tmp_path / "other"
    other = Interface(private_key=_keys.generate_private_key(), listen_port=1234, address=("10.64.0.1/24",))
    path = _files.config_path(str(target), idle)
    _files.write_config(path, other)
    before = read(path)
    restore = {"server_id": "server-a", "config_dir": str(target), "interfaces": [idle], **db}
    res = run_playbook([
        {"name": "refused", "wgfleet.wireguard.wg_restore": restore, "ignore_errors": True},
        {"name": "forced", "wgfleet.wireguard.wg_restore": {**restore, "force": True}},
    ], netns=host_a["ns"])
    assert res["refused"]["failed"]
    assert "another private key" in res["refused"]["msg"] and "force: true" in res["refused"]["msg"]
    assert _keys.public_key(other.private_key) in res["refused"]["msg"]
    no_leaks(res.output, [other.private_key, host_a["expected"][idle].private_key])
    assert res["forced"]["changed"]
    assert before != read(path)
    assert parse(read(path)) == host_a["expected"][idle]


def test_rebuild_server_a_on_host_b_with_apply(pg_server, pg_db, host_a, lab, tmp_path):
    """Server A dies; its snapshot brings host B up with A's keys and peers, and a client connects."""
    db = db_args(pg_server, pg_db, generate_key())
    name = host_a["running"]
    server = host_a["expected"][name]
    # The client that will connect: its peer entry is added on A before the backup.
    client_private, client_peer = new_peer(30, preshared_key=None, allowed_ips=("10.62.0.2/32",), name="client")
    path_a = _files.config_path(str(host_a["conf"]), name)
    server = server.replace(peers=(*server.peers, client_peer))
    file_server = parse(read(path_a))
    # As wg_peer adds it: in the file and on the running device (a running interface's peers are its device's).
    _files.write_config(path_a, file_server.replace(peers=(*file_server.peers, client_peer)))
    sh("wg", "set", name, "peer", client_peer.public_key, "allowed-ips", client_peer.allowed_ips[0], netns=host_a["ns"])
    backup = {"server_id": "server-a", "config_dir": str(host_a["conf"]), **db}
    res = run_playbook([{"name": "b", "wgfleet.wireguard.wg_backup": backup}], netns=host_a["ns"])
    succeeded(res, secrets_of(server))
    assert res["b"]["changed"]
    assert res["b"]["interfaces"][name]["peers"] == len(server.peers)
    quick(host_a["ns"], "down", path_a)  # A is gone (interface names are unique on the machine)

    ns_b, ns_c = lab.host("b"), lab.host("c")
    ip_b, _ip_c = lab.link(ns_b, ns_c)
    client_name = lab.wg_name("c")
    client_conf = _files.config_path(str(tmp_path / "c"), client_name)
    _files.write_config(client_conf, Interface(
        private_key=client_private, address=("10.62.0.2/24",),
        peers=(Peer(public_key=_keys.public_key(server.private_key), allowed_ips=("10.62.0.1/32",),
                    endpoint=f"{ip_b}:51820", persistent_keepalive=1),)))
    quick(ns_c, "up", client_conf)

    restore = {"server_id": "server-a", "config_dir": str(tmp_path / "b"), "interfaces": [name], "apply": True, **db}
    res = run_playbook([
        {"name": "restore", "wgfleet.wireguard.wg_restore": restore},
        {"name": "again", "wgfleet.wireguard.wg_restore": restore},
    ], netns=ns_b)
    succeeded(res, secrets_of(server))
    assert res["restore"]["changed"] and res["restore"]["interfaces"][name]["applied"] == "up"
    assert not res["again"]["changed"]
    dump = wg_dump(ns_b, name)
    assert dump[0][1] == _keys.public_key(server.private_key)
    assert {row[0] for row in dump[1:]} == {p.public_key for p in server.peers}
    assert ping(ns_c, "10.62.0.1"), "no traffic through the restored interface"
    handshakes = {row[0]: int(row[4]) for row in wg_dump(ns_b, name)[1:]}
    assert handshakes[client_peer.public_key] > 0

    # A peer added live that the snapshot does not have is removed by the next restore with apply.
    stray = new_peer(40)[1]
    sh("wg", "set", name, "peer", stray.public_key, "allowed-ips", stray.allowed_ips[0], netns=ns_b)
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": restore}], netns=ns_b)
    assert res["restore"]["changed"] and res["restore"]["interfaces"][name]["applied"] == "live"
    assert res["restore"]["interfaces"][name]["peers_removed_live"] == [stray.public_key]
    assert stray.public_key not in {row[0] for row in wg_dump(ns_b, name)[1:]}
    assert ping(ns_c, "10.62.0.1")


def showconf(ns: str, name: str) -> dict:
    """``wg showconf NAME`` on the live device, in a tiny parser of the test's own: the interface's keys and,
    per peer public key, that peer's keys."""
    result: dict = {"interface": {}, "peers": {}}
    section = None
    for line in sh("wg", "showconf", name, netns=ns).stdout.splitlines():
        if line.strip() in ("[Interface]", "[Peer]"):
            section = result["interface"] if line.strip() == "[Interface]" else {}
        elif "=" in line and section is not None:
            key, _sep, value = line.partition("=")
            section[key.strip()] = value.strip()
            if key.strip() == "PublicKey":
                result["peers"][value.strip()] = section
    return result


def wg_pubkey(private: str) -> str:
    return sh("wg", "pubkey", input=private + "\n").stdout.strip()


def quick_lines(path, key: str) -> list[str]:
    """The values of the [Interface] section's ``key`` lines of a wg-quick file, read by the test itself."""
    values, section = [], None
    for line in read(path).splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            section = line
        elif section == "[Interface]" and line.partition("=")[0].strip().lower() == key.lower():
            values.append(line.partition("=")[2].strip())
    return values


def quick_dns_line(path) -> list[str]:
    """The DNS servers and search domains of a wg-quick file, as wg-quick splits its DNS lines."""
    return [v.strip() for line in quick_lines(path, "DNS") for v in line.split(",")]


def test_restore_with_apply_brings_every_setting_up_on_the_live_device(pg_server, pg_db, lab, tmp_path):
    """A wg-quick file written by hand with non-default settings everywhere, backed up on one host and restored
    with apply onto a fresh one: the device, its link and the hooks' effects are what the file said, read with
    wg, ip and the test's own parsers (never the collection's)."""
    ns_src, ns_dst = lab.host("s"), lab.host("t")
    name = lab.wg_name("t")
    private = sh("wg", "genkey").stdout.strip()
    peer_keys = [wg_pubkey(sh("wg", "genkey").stdout.strip()) for _n in range(2)]
    psks = [sh("wg", "genpsk").stdout.strip() for _n in range(2)]
    marks = tmp_path / "marks"
    marks.mkdir()
    src = tmp_path / "src"
    src.mkdir(mode=0o700)
    text = (f"[Interface]\nPrivateKey = {private}\nListenPort = 51857\nFwMark = 0x51\n"
            f"Address = 10.68.0.1/24, fd68::1/64\nMTU = 1360\nDNS = 10.68.0.53, corp.test\n"
            f"PostUp = touch {marks}/up-%i\n"
            f"\n[Peer]\nPublicKey = {peer_keys[0]}\nPresharedKey = {psks[0]}\nAllowedIPs = 10.68.0.2/32\n"
            f"Endpoint = 127.0.0.1:51998\nPersistentKeepalive = 25\n"
            f"\n[Peer]\nPublicKey = {peer_keys[1]}\nPresharedKey = {psks[1]}\n"
            f"AllowedIPs = 10.68.8.0/24, 10.68.9.2/32\n")
    with open(os.open(src / f"{name}.conf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w",
              encoding="utf-8") as handle:
        handle.write(text)
    db = db_args(pg_server, pg_db, generate_key())
    secrets = [private, *psks, db["encryption_key"], db["login_password"]]
    res = run_playbook([{"name": "backup", "wgfleet.wireguard.wg_backup": {
        "server_id": "live", "config_dir": str(src), **db}}], netns=ns_src)
    succeeded(res, secrets)
    assert res["backup"]["changed"]

    # This machine has no resolvconf (and must not have its resolver changed): a stand-in on PATH records
    # what wg-quick hands it, so the DNS check sees the effect of the restored file's DNS line.
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    resolv_log = tmp_path / "resolvconf.log"
    (fakebin / "resolvconf").write_text(
        f'#!/bin/sh\necho "$*" >> {resolv_log}\n[ "$1" = -a ] && cat >> {resolv_log}\nexit 0\n')
    os.chmod(fakebin / "resolvconf", 0o755)
    dst = tmp_path / "dst"
    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": {
        "server_id": "live", "config_dir": str(dst), "apply": True, **db}}], netns=ns_dst,
        prefix=["env", f"PATH={fakebin}:{os.environ['PATH']}"])
    succeeded(res, secrets)
    assert res["restore"]["interfaces"][name]["applied"] == "up"

    conf = showconf(ns_dst, name)
    iface, peers = conf["interface"], conf["peers"]
    link, = json.loads(sh("ip", "-j", "link", "show", "dev", name, netns=ns_dst).stdout)
    addrs, = json.loads(sh("ip", "-j", "addr", "show", "dev", name, netns=ns_dst).stdout)
    live = {
        "public key": wg_pubkey(iface.get("PrivateKey", "")),
        "listen port": iface.get("ListenPort"),
        "fwmark": iface.get("FwMark"),
        "peers": sorted(peers),
        "allowed ips": {k: sorted(v.get("AllowedIPs", "").split(", ")) for k, v in peers.items()},
        "preshared keys match": [peers.get(k, {}).get("PresharedKey") == psk for k, psk in zip(peer_keys, psks)],
        "endpoints": {k: v.get("Endpoint") for k, v in peers.items()},
        "keepalives": {k: v.get("PersistentKeepalive") for k, v in peers.items()},
        "mtu": link["mtu"],
        "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs["addr_info"] if a["scope"] == "global"),
        "PostUp marker": sorted(p.name for p in marks.iterdir()),
        "DNS line of the restored file": quick_dns_line(dst / f"{name}.conf"),
        "resolvconf saw": read(resolv_log).splitlines() if resolv_log.exists() else None,
    }
    assert live == {
        "public key": wg_pubkey(private),
        "listen port": "51857",
        "fwmark": "0x51",
        "peers": sorted(peer_keys),
        "allowed ips": {peer_keys[0]: ["10.68.0.2/32"], peer_keys[1]: ["10.68.8.0/24", "10.68.9.2/32"]},
        "preshared keys match": [True, True],
        "endpoints": {peer_keys[0]: "127.0.0.1:51998", peer_keys[1]: None},
        "keepalives": {peer_keys[0]: "25", peer_keys[1]: None},
        "mtu": 1360,
        "addresses": ["10.68.0.1/24", "fd68::1/64"],
        "PostUp marker": [f"up-{name}"],
        "DNS line of the restored file": ["10.68.0.53", "corp.test"],
        "resolvconf saw": [f"-a {name} -m 0 -x", "nameserver 10.68.0.53", "search corp.test"],
    }


def _a_snapshot_that_cannot_start(pg_server, pg_db, lab, tmp_path, host, port, address):
    """A host, an interface name, the state whose PostUp fails (in tmp_path/src, to back up) and the database."""
    ns = lab.host(host)
    name = lab.wg_name(host)
    broken = Interface(private_key=_keys.generate_private_key(), listen_port=port, address=(address,),
                       post_up=("false",))
    _files.write_config(_files.config_path(str(tmp_path / "src"), name), broken)
    return ns, name, broken, db_args(pg_server, pg_db, generate_key())


def test_failed_apply_leaves_nothing_behind(pg_server, pg_db, lab, tmp_path):
    """A snapshot whose PostUp fails on the new host: the module fails and no file or interface is left."""
    ns, name, broken, db = _a_snapshot_that_cannot_start(pg_server, pg_db, lab, tmp_path, "f", 51830, "10.65.0.1/24")
    target = tmp_path / "dst"
    res = run_playbook([
        {"name": "backup", "wgfleet.wireguard.wg_backup": {"server_id": "f", "config_dir": str(tmp_path / "src"),
                                                           **db}},
        {"name": "restore", "wgfleet.wireguard.wg_restore": {"server_id": "f", "config_dir": str(target),
                                                             "apply": True, **db}, "ignore_errors": True},
    ], netns=ns)
    no_leaks(res.output, [broken.private_key])
    assert res["backup"]["changed"]
    assert res["restore"]["failed"] and "wg-quick up" in res["restore"]["msg"]
    assert not os.path.exists(_files.config_path(str(target), name))
    assert sh("ip", "link", "show", name, netns=ns, check=False).returncode != 0


def test_interface_running_without_a_file_is_captured(pg_server, pg_db, lab, tmp_path):
    """A device made by hand (no wg-quick file) is backed up as it runs: key, port, peers, addresses, MTU."""
    ns = lab.host("l")
    name = lab.wg_name("l")
    private = _keys.generate_private_key()
    peer = new_peer(50, preshared_key=None, name=None)[1]
    subprocess.run(["ip", "netns", "exec", ns, "wireguard-go", name], check=True, capture_output=True, timeout=30)
    sh("wg", "set", name, "private-key", "/dev/stdin", "listen-port", "51840", "peer", peer.public_key,
       "allowed-ips", peer.allowed_ips[0], input=private + "\n", netns=ns)
    sh("ip", "address", "add", "10.66.0.1/24", "dev", name, netns=ns)
    sh("ip", "link", "set", name, "mtu", "1400", "up", netns=ns)
    db = db_args(pg_server, pg_db, generate_key())
    res = run_playbook([
        {"name": "backup", "wgfleet.wireguard.wg_backup": {"server_id": "l", "config_dir": str(tmp_path / "none"),
                                                           **db}},
        {"name": "restore", "wgfleet.wireguard.wg_restore": {"server_id": "l", "config_dir": str(tmp_path / "out"),
                                                             **db}},
    ], netns=ns)
    succeeded(res, [private])
    assert res["backup"]["interfaces"][name]["live_only_peers"] == 1
    restored = parse(read(_files.config_path(str(tmp_path / "out"), name)))
    assert restored == Interface(private_key=private, listen_port=51840, address=("10.66.0.1/24",), mtu=1400,
                                 peers=(peer,))


def wg_quick_strip(path) -> dict:
    """The file as wg-quick itself reads it (``wg-quick strip``), in a tiny parser of the test's own:
    the private key and, per peer public key, its other lines."""
    out = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, check=True).stdout
    result: dict = {"private_key": None, "peers": {}}
    current = None
    for line in out.splitlines():
        key = line.partition("=")[0].strip()
        if line.strip() == "[Peer]":
            current = {}
        elif key == "PrivateKey":
            result["private_key"] = line.split("=", 1)[1].strip()
        elif key == "PublicKey":
            result["peers"][line.split("=", 1)[1].strip()] = current
        elif current is not None and key:
            current[key] = line.split("=", 1)[1].strip()
    return result


@pytest.mark.parametrize("original", [
    b"[Interface]\n# the admin's own notes\nPrivateKey = {key}\nListenPort = 51870\n",
    b"[Interface]\nPrivateKey: {key}\n\xff\xfe not even UTF-8\n",
])
def test_a_failed_forced_restore_puts_the_users_file_back_byte_for_byte(pg_server, pg_db, lab, tmp_path, original):
    ns, name, broken, db = _a_snapshot_that_cannot_start(pg_server, pg_db, lab, tmp_path, "p", 51871, "10.67.0.1/24")
    target = tmp_path / "dst"
    target.mkdir(mode=0o700)
    path = _files.config_path(str(target), name)
    mine = original.replace(b"{key}", _keys.generate_private_key().encode())
    with open(path, "wb") as handle:
        handle.write(mine)
    os.chmod(path, 0o600)
    res = run_playbook([
        {"name": "backup", "wgfleet.wireguard.wg_backup": {"server_id": "p", "config_dir": str(tmp_path / "src"),
                                                           **db}},
        {"name": "restore", "wgfleet.wireguard.wg_restore": {"server_id": "p", "config_dir": str(target),
                                                             "apply": True, "force": True, **db},
         "ignore_errors": True},
    ], netns=ns)
    no_leaks(res.output, [broken.private_key, mine.decode("utf-8", "replace").split("Key", 1)[1][3:47]])
    assert res["backup"]["changed"]
    assert res["restore"]["failed"] and "wg-quick up" in res["restore"]["msg"]
    with open(path, "rb") as handle:
        assert handle.read() == mine, "the user's file was not put back as it was"
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(f".{name}.lock")) == [f"{name}.conf"]
    assert sh("ip", "link", "show", name, netns=ns, check=False).returncode != 0


@pytest.mark.parametrize(("option", "value", "message"), [
    ("snapshot", "²", "snapshot: '²' is neither a snapshot id nor an ISO 8601 time"),
    ("snapshot", "12\x0034", "snapshot: "),
    ("snapshot", "99999999999999999999", "snapshot: '99999999999999999999' is too large"),
    ("server_id", "srv\x00a", "server_id: 'srv\\x00a' holds a line break or control character (U+0000"),
    ("server_id", "srv\u2028a", "server_id: 'srv\\u2028a' holds a line break or control character (U+2028"),
    ("server_id", "x" * 300, "server_id: "),
    ("login_password", "pw\nx", "login_password: (hidden) holds a line break or control character (U+000A"),
    ("db", "wg\x00backup", "db: 'wg\\x00backup' holds a line break or control character (U+0000"),
    ("login_port", 0, "login_port: 0 is not a whole number from 1 to 65535"),
    ("config_dir", "/tmp/wg\x00x", "config_dir: '/tmp/wg\\x00x' holds a line break or control character (U+0000"),
    ("config_dir", "/tmp/wg\nx", "config_dir: '/tmp/wg\\nx' holds a line break or control character (U+000A"),
    ("config_dir", "", "config_dir: must not be empty"),
    ("ca_cert", "/nonexistent/ca.pem", "ca_cert: '/nonexistent/ca.pem' cannot be read"),
    ("ssl_key", "/nonexistent/key.pem", "ssl_key: '/nonexistent/key.pem' cannot be read"),
])
def test_bad_options_of_wg_backup_and_wg_restore_are_named(pg_server, pg_db, tmp_path, option, value, message):
    db = db_args(pg_server, pg_db, generate_key())
    args = {"server_id": "s", "config_dir": str(tmp_path / "none"), **db, option: value}
    tasks = [{"name": "restore", "wgfleet.wireguard.wg_restore": args, "ignore_errors": True}]
    if option != "snapshot":
        tasks.append({"name": "backup", "wgfleet.wireguard.wg_backup": args, "ignore_errors": True})
    res = run_playbook(tasks)
    for task in tasks:
        result = res[task["name"]]
        assert result["failed"] and message in result["msg"], (task["name"], result.get("msg"))
        assert "unexpected error" not in result["msg"]
    assert "Traceback" not in res.output and "pw\nx" not in res.output
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("plan", ["live", "restart"])
def test_a_restore_revokes_what_the_snapshot_lacks_for_good(pg_server, pg_db, lab, tmp_path, plan):
    """A peer added through wgrest after the snapshot: the restore takes it off the device (also when it
    restarts the interface, whose PostUp hook replays wgrest's dump) and out of that dump, so the client cannot
    handshake, not even after a later restart."""
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import PeerSpec
    from tests.helpers.wgrest_real import Client, WgrestHost

    host = WgrestHost(lab)
    name = lab.wg_name("v")
    dump = tmp_path / "wgrest"
    host.private_key = _keys.generate_private_key()
    iface = Interface(private_key=host.private_key, listen_port=51820, address=("10.231.8.1/24",), mtu=1420,
                      post_up=(_wgrest_dump.restore_hook(str(dump)),), peers=(new_peer(70)[1],))
    etc = tmp_path / "etc"
    path = _files.config_path(str(etc), name)
    _files.write_config(path, iface)
    host.quick("up", path)
    host.start_wgrest(dump, token="rv-token")
    db = db_args(pg_server, pg_db, generate_key())
    args = {"server_id": "rv", "config_dir": str(etc), **db}
    res = run_playbook([{"name": "backup", "wgfleet.wireguard.wg_backup": args}], prefix=host.prefix)
    succeeded(res, secrets_of(iface))

    client = Client(lab, host, tmp_path, "10.231.8.9")
    _wgrest_backend.WgrestBackend(name, host.api_url, "rv-token").apply(
        [PeerSpec(public_key=client.public_key, allowed_ips=["10.231.8.9/32"])], False, False)
    assert client.can_reach_server() and client.handshake() > 0
    if plan == "restart":  # a start-time setting changed since the snapshot: the restore must restart
        host.quick("down", path)
        _files.write_config(path, iface.replace(mtu=1380))
        host.quick("up", path)
        assert client.public_key in host.peer_keys(name)  # the hook gave it back from wgrest's dump

    res = run_playbook([{"name": "restore", "wgfleet.wireguard.wg_restore": {**args, "apply": True}}],
                       prefix=host.prefix)
    succeeded(res, secrets_of(iface))
    assert res["restore"]["interfaces"][name]["applied"] == plan
    assert client.public_key in res["restore"]["interfaces"][name]["peers_removed_live"]
    assert host.peer_keys(name) == {p.public_key for p in iface.peers}
    dumped = subprocess.run(["grep", "-c", client.public_key, str(dump / f"{name}.conf")], capture_output=True,
                            text=True, check=False).stdout.strip()
    assert dumped == "0", "wgrest's dump still holds the revoked peer"
    client.reconnect()
    assert not client.can_reach_server(deadline=4) and client.handshake() == 0

    host.quick("down", path)
    host.quick("up", path)
    assert client.public_key not in host.peer_keys(name), "a restart brought the revoked peer back"
    client.reconnect()
    assert not client.can_reach_server(deadline=4) and client.handshake() == 0
