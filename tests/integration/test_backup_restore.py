"""wg_backup and wg_restore through ansible-playbook, against wireguard-go interfaces in namespaces and real PostgreSQL.

PostgreSQL runs in the root namespace; the playbooks run inside test namespaces
and reach it through its Unix socket (filesystem sockets are shared by namespaces).
"""
from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files, _keys
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


@pytest.fixture
def host_a(lab, tmp_path):
    """Server A: one interface running (with a peer added only live), one only in its file."""
    ns = lab.host("a")
    conf = tmp_path / "a"
    running, idle = lab.wg_name("ar"), lab.wg_name("ai")
    peers = tuple(new_peer(i)[1] for i in range(3))
    iface_run = Interface(private_key=_keys.generate_private_key(), listen_port=51820, address=("10.62.0.1/24",),
                          mtu=1420, post_up=("true up",), peers=peers)
    iface_idle = Interface(private_key=_keys.generate_private_key(), listen_port=51821,
                           address=("10.63.0.1/24", "fd63::1/64"), dns=("10.63.0.53",), table="off",
                           pre_up=("echo pre",), post_down=("echo post down",), fwmark=0x42,
                           peers=(new_peer(9, endpoint="vpn.example.org:51820", persistent_keepalive=25)[1],))
    _files.write_config(_files.config_path(str(conf), running), iface_run)
    _files.write_config(_files.config_path(str(conf), idle), iface_idle)
    quick(ns, "up", _files.config_path(str(conf), running))
    live_only = new_peer(20, preshared_key=None, name=None)[1]
    sh("wg", "set", running, "peer", live_only.public_key, "allowed-ips", live_only.allowed_ips[0], netns=ns)
    expected = {running: iface_run.replace(peers=(*peers, live_only)), idle: iface_idle}
    return {"ns": ns, "conf": conf, "running": running, "idle": idle, "expected": expected}


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
    _files.write_config(path_a, file_server.replace(peers=(*file_server.peers, client_peer)))
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


def test_failed_apply_leaves_nothing_behind(pg_server, pg_db, lab, tmp_path):
    """A snapshot whose PostUp fails on the new host: the module fails and no file or interface is left."""
    ns = lab.host("f")
    name = lab.wg_name("f")
    broken = Interface(private_key=_keys.generate_private_key(), listen_port=51830, address=("10.65.0.1/24",),
                       post_up=("false",))
    _files.write_config(_files.config_path(str(tmp_path / "src"), name), broken)
    db = db_args(pg_server, pg_db, generate_key())
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
