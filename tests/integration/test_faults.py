"""The faults of issue 19 on real wireguard-go devices: a full disk, a read-only directory, a kill between the
device and the routes, a huge unparseable file, two restores at once.

The config directory is a tiny tmpfs of its own, filled or remounted read-only. Every check uses other means
than the collection: ``wg show dump``, ``ip route``, ``ip link``, the file's bytes and mode, ``/proc/locks``.
"""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files, _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import generate_key
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from tests.conftest import needs_lab
from tests.helpers.modules import iface_task, peer_task, sha
from tests.helpers.netns import sh, wg_dump
from tests.helpers.playbook import COLLECTIONS, run_playbook

pytestmark = [needs_lab, pytest.mark.lab]

PAGE = 4096


def peers(count: int, base: int = 0, psk: bool = True) -> tuple[Peer, ...]:
    """``count`` peers, each with a network of its own outside the interface's subnet (so each needs a route)."""
    out = []
    for i in range(base, base + count):
        out.append(Peer(public_key=_keys.public_key(_keys.generate_private_key()),
                        preshared_key=_keys.generate_private_key() if psk else None,
                        allowed_ips=(f"10.{80 + i // 250}.{i % 250}.0/24",), name=f"client {i}"))
    return tuple(out)


@contextlib.contextmanager
def tiny_tmpfs(path: Path, size: str = "256k"):
    path.mkdir(parents=True, exist_ok=True)
    sh("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path))
    try:
        yield path
    finally:
        sh("umount", "-l", str(path), check=False)


def fill(directory: Path, leave_pages: int = 0) -> None:
    """Fill the file system of ``directory`` to the last page, then free ``leave_pages`` pages."""
    filler = directory / "filler"
    filler.mkdir(exist_ok=True)
    chunks = []
    for i in range(100_000):  # bounded: a 256k tmpfs holds 64 pages
        try:
            with open(filler / str(i), "wb") as handle:
                handle.write(b"x" * PAGE)
            chunks.append(filler / str(i))
        except OSError:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(filler / str(i))
            break
    for chunk in chunks[:leave_pages]:
        chunk.unlink()


def routes(ns: str, wg: str, table: str | None = None) -> set[str]:
    argv = ["ip", "route", "show", "dev", wg] + (["table", table] if table else [])
    return {line.split()[0] for line in sh(*argv, netns=ns).stdout.splitlines() if line.strip()}


def link_settings(ns: str, wg: str) -> str:
    out = sh("ip", "-o", "link", "show", "dev", wg, netns=ns, check=False)
    assert out.returncode == 0, f"the interface {wg} is gone: {out.stderr.strip()}"
    return out.stdout.split("mtu", 1)[1].split()[0]


def readable_key_files(directory: Path) -> list[str]:
    """Files in ``directory`` (not the filler) that group or others may read."""
    return [f"{p.name} {oct(stat.S_IMODE(p.stat().st_mode))}" for p in directory.iterdir()
            if p.is_file() and stat.S_IMODE(p.stat().st_mode) & 0o077]


@pytest.fixture
def server(lab, tmp_path):
    """A running interface with 30 peers (each with a preshared key and a route), its config dir a tiny tmpfs."""
    ns = lab.host("flt")
    wg = lab.wg_name("f")
    with tiny_tmpfs(tmp_path / "etc") as etc:
        conf = etc / f"{wg}.conf"
        iface = Interface(private_key=_keys.generate_private_key(), listen_port=51890, address=("10.79.0.1/24",),
                          mtu=1420, peers=peers(30))
        _files.write_config(str(conf), iface)
        res = run_playbook([iface_task(wg, str(etc))], netns=ns)
        assert res.rc == 0, res.output
        assert conf.stat().st_size > PAGE  # the copy of a backup does not fit in one page
        yield {"ns": ns, "wg": wg, "etc": etc, "conf": conf, "iface": iface}


def snapshot_of(server) -> tuple[str, bytes, list, set]:
    ns, wg = server["ns"], server["wg"]
    return sha(server["conf"]), link_settings(ns, wg), dump(ns, wg), routes(ns, wg)


def dump(ns: str, wg: str) -> list:
    """``wg show dump``, its peers sorted (wireguard-go lists them in no fixed order)."""
    rows = wg_dump(ns, wg)
    return [rows[0], *sorted(rows[1:])]


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_restart_that_cannot_write_its_file_leaves_the_interface_as_it_was(server, fault):
    ns, wg, etc = server["ns"], server["wg"], server["etc"]
    before = snapshot_of(server)
    if fault == "full":
        fill(etc)
    else:
        sh("mount", "-o", "remount,ro", str(etc))
    res = run_playbook([{**iface_task(wg, str(etc), mtu=1380), "ignore_errors": True}], netns=ns)
    msg = res["r"].get("msg", "")
    assert res["r"].get("failed"), res["r"]
    assert snapshot_of(server) == before, f"the interface or file changed: {msg}"
    assert str(server["conf"]) in msg and "unexpected" not in msg and "basic.py" not in msg, msg
    assert ("No space left" if fault == "full" else "Read-only file system") in msg, msg
    if fault == "read-only":
        sh("mount", "-o", "remount,rw", str(etc))
    else:
        sh("rm", "-rf", str(etc / "filler"))
    res = run_playbook([iface_task(wg, str(etc), mtu=1380)], netns=ns)
    assert res["r"]["applied"] == "restart" and link_settings(ns, wg) == "1380"
    assert len(wg_dump(ns, wg)) == 31


@pytest.mark.parametrize("leave_pages", [1, 3])
def test_a_backup_copy_on_a_full_disk_leaves_no_copy_of_the_keys(server, leave_pages):
    """1 page free: the copy (2 pages) cannot be made; 3 pages: it can, but then the new file cannot."""
    ns, wg, etc = server["ns"], server["wg"], server["etc"]
    before = snapshot_of(server)
    fill(etc, leave_pages)
    extra = peers(1, base=200)[0]
    res = run_playbook([{**peer_task(wg, str(etc), public_key=extra.public_key, allowed_ips=list(extra.allowed_ips),
                                     backup=True), "ignore_errors": True}], netns=ns)
    assert res["p"].get("failed"), res["p"]
    assert str(server["conf"]) in res["p"]["msg"] and "unexpected" not in res["p"]["msg"], res["p"]["msg"]
    assert snapshot_of(server) == before
    left = sorted(p.name for p in etc.iterdir() if p.name not in ("filler", f".{wg}.lock"))
    assert left == [server["conf"].name], f"left behind: {left}"


def test_backup_copies_are_private_and_an_old_readable_one_is_made_private(server):
    ns, wg, etc, conf = server["ns"], server["wg"], server["etc"], server["conf"]
    old = etc / f"{conf.name}.913.2026-12-01@23:54:27~"
    old.write_bytes(conf.read_bytes()[:PAGE * 2 - 400])  # what a failed copy of an older version left
    os.chmod(old, 0o644)
    original = conf.read_bytes()
    extra = peers(1, base=201)[0]
    res = run_playbook([peer_task(wg, str(etc), public_key=extra.public_key, allowed_ips=list(extra.allowed_ips),
                                  backup=True)], netns=ns)
    assert res.rc == 0, res.output
    made = Path(res["p"]["backup_file"])
    assert made.read_bytes() == original and stat.S_IMODE(made.stat().st_mode) == 0o600
    assert readable_key_files(etc) == []


KILL_AT_ROUTES = """
import os, signal, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.wgfleet.wireguard.plugins.module_utils import _device
def killed(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # the device has the peers, the routes are not there yet
_device.add_routes = killed
exec(sys.argv[2])
"""


def kill_between_device_and_routes(ns: str, code: str, *args: str) -> None:
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", KILL_AT_ROUTES, str(COLLECTIONS), code,
                           *args], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]


def test_routes_lost_to_a_kill_in_wg_peer_are_seen_and_repaired(lab, tmp_path):
    ns, wg = lab.host("rk"), lab.wg_name("k")
    etc = tmp_path / "etc"
    res = run_playbook([iface_task(wg, str(etc), address=["10.79.0.1/24"], listen_port=51891)], netns=ns)
    assert res.rc == 0, res.output
    many = peers(300, psk=False)
    specs = [{"public_key": p.public_key, "allowed_ips": list(p.allowed_ips)} for p in many]
    code = ("from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import FileBackend, PeerSpec\n"
            f"FileBackend({wg!r}, config_dir={str(etc)!r}).apply([PeerSpec(**s) for s in {specs!r}], False, False)")
    kill_between_device_and_routes(ns, code)
    assert len(wg_dump(ns, wg)) == 301 and routes(ns, wg) == {"10.79.0.0/24"}
    res = run_playbook([peer_task(wg, str(etc), peers=specs)], netns=ns)
    assert res["p"]["changed"] is True and res["p"]["applied"] == "live", res["p"]
    assert len(res["p"]["drift"]) == 300
    assert routes(ns, wg) == {"10.79.0.0/24", *(p.allowed_ips[0] for p in many)}
    assert sh("ip", "route", "get", "10.80.7.1", netns=ns).stdout.split()[2] == wg
    res = run_playbook([peer_task(wg, str(etc), peers=specs)], netns=ns)
    assert res["p"]["changed"] is False


@pytest.mark.parametrize("table", ["4242", "off"])
def test_route_drift_follows_the_table_of_the_file(lab, tmp_path, table):
    ns, wg = lab.host("tb"), lab.wg_name("b")
    etc = tmp_path / "etc"
    res = run_playbook([iface_task(wg, str(etc), address=["10.79.0.1/24"], listen_port=51892, table=table)],
                       netns=ns)
    assert res.rc == 0, res.output
    few = peers(3, psk=False)
    specs = [{"public_key": p.public_key, "allowed_ips": list(p.allowed_ips)} for p in few]
    res = run_playbook([peer_task(wg, str(etc), peers=specs)], netns=ns)
    assert res.rc == 0, res.output
    expected = set() if table == "off" else {p.allowed_ips[0] for p in few}
    listed = routes(ns, wg, table if table != "off" else None) - {"10.79.0.0/24"}
    assert listed == expected
    if table != "off":
        sh("ip", "route", "del", few[1].allowed_ips[0], "dev", wg, "table", table, netns=ns)
    res = run_playbook([peer_task(wg, str(etc), peers=specs)], netns=ns)
    assert res["p"]["changed"] is (table != "off"), res["p"]
    assert routes(ns, wg, table if table != "off" else None) - {"10.79.0.0/24"} == expected


def backup_state(pg_server, pg_db, tmp_path, server_id: str, name: str, iface: Interface) -> dict:
    """Store ``iface`` as server ``server_id``'s snapshot (wg_backup from a directory of its own)."""
    src = tmp_path / f"src-{server_id}"
    _files.write_config(_files.config_path(str(src), name), iface)
    db = {**pg_server.module_params(pg_db, unix_socket=True), "encryption_key": generate_key()}
    res = run_playbook([{"name": "b", "wgfleet.wireguard.wg_backup": {"server_id": server_id,
                                                                      "config_dir": str(src), **db}}])
    assert res.rc == 0 and res["b"]["changed"], res.output[-2000:]
    return {"server_id": server_id, **db}


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_restore_that_cannot_write_its_file_leaves_the_interface_as_it_was(pg_server, pg_db, server, tmp_path,
                                                                             fault):
    ns, wg, etc = server["ns"], server["wg"], server["etc"]
    db = backup_state(pg_server, pg_db, tmp_path, "fr", wg, server["iface"].replace(mtu=1380))
    before = snapshot_of(server)
    if fault == "full":
        fill(etc)
    else:
        sh("mount", "-o", "remount,ro", str(etc))
    restore = {"config_dir": str(etc), "apply": True, **db}
    res = run_playbook([{"name": "r", "wgfleet.wireguard.wg_restore": restore, "ignore_errors": True}], netns=ns)
    assert res["r"].get("failed"), res["r"]
    assert snapshot_of(server) == before, res["r"]["msg"]
    assert str(server["conf"]) in res["r"]["msg"] and "unexpected" not in res["r"]["msg"], res["r"]["msg"]
    if fault == "read-only":
        sh("mount", "-o", "remount,rw", str(etc))
    else:
        sh("rm", "-rf", str(etc / "filler"))
    res = run_playbook([{"name": "r", "wgfleet.wireguard.wg_restore": restore}], netns=ns)
    assert res["r"]["interfaces"][wg]["applied"] == "restart" and link_settings(ns, wg) == "1380"


def test_routes_lost_to_a_kill_in_wg_restore_are_seen_and_repaired(pg_server, pg_db, lab, tmp_path):
    ns, wg = lab.host("rr"), lab.wg_name("r")
    etc = tmp_path / "etc"
    base = Interface(private_key=_keys.generate_private_key(), listen_port=51893, address=("10.79.0.1/24",))
    _files.write_config(_files.config_path(str(etc), wg), base)
    res = run_playbook([iface_task(wg, str(etc))], netns=ns)
    assert res.rc == 0, res.output
    wanted = base.replace(peers=peers(300, psk=False))
    db = backup_state(pg_server, pg_db, tmp_path, "rr", wg, wanted)
    code = ("from ansible_collections.wgfleet.wireguard.plugins.module_utils import _backup\n"
            "from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import parse\n"
            "state = {sys.argv[3]: parse(open(sys.argv[4]).read())}\n"
            "_backup.apply_restore(_backup.plan_restore(state, _backup.observe(sys.argv[5], state), True, False))")
    kill_between_device_and_routes(ns, code, wg, _files.config_path(str(tmp_path / "src-rr"), wg), str(etc))
    assert len(wg_dump(ns, wg)) == 301 and routes(ns, wg) == {"10.79.0.0/24"}
    restore = {"config_dir": str(etc), "apply": True, **db}
    res = run_playbook([{"name": "r", "wgfleet.wireguard.wg_restore": restore}], netns=ns)
    assert res.rc == 0, res.output[-2000:]
    assert res["r"]["changed"] is True and res["r"]["interfaces"][wg]["applied"] == "live", res["r"]
    assert routes(ns, wg) == {"10.79.0.0/24", *(p.allowed_ips[0] for p in wanted.peers)}
    res = run_playbook([{"name": "r", "wgfleet.wireguard.wg_restore": restore}], netns=ns)
    assert res["r"]["changed"] is False


def test_a_forced_restore_over_a_huge_unparseable_file_fails_within_seconds(pg_server, pg_db, server, tmp_path):
    ns, wg, etc, conf = server["ns"], server["wg"], server["etc"], server["conf"]
    sh("umount", "-l", str(etc))  # 50 MB does not fit the tiny tmpfs: a plain directory
    etc.mkdir(exist_ok=True)
    db = backup_state(pg_server, pg_db, tmp_path, "hu", wg, server["iface"].replace(mtu=1380))
    before = dump(ns, wg)
    with open(conf, "wb") as handle:  # what a run-away script left; wg-quick's bash reads it line by line
        handle.write(b"[Interface]\n" + b"Junk = " + b"y" * 100 + b"\n")
        handle.write(b"# " + b"z" * 98 + b"\n" * 1 + (b"a = b\n" * (50 * 1024 * 1024 // 6)))
    os.chmod(conf, 0o600)
    junk = sha(conf)
    started = time.monotonic()
    res = run_playbook([{"name": "r", "wgfleet.wireguard.wg_restore": {"config_dir": str(etc), "apply": True,
                                                                       "force": True, **db},
                         "ignore_errors": True}], netns=ns)
    took = time.monotonic() - started
    assert res["r"].get("failed"), res["r"]
    assert took < 60, f"took {took:.0f} s"
    assert "cannot be parsed" in res["r"]["msg"] and str(conf) in res["r"]["msg"], res["r"]["msg"]
    assert sha(conf) == junk and dump(ns, wg) == before


def locked_waiters(lock: Path) -> int:
    inode = os.stat(lock).st_ino
    with open("/proc/locks", encoding="ascii") as handle:
        return sum(1 for line in handle if "->" in line and line.split()[-3].endswith(f":{inode}"))


def test_two_restores_at_once_the_second_finds_nothing_to_do(pg_server, pg_db, lab, tmp_path):
    ns, wg = lab.host("cc"), lab.wg_name("c")
    etc = tmp_path / "etc"
    base = Interface(private_key=_keys.generate_private_key(), listen_port=51894, address=("10.79.0.1/24",))
    _files.write_config(_files.config_path(str(etc), wg), base)
    assert run_playbook([iface_task(wg, str(etc))], netns=ns).rc == 0
    wanted = base.replace(peers=peers(50, psk=False))
    db = backup_state(pg_server, pg_db, tmp_path, "cc", wg, wanted)
    restore = {"config_dir": str(etc), "apply": True, **db}
    lock = etc / f".{wg}.lock"
    results = {}
    with open(lock, "a") as held:
        import fcntl

        fcntl.flock(held, fcntl.LOCK_EX)  # both runs plan, then wait here
        runs = [threading.Thread(target=lambda i=i: results.__setitem__(i, run_playbook(
            [{"name": "r", "wgfleet.wireguard.wg_restore": restore}], netns=ns))) for i in range(2)]
        for run in runs:
            run.start()
        deadline = time.monotonic() + 120
        while locked_waiters(lock) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert locked_waiters(lock) == 2
    for run in runs:
        run.join(timeout=300)
    reports = sorted((results[i]["r"]["interfaces"][wg] for i in range(2)), key=lambda r: r["file"])
    assert [r["file"] for r in reports] == ["unchanged", "updated"], reports
    assert [len(r["peers_added_live"]) for r in reports] == [0, 50]
    assert sorted(results[i]["r"]["changed"] for i in range(2)) == [False, True]
    assert len(wg_dump(ns, wg)) == 51


FAIL_FIRST_START = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.wgfleet.wireguard.plugins.module_utils import _device
real_up, calls = _device.up, []
def up(*args, **kwargs):
    calls.append(args)
    if len(calls) == 1:
        raise RuntimeError("injected: not a WgError")  # after the old interface went down
    return real_up(*args, **kwargs)
_device.up = up
exec(sys.argv[2])
"""


@pytest.mark.parametrize("module", ["wg_interface", "wg_restore"])
def test_any_exception_in_a_restart_puts_the_interface_back(server, module):
    ns, wg, etc, conf = server["ns"], server["wg"], server["etc"], server["conf"]
    before = snapshot_of(server)
    if module == "wg_interface":
        code = ("from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import *\n"
                f"ensure(InterfaceRequest(name={wg!r}, config_dir={str(etc)!r}, settings={{'mtu': 1380}}), False)")
    else:
        code = ("from ansible_collections.wgfleet.wireguard.plugins.module_utils import _backup, _files\n"
                f"state = {{{wg!r}: _files.read_config({str(conf)!r}).replace(mtu=1380)}}\n"
                f"_backup.apply_restore(_backup.plan_restore(state, _backup.observe({str(etc)!r}, state), True, False))")
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", FAIL_FIRST_START, str(COLLECTIONS), code],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1 and "injected: not a WgError" in proc.stderr, proc.stderr[-2000:]
    assert snapshot_of(server) == before


def test_a_start_cut_short_before_its_routes_is_drift_that_wg_interface_repairs(server):
    """wg-quick up killed with the module (its output pipe gone) stops between two ``ip route add``."""
    ns, wg, etc = server["ns"], server["wg"], server["etc"]
    full = routes(ns, wg)
    assert len(full) == 31
    lost = sorted(full - {"10.79.0.0/24"})[:20]
    for cidr in lost:
        sh("ip", "route", "del", cidr, "dev", wg, netns=ns)
    before = sha(server["conf"])
    res = run_playbook([iface_task(wg, str(etc))], netns=ns, check=True)
    assert res["r"]["changed"] is True and res["r"]["drift"] == ["routes"] and routes(ns, wg) != full
    res = run_playbook([iface_task(wg, str(etc))], netns=ns)
    assert res["r"]["changed"] is True and res["r"]["applied"] == "live" and res["r"]["drift"] == ["routes"]
    assert routes(ns, wg) == full and sha(server["conf"]) == before
    res = run_playbook([iface_task(wg, str(etc))], netns=ns)
    assert res["r"]["changed"] is False
