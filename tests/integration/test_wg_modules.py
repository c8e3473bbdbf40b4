"""wg_interface and wg_peer through ansible-playbook on real wireguard-go devices in namespaces.

Each test builds its own hosts (network namespaces joined by veth) and checks
what a user would see: a handshake, traffic, the file on disk, the module's
report; never the module's own word for what it did.
"""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.conftest import needs_lab
from tests.helpers.modules import PSK, connect, iface_task, latest_handshake, peer_task, sha
from tests.helpers.netns import ping, sh, wg_dump
from tests.helpers.playbook import run_playbook

pytestmark = [needs_lab, pytest.mark.lab]


def test_two_hosts_handshake_and_pass_traffic_and_a_second_run_changes_nothing(connected):
    tunnel = connected
    srv, cli = tunnel["srv"], tunnel["cli"]
    assert ping(cli["ns"], "10.10.0.1"), "no traffic through the tunnel"
    assert latest_handshake(srv["ns"], srv["wg"], cli["public_key"]) > 0
    assert latest_handshake(cli["ns"], cli["wg"], srv["public_key"]) > 0

    before = {role: sha(h["conf"]) for role, h in tunnel.items()}
    srv_peer, cli_peer = connect(tunnel)
    assert not srv_peer["changed"] and not cli_peer["changed"]
    for role, host in tunnel.items():
        port = 51820 if role == "srv" else 51830
        res = run_playbook([iface_task(host["wg"], host["dir"], address=[host["addr"]], listen_port=port)],
                           netns=host["ns"])
        assert res["r"]["changed"] is False
        assert res["r"]["applied"] == "none"
    assert before == {role: sha(h["conf"]) for role, h in tunnel.items()}


def test_check_mode_predicts_and_writes_nothing(lab, tmp_path):
    ns = lab.host("chk")
    wg = lab.wg_name("k")
    conf = tmp_path / f"{wg}.conf"
    res = run_playbook([iface_task(wg, str(tmp_path), address=["10.10.0.1/24"], listen_port=51820)], netns=ns,
                       check=True)
    assert res["r"]["changed"] is True
    assert res["r"]["public_key"] is None, "check mode must not generate a key"
    assert not conf.exists()
    assert sh("ip", "link", "show", wg, netns=ns, check=False).returncode != 0

    res = run_playbook([iface_task(wg, str(tmp_path), address=["10.10.0.1/24"], listen_port=51820)], netns=ns)
    peer = {"public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "allowed_ips": ["10.10.0.9/32"]}
    before = sha(conf)
    res = run_playbook([peer_task(wg, str(tmp_path), **peer)], netns=ns, check=True)
    assert res["p"]["changed"] is True
    assert res["p"]["peers"]["added"] == [peer["public_key"]]
    assert sha(conf) == before
    assert len(wg_dump(ns, wg)) == 1, "check mode added a live peer"

    res = run_playbook([iface_task(wg, str(tmp_path), mtu=1380)], netns=ns, check=True)
    assert res["r"]["changed"] and res["r"]["applied"] == "restart"
    assert sha(conf) == before


def test_config_files_are_private(tunnel):
    for host in tunnel.values():
        assert stat.S_IMODE(os.stat(host["conf"]).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(host["dir"]).st_mode) == 0o700


def test_no_secret_in_output_at_any_verbosity_or_in_diffs(tunnel):
    srv = tunnel["srv"]
    private_key = sh("wg", "show", srv["wg"], "private-key", netns=srv["ns"]).stdout.strip()
    res = run_playbook(
        [iface_task(srv["wg"], srv["dir"], mtu=1400, private_key=private_key),
         peer_task(srv["wg"], srv["dir"], public_key=tunnel["cli"]["public_key"], allowed_ips=["10.10.0.2/32"],
                   preshared_key=PSK)],
        netns=srv["ns"], diff=True, verbosity=4,
    )
    assert res.rc == 0, "playbook failed"
    assert "redacted" in res.output
    assert private_key not in res.output, "private key leaked"
    assert PSK not in res.output, "preshared key leaked"


def test_peer_changes_apply_live_without_disturbing_other_sessions(connected, lab):
    srv, cli = connected["srv"], connected["cli"]
    assert ping(cli["ns"], "10.10.0.1")
    first = latest_handshake(srv["ns"], srv["wg"], cli["public_key"])
    time.sleep(1.1)  # handshake times have a resolution of one second
    others = [{"public_key": k, "allowed_ips": [f"10.10.0.{i + 10}/32"]} for i, k in enumerate(
        ["TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="])]
    res = run_playbook([peer_task(srv["wg"], srv["dir"], peers=others)], netns=srv["ns"])
    assert res["p"]["changed"] and res["p"]["applied"] == "live"
    assert res["p"]["peer_count"] == 3, "a non-exclusive run must keep the peers it does not name"
    assert latest_handshake(srv["ns"], srv["wg"], cli["public_key"]) == first, "the client's session was reset"
    assert ping(cli["ns"], "10.10.0.1")
    live = {row[0] for row in wg_dump(srv["ns"], srv["wg"])[1:]}
    assert live == {cli["public_key"], *(o["public_key"] for o in others)}

    res = run_playbook([peer_task(srv["wg"], srv["dir"], peers=others[:1], exclusive=True)], netns=srv["ns"])
    assert sorted(res["p"]["peers"]["removed"]) == sorted([cli["public_key"], others[1]["public_key"]])
    live = {row[0] for row in wg_dump(srv["ns"], srv["wg"])[1:]}
    assert live == {others[0]["public_key"]}
    assert cli["public_key"] not in Path(srv["conf"]).read_text()


def test_reordered_or_respelled_values_are_no_change(connected):
    srv = connected["srv"]
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=connected["cli"]["public_key"],
                                  allowed_ips=["10.10.0.2/32", "10.10.0.2"])], netns=srv["ns"])
    assert res["p"]["changed"] is False
    cli = connected["cli"]
    res = run_playbook([peer_task(cli["wg"], cli["dir"], public_key=srv["public_key"],
                                  allowed_ips=["10.10.0.77/24"], endpoint=f" {srv['underlay']}:51820")],
                       netns=cli["ns"])
    assert res["p"]["changed"] is False


def test_live_drift_is_reported_and_repaired(connected):
    srv, cli = connected["srv"], connected["cli"]
    sh("wg", "set", srv["wg"], "peer", cli["public_key"], "allowed-ips", "10.99.0.0/16", netns=srv["ns"])
    sh("wg", "set", srv["wg"], "listen-port", "40000", netns=srv["ns"])
    res = run_playbook([peer_task(srv["wg"], srv["dir"], public_key=cli["public_key"], allowed_ips=["10.10.0.2/32"])],
                       netns=srv["ns"])
    assert res["p"]["changed"] is True
    assert res["p"]["drift"] == [cli["public_key"]]
    res = run_playbook([iface_task(srv["wg"], srv["dir"])], netns=srv["ns"])
    assert res["r"]["drift"] == ["listen_port"] and res["r"]["applied"] == "live"
    assert wg_dump(srv["ns"], srv["wg"])[0][2] == "51820"
    assert ping(cli["ns"], "10.10.0.1")


def test_restart_settings_restart_only_that_interface_and_keep_live_only_peers(connected, lab):
    srv, cli = connected["srv"], connected["cli"]
    other = lab.wg_name("o")
    res = run_playbook([iface_task(other, srv["dir"], address=["10.11.0.1/24"], listen_port=51821)], netns=srv["ns"])
    assert res.rc == 0, res.output
    other_key = wg_dump(srv["ns"], other)[0][1]
    live_only = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
    sh("wg", "set", srv["wg"], "peer", live_only, "allowed-ips", "10.10.0.50/32", netns=srv["ns"])

    res = run_playbook([iface_task(srv["wg"], srv["dir"], address=["10.10.0.1/24", "fd10::1/64"], mtu=1380)],
                       netns=srv["ns"])
    assert res["r"]["applied"] == "restart"
    assert sorted(res["r"]["changes"]) == ["address", "mtu", "peers"]
    assert res["r"]["preserved_peers"] == [live_only]
    assert "mtu 1380" in sh("ip", "link", "show", srv["wg"], netns=srv["ns"]).stdout
    assert "fd10::1/64" in sh("ip", "address", "show", srv["wg"], netns=srv["ns"]).stdout
    assert live_only in {row[0] for row in wg_dump(srv["ns"], srv["wg"])[1:]}
    assert wg_dump(srv["ns"], other)[0][1] == other_key, "the other interface was touched"
    # The restarted server forgot the session: the client re-handshakes once its packets go unanswered.
    assert ping(cli["ns"], "10.10.0.1", count=1, deadline=45)


def test_private_key_is_kept_and_only_replaced_when_given(tunnel):
    srv = tunnel["srv"]
    res = run_playbook([iface_task(srv["wg"], srv["dir"], address=["10.10.0.1/24"])], netns=srv["ns"])
    assert res["r"]["public_key"] == srv["public_key"]
    assert res["r"]["private_key_source"] == "file"
    new_key = sh("wg", "genkey").stdout.strip()
    new_pub = sh("wg", "pubkey", input=new_key).stdout.strip()
    res = run_playbook([iface_task(srv["wg"], srv["dir"], private_key=new_key)], netns=srv["ns"])
    assert res["r"]["changed"] and res["r"]["applied"] == "live"
    assert res["r"]["public_key"] == new_pub
    assert wg_dump(srv["ns"], srv["wg"])[0][1] == new_pub


@pytest.mark.parametrize(
    ("module", "options", "message"),
    [
        ("wg_peer", {"public_key": "not-a-key", "allowed_ips": ["10.10.0.2/32"]}, "public_key: 'not-a-key'"),
        ("wg_peer", {"public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "allowed_ips": ["10.10.0.300/32"]},
         "allowed_ips: '10.10.0.300/32'"),
        ("wg_peer", {"public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "endpoint": "2001:db8::1:51820"},
         "endpoint: '2001:db8::1:51820'"),
        ("wg_peer", {"peers": [{"public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", "preshared_key": "xx"}]},
         "preshared_key: **redacted**"),
        ("wg_peer", {"interface": "nosuch0", "public_key": "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="},
         "interface: 'nosuch0' does not exist"),
        ("wg_interface", {"listen_port": 70000}, "listen_port: 70000"),
        ("wg_interface", {"address": ["10.10.0.1/33"]}, "address: '10.10.0.1/33'"),
        ("wg_interface", {"private_key": "short"}, "private_key: **redacted**"),
        ("wg_interface", {"name": "much-too-long-name"}, "name: 'much-too-long-name'"),
    ],
)
def test_bad_input_names_option_and_value_and_changes_nothing(tunnel, module, options, message):
    srv = tunnel["srv"]
    before = sha(srv["conf"])
    live_before = wg_dump(srv["ns"], srv["wg"])
    base = {"config_dir": srv["dir"]}
    base["interface" if module == "wg_peer" else "name"] = srv["wg"]
    task = {"name": "bad", f"wgfleet.wireguard.{module}": {**base, **options}, "ignore_errors": True}
    res = run_playbook([task], netns=srv["ns"])
    assert res["bad"].get("failed"), res["bad"]
    assert message in res["bad"]["msg"]
    assert sha(srv["conf"]) == before
    assert wg_dump(srv["ns"], srv["wg"]) == live_before


def test_failed_start_puts_the_old_file_back(tunnel):
    srv = tunnel["srv"]
    before = sha(srv["conf"])
    res = run_playbook([{**iface_task(srv["wg"], srv["dir"], post_up=["false"]), "ignore_errors": True}],
                       netns=srv["ns"])
    assert res["r"].get("failed")
    assert "wg-quick up" in res["r"]["msg"]
    assert sha(srv["conf"]) == before
    assert wg_dump(srv["ns"], srv["wg"])[0][2] == "51820", "the old interface was not brought back"


def test_backup_and_absent(tunnel):
    srv = tunnel["srv"]
    res = run_playbook([iface_task(srv["wg"], srv["dir"], mtu=1400, backup=True)], netns=srv["ns"])
    backup = res["r"]["backup_file"]
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert "MTU" not in Path(backup).read_text()
    assert "MTU = 1400" in Path(srv["conf"]).read_text()
    res = run_playbook([iface_task(srv["wg"], srv["dir"], state="absent")], netns=srv["ns"])
    assert res["r"]["changed"] and res["r"]["applied"] == "down"
    assert not os.path.exists(srv["conf"])
    assert sh("ip", "link", "show", srv["wg"], netns=srv["ns"], check=False).returncode != 0
    res = run_playbook([iface_task(srv["wg"], srv["dir"], state="absent")], netns=srv["ns"])
    assert res["r"]["changed"] is False


def test_kernel_implementation_is_refused_clearly_without_the_module(lab, tmp_path):
    if os.path.exists("/sys/module/wireguard"):
        pytest.skip("this kernel has the WireGuard module")
    ns = lab.host("krn")
    wg = lab.wg_name("k")
    res = run_playbook([{**iface_task(wg, str(tmp_path), implementation="kernel"), "ignore_errors": True}], netns=ns)
    assert "implementation: 'kernel'" in res["r"]["msg"]
    assert not (tmp_path / f"{wg}.conf").exists()
