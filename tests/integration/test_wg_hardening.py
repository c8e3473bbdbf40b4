"""The holes of issue 7 and the comparison of issue 8, each shown closed on real wireguard-go devices.

Every check uses means independent of the collection: a handshake and a ping,
``wg show``, ``ip route``, the file's bytes and mode, the processes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import needs_lab
from tests.helpers.keys import PEER_B as OTHER
from tests.helpers.keys import PEER_C as THIRD
from tests.helpers.modules import PSK, iface_task, latest_handshake, peer_task, sha
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.playbook import COLLECTIONS, run_playbook

pytestmark = [needs_lab, pytest.mark.lab]


def live_keys(ns, wg):
    return {row[0] for row in wg_dump(ns, wg)[1:]}


def routes(ns, wg):
    return sh("ip", "route", "show", "dev", wg, netns=ns).stdout


def handshake_fails_anew(cli, srv_key):
    """The client forgets its session with the server and tries a new handshake; True when none completes."""
    sh("wg", "set", cli["wg"], "peer", srv_key, "remove", netns=cli["ns"])
    sh("wg", "addconf", cli["wg"], "/dev/stdin", netns=cli["ns"],
       input=f"[Peer]\nPublicKey = {srv_key}\nPresharedKey = {PSK}\nAllowedIPs = 10.10.0.0/24\n"
             f"Endpoint = {cli['server_endpoint']}\nPersistentKeepalive = 1\n")
    ok = ping(cli["ns"], "10.10.0.1", count=1, deadline=8)
    return not ok and latest_handshake(cli["ns"], cli["wg"], srv_key) == 0


@pytest.mark.parametrize("how", ["absent", "in peers", "exclusive"])
def test_a_revoked_key_cannot_complete_another_handshake(connected, how):
    srv, cli = connected["srv"], connected["cli"]
    cli["server_endpoint"] = f"{srv['underlay']}:51820"
    # An extra network behind the client, routed to the server's interface by the module.
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=cli["public_key"],
                                  allowed_ips=["10.10.0.2/32", "192.168.77.0/24"])], netns=srv["ns"])
    assert "192.168.77.0/24" in routes(srv["ns"], srv["wg"])
    assert ping(cli["ns"], "10.10.0.1")
    options = {
        "absent": {"public_key": cli["public_key"], "state": "absent"},
        "in peers": {"peers": [{"public_key": cli["public_key"], "state": "absent"}]},
        "exclusive": {"peers": [{"public_key": OTHER, "allowed_ips": ["10.10.0.9/32"]}], "exclusive": True},
    }[how]
    res = run_playbook([peer_task(srv["wg"], srv["dir"], **options)], netns=srv["ns"])
    assert res["p"]["changed"] and cli["public_key"] in res["p"]["peers"]["removed"]
    assert cli["public_key"] not in live_keys(srv["ns"], srv["wg"]), "the revoked peer is still on the device"
    assert "192.168.77.0/24" not in routes(srv["ns"], srv["wg"]), "the revoked peer's route stayed"
    assert cli["public_key"] not in Path(srv["conf"]).read_text()
    assert handshake_fails_anew(cli, srv["public_key"]), "the revoked key completed a handshake"
    res = run_playbook([peer_task(srv["wg"], srv["dir"], **options)], netns=srv["ns"])
    assert res["p"]["changed"] is False


def test_a_peer_only_the_device_has_is_revoked_too(tunnel):
    srv = tunnel["srv"]
    sh("wg", "set", srv["wg"], "peer", OTHER, "allowed-ips", "10.10.0.33/32", netns=srv["ns"])
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=OTHER, state="absent")], netns=srv["ns"], check=True)
    assert res["p"]["changed"] and OTHER in live_keys(srv["ns"], srv["wg"])
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=OTHER, state="absent")], netns=srv["ns"])
    assert res["p"]["changed"] and res["p"]["peers"]["removed"] == [OTHER]
    assert OTHER not in live_keys(srv["ns"], srv["wg"])


HOSTILE = {
    "dns newline": ("wg_interface", {"dns": ["10.79.0.53\nPreUp = touch {marker}"]}, "dns: "),
    "address zone": ("wg_interface", {"address": ["fe80::1%eth0\nPreUp = touch {marker}/64"]}, "address: "),
    "hook with hash": ("wg_interface", {"post_up": ["touch {marker} # note"]}, "post_up: "),
    "hook u2028": ("wg_interface", {"pre_up": ["true\u2028PreUp = touch {marker}"]}, "pre_up: "),
    "table vt": ("wg_interface", {"table": "1234\vPreUp = touch {marker}"}, "table: "),
    "label u2028": ("wg_peer", {"public_key": OTHER, "name": "x\u2028AllowedIPs = 0.0.0.0/0"}, "name: "),
    "label fs": ("wg_peer", {"public_key": OTHER, "name": "x\x1cAllowedIPs = 0.0.0.0/0"}, "name: "),
    "endpoint newline": ("wg_peer", {"public_key": OTHER, "endpoint": "h.example:1\nAllowedIPs = 0.0.0.0/0"},
                         "endpoint: "),
    "allowed zone": ("wg_peer", {"public_key": OTHER, "allowed_ips": ["fe80::1%eth0/128"]}, "allowed_ips: "),
    "name nul": ("wg_peer", {"public_key": OTHER, "name": "x\x00y"}, "name: "),
    "huge label": ("wg_peer", {"public_key": OTHER, "name": "x" * 100_000}, "name: "),
}


def test_hostile_values_are_refused_before_anything_is_written(tunnel, tmp_path):
    srv = tunnel["srv"]
    marker = tmp_path / "injected"
    tasks = []
    for label, (module, options, _prefix) in HOSTILE.items():
        opts = {k: ([x.format(marker=marker) for x in v] if isinstance(v, list) else
                    v.format(marker=marker) if isinstance(v, str) and k != "public_key" else v)
                for k, v in options.items()}
        base = {"interface" if module == "wg_peer" else "name": srv["wg"], "config_dir": srv["dir"]}
        tasks.append({"name": label, f"wgfleet.wireguard.{module}": {**base, **opts}, "ignore_errors": True})
    tasks.append(iface_task(srv["wg"], srv["dir"], mtu=1400))  # a restart: wg-quick reads the file again
    before = sha(srv["conf"])
    res = run_playbook(tasks[:-1], netns=srv["ns"])
    for label, (_module, _options, prefix) in HOSTILE.items():
        assert res[label].get("failed"), label
        assert prefix in res[label]["msg"], (label, res[label]["msg"][:300])
        assert "unexpected" not in res[label]["msg"]
    assert sha(srv["conf"]) == before
    res = run_playbook(tasks[-1:], netns=srv["ns"])
    assert res["r"]["applied"] == "restart"
    assert not marker.exists(), "an injected hook ran"
    assert "0.0.0.0/0" not in sh("wg", "show", srv["wg"], "allowed-ips", netns=srv["ns"]).stdout


def test_a_key_in_a_typo_line_is_never_quoted(tunnel):
    srv = tunnel["srv"]
    private_key = sh("wg", "show", srv["wg"], "private-key", netns=srv["ns"]).stdout.strip()
    text = Path(srv["conf"]).read_text().replace(f"PrivateKey = {private_key}", f"PrivateKey: {private_key}")
    Path(srv["conf"]).write_text(text)
    res = run_playbook([{**iface_task(srv["wg"], srv["dir"], mtu=1400), "ignore_errors": True},
                        {**peer_task(srv["wg"], srv["dir"], public_key=OTHER), "ignore_errors": True}],
                       netns=srv["ns"], verbosity=4)
    assert res["r"]["failed"] and res["p"]["failed"]
    assert "line" in res["r"]["msg"] and srv["conf"] in res["r"]["msg"]
    assert private_key not in res.output and private_key[:20] not in res.output


def test_a_failed_live_change_puts_device_and_file_back(tunnel):
    srv = tunnel["srv"]
    run_playbook([peer_task(srv["wg"], srv["dir"], public_key=THIRD, allowed_ips=["10.10.0.40/32"])], netns=srv["ns"])
    before, live_before = sha(srv["conf"]), wg_dump(srv["ns"], srv["wg"])
    # The new peer's endpoint does not resolve: wg addconf fails after the peer removal went through.
    res = run_playbook([{**peer_task(srv["wg"], srv["dir"], exclusive=True, peers=[
        {"public_key": OTHER, "allowed_ips": ["10.10.0.41/32"], "endpoint": "nosuch.invalid:51820"}]),
        "ignore_errors": True}], netns=srv["ns"])
    assert res["p"].get("failed"), res["p"]
    assert "put back" in res["p"]["msg"]
    assert sha(srv["conf"]) == before
    assert wg_dump(srv["ns"], srv["wg"]) == live_before
    assert not [f for f in os.listdir(srv["dir"]) if f.endswith(".tmp") or f.endswith("~")]


def test_a_failed_route_puts_device_and_file_back(lab, tmp_path):
    ns = lab.host("rt")
    wg = lab.wg_name("t")
    res = run_playbook([iface_task(wg, str(tmp_path), address=["10.10.0.1/24"], table="4242")], netns=ns)
    assert res.rc == 0, res.output
    conf = tmp_path / f"{wg}.conf"
    before, live_before = sha(conf), wg_dump(ns, wg)
    # A table id ip refuses: the peer gets onto the device, its route fails, everything goes back.
    text = conf.read_text().replace("Table = 4242", "Table = nosuchtable")
    conf.write_text(text)
    before = sha(conf)
    res = run_playbook([{**peer_task(wg, str(tmp_path), public_key=OTHER, allowed_ips=["192.168.78.0/24"]),
                         "ignore_errors": True}], netns=ns)
    assert res["p"].get("failed") and "put back" in res["p"]["msg"], res["p"]
    assert sha(conf) == before
    assert wg_dump(ns, wg) == live_before


def test_an_interface_that_dies_right_after_its_start_is_an_error_and_the_old_state_returns(tunnel):
    srv = tunnel["srv"]
    before = sha(srv["conf"])
    res = run_playbook([{**iface_task(srv["wg"], srv["dir"], post_up=["ip link delete %i"]), "ignore_errors": True}],
                       netns=srv["ns"])
    assert res["r"].get("failed"), res["r"]
    assert "wg-quick up succeeded, but the link is gone" in res["r"]["msg"]
    assert sha(srv["conf"]) == before
    assert wg_dump(srv["ns"], srv["wg"])[0][2] == "51820", "the old interface was not brought back"


def test_an_interface_started_by_a_group_leader_survives_the_group(lab, tmp_path):
    """Ansible's worker is a process group leader, killed with its group when still alive as the play ends."""
    ns = lab.host("grp")
    wg = lab.wg_name("g")
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import InterfaceRequest, ensure;"
            "ensure(InterfaceRequest(name=sys.argv[2], config_dir=sys.argv[3], settings={'address': ['10.10.0.1/24']}),"
            " False)")
    proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code, str(COLLECTIONS), wg,
                             str(tmp_path)], start_new_session=True)
    assert proc.wait(timeout=60) == 0
    assert sh("wg", "show", wg, netns=ns).returncode == 0
    # What ansible-playbook does to a worker still alive as the play ends. Nothing left in that group
    # (ProcessLookupError) means the daemon is in a session of its own.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert sh("wg", "show", wg, netns=ns, check=False).returncode == 0, "the interface died with the group"


def test_config_dir_keeps_its_mode_and_a_readable_file_is_made_private(lab, tmp_path):
    ns = lab.host("mode")
    wg = lab.wg_name("m")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    res = run_playbook([iface_task(wg, str(shared), address=["10.10.0.1/24"], up=False)], netns=ns)
    assert res.rc == 0, res.output
    assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    conf = shared / f"{wg}.conf"
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    os.chmod(conf, 0o644)
    res = run_playbook([iface_task(wg, str(shared), up=False)], netns=ns, check=True)
    assert res["r"]["changed"] and res["r"]["changes"] == ["mode"]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o644
    before = sha(conf)
    res = run_playbook([iface_task(wg, str(shared), up=False)], netns=ns)
    assert res["r"]["changed"] and res["r"]["changes"] == ["mode"]
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600 and sha(conf) == before
    os.chmod(conf, 0o640)
    res = run_playbook([peer_task(wg, str(shared), public_key=OTHER, allowed_ips=["10.10.0.5/32"])], netns=ns)
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o600
    os.chmod(conf, 0o604)
    res = run_playbook([peer_task(wg, str(shared), public_key=OTHER, allowed_ips=["10.10.0.5/32"])], netns=ns)
    assert res["p"]["changed"] and res["p"]["changes"] == ["mode"]
    res = run_playbook([peer_task(wg, str(shared), public_key=OTHER, allowed_ips=["10.10.0.5/32"]),
                        iface_task(wg, str(shared), up=False)], netns=ns)
    assert res["p"]["changed"] is False and res["r"]["changed"] is False


def test_two_peers_with_one_network_are_refused_naming_both(tunnel):
    srv = tunnel["srv"]
    run_playbook([peer_task(srv["wg"], srv["dir"], public_key=OTHER, allowed_ips=["10.10.0.50/32"])], netns=srv["ns"])
    before = sha(srv["conf"])
    res = run_playbook([{**peer_task(srv["wg"], srv["dir"], public_key=THIRD, allowed_ips=["10.10.0.50/32"]),
                         "ignore_errors": True}], netns=srv["ns"])
    assert res["p"].get("failed")
    assert OTHER in res["p"]["msg"] and THIRD in res["p"]["msg"] and "10.10.0.50/32" in res["p"]["msg"]
    assert sha(srv["conf"]) == before


def test_a_writer_killed_mid_write_leaves_no_copy_of_the_key(tunnel):
    srv = tunnel["srv"]
    code = ("import os, signal, sys; sys.path.insert(0, sys.argv[1]);"
            "from ansible_collections.wgfleet.wireguard.plugins.module_utils import _files;"
            "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL);"  # killed at the worst moment
            "_files.write_config(sys.argv[2], _files.read_config(sys.argv[2]).replace(mtu=1300))")
    proc = subprocess.run([sys.executable, "-c", code, str(COLLECTIONS), srv["conf"]], check=False)
    assert proc.returncode == -signal.SIGKILL
    strays = [f for f in os.listdir(srv["dir"]) if f.startswith(".") and not f.endswith(".lock")]
    assert strays, "the writer was not killed half-way"
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=OTHER)], netns=srv["ns"])
    assert res.rc == 0, res.output
    assert [f for f in os.listdir(srv["dir"]) if f.startswith(".") and not f.endswith(".lock")] == []


def test_addresses_in_another_order_are_no_change(lab, tmp_path):
    ns = lab.host("ord")
    wg = lab.wg_name("o")
    res = run_playbook([iface_task(wg, str(tmp_path), address=["10.10.0.1/24", "fd10::1/64"])], netns=ns)
    assert res.rc == 0, res.output
    before = sha(tmp_path / f"{wg}.conf")
    res = run_playbook([iface_task(wg, str(tmp_path), address=["fd10::1/64", "10.10.0.1/24"])], netns=ns)
    assert res["r"]["changed"] is False and res["r"]["changes"] == [] and res["r"]["applied"] == "none"
    assert sha(tmp_path / f"{wg}.conf") == before


def test_check_mode_predicts_a_generated_key_for_a_file_without_one(lab, tmp_path):
    ns = lab.host("gen")
    wg = lab.wg_name("n")
    conf = tmp_path / f"{wg}.conf"
    conf.write_text("[Interface]\nAddress = 10.10.0.1/24\n")
    os.chmod(conf, 0o600)
    res = run_playbook([iface_task(wg, str(tmp_path), up=False)], netns=ns, check=True)
    assert res["r"]["changed"] is True and res["r"]["changes"] == ["private_key"]
    assert "PrivateKey" not in conf.read_text()
    res = run_playbook([iface_task(wg, str(tmp_path), up=False)], netns=ns)
    assert res["r"]["changed"] is True and "PrivateKey" in conf.read_text()


def test_api_peers_dir_gives_a_restarted_interface_its_api_peers_back(lab, tmp_path):
    ns = lab.host("api")
    wg = lab.wg_name("a")
    etc, dump = tmp_path / "etc", tmp_path / "wgrest"
    dump.mkdir()
    # What wgrest dumps: the device as `wg showconf` prints it, with a peer added through the API.
    (dump / f"{wg}.conf").write_text(f"[Interface]\nListenPort = 51820\n\n[Peer]\nPublicKey = {OTHER}\n"
                                     "AllowedIPs = 10.10.0.7/32\n")
    res = run_playbook([iface_task(wg, str(etc), address=["10.10.0.1/24"], api_peers_dir=str(dump))], netns=ns)
    assert res.rc == 0, res.output
    assert OTHER in live_keys(ns, wg), "the started interface did not get the API peer back"
    res = run_playbook([iface_task(wg, str(etc), api_peers_dir=str(dump), mtu=1380)], netns=ns)
    assert res["r"]["applied"] == "restart"
    assert OTHER in live_keys(ns, wg)
    res = run_playbook([iface_task(wg, str(etc), api_peers_dir=str(dump), mtu=1380)], netns=ns)
    assert res["r"]["changed"] is False
    res = run_playbook([{**iface_task(wg, str(etc), api_peers_dir=str(etc)), "ignore_errors": True}], netns=ns)
    assert res["r"].get("failed") and "wg-quick directory" in res["r"]["msg"]
