"""The capture rule and the restore plan, pure: no root, no device, no database."""
from __future__ import annotations

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._backup import (
    HostInterface,
    capture,
    capture_interface,
    plan_restore,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError, WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer, render
from tests.helpers.keys import new_key
from tests.helpers.live import LiveState

KEY = _keys.generate_private_key()


def peer(n: int, **extra) -> Peer:
    return Peer(**{"public_key": KEYS[n], "allowed_ips": (f"10.70.0.{n}/32",), **extra})


KEYS = sorted(new_key() for _unused in range(10))


def file_iface(*peers) -> Interface:
    return Interface(private_key=KEY, listen_port=51820, address=("10.70.0.1/24",), mtu=1380, dns=("10.70.0.53",),
                     post_up=("echo up",), peers=peers)


def live_iface(*peers, private_key=KEY, port=51820) -> Interface:
    return Interface(private_key=private_key, listen_port=port, peers=peers)


def test_settings_labels_and_configured_endpoints_from_the_file_peers_from_the_device():
    from_file = file_iface(peer(1, name="alice", endpoint="vpn.example.org:51820", persistent_keepalive=25),
                           peer(2, name="bob"))
    live = live_iface(
        # The device learned endpoints from traffic, and holds a newer allowed IP and keepalive for alice.
        peer(1, endpoint="172.30.1.1:40000", allowed_ips=("10.70.0.11/32",), persistent_keepalive=10),
        peer(2, endpoint="172.30.1.2:40001"),
        peer(3, endpoint="172.30.1.3:40002", preshared_key=KEY),  # added through an API
    )
    got = capture_interface("wg0", from_file, live)
    assert got.settings() == from_file.settings()
    assert [p.public_key for p in got.peers] == [KEYS[1], KEYS[2], KEYS[3]]
    alice, bob, api = got.peers
    assert alice == peer(1, name="alice", endpoint="vpn.example.org:51820", allowed_ips=("10.70.0.11/32",),
                         persistent_keepalive=10)
    assert bob == peer(2, name="bob")  # no configured endpoint: the learned one is not kept
    assert api == peer(3, preshared_key=KEY)


def test_a_roaming_client_changes_nothing():
    from_file = file_iface(peer(1, name="alice"))
    first = capture_interface("wg0", from_file, live_iface(peer(1, endpoint="172.30.1.1:40000"), peer(2)))
    moved = capture_interface("wg0", from_file, live_iface(peer(1, endpoint="172.30.9.9:50000"),
                                                           peer(2, endpoint="172.30.9.8:1")))
    assert first == moved


def test_a_peer_revoked_live_is_not_captured_though_the_file_lists_it():
    from_file = file_iface(peer(1, name="alice"), peer(2, name="revoked"))
    got = capture_interface("wg0", from_file, live_iface(peer(1)))
    assert [p.public_key for p in got.peers] == [KEYS[1]]


def test_a_stopped_interface_is_its_file_and_a_fileless_device_is_taken_as_it_runs():
    from_file = file_iface(peer(1, name="alice", endpoint="vpn.example.org:51820"))
    assert capture_interface("wg0", from_file, None) == from_file
    live = live_iface(peer(1, endpoint="172.30.1.1:40000"), port=40404)
    got = capture_interface("wg0", None, live.replace(address=("10.70.0.1/24",), mtu=1400))
    assert got == Interface(private_key=KEY, listen_port=40404, address=("10.70.0.1/24",), mtu=1400, peers=(peer(1),))
    with pytest.raises(WgValueError, match="interfaces: 'wg9' has no configuration file and is not running"):
        capture_interface("wg9", None, None)


def test_the_file_key_wins_and_the_device_fills_a_missing_one():
    other = _keys.generate_private_key()
    assert capture_interface("wg0", file_iface(), live_iface(private_key=other)).private_key == KEY
    assert capture_interface("wg0", file_iface().replace(private_key=None), live_iface(private_key=other)) \
        .private_key == other


def test_capture_walks_files_and_devices_and_counts_live_only_peers(tmp_path):
    (tmp_path / "wg0.conf").write_text(render(file_iface(peer(1, name="alice"))))
    (tmp_path / ".wg5.conf").write_text("hidden: never read")
    (tmp_path / "notes.txt").write_text("not a config")
    wg1 = live_iface(peer(3)).replace(address=("10.99.0.1/24",), mtu=1420)
    source = LiveState({"wg0": live_iface(peer(1), peer(2)), "wg1": wg1})
    state, live_only = capture(str(tmp_path), source, lock=False)
    assert sorted(state) == ["wg0", "wg1"] and live_only == {"wg0": 1, "wg1": 1}
    assert state["wg1"].address == ("10.99.0.1/24",)
    only, _counts = capture(str(tmp_path), source, only=("wg1",), lock=False)
    assert list(only) == ["wg1"]
    with pytest.raises(WgValueError, match="'wg7' has no configuration file"):
        capture(str(tmp_path), source, names=["wg7"], lock=False)


def test_a_file_that_cannot_be_read_fails_the_whole_capture(tmp_path):
    (tmp_path / "wg0.conf").write_text("[Interface]\nNot a line\n")
    with pytest.raises(WgError):
        capture(str(tmp_path), LiveState({}), lock=False)


# --- the restore plan --------------------------------------------------------------------------------------


def observed(tmp_path, name="wg0", existing=None, original=None, unreadable=None, live=None) -> dict:
    return {name: HostInterface(name, str(tmp_path / f"{name}.conf"), existing, original, unreadable, live)}


def test_plan_of_a_new_host():
    wanted = {"wg0": file_iface(peer(1))}
    (plan,) = plan_restore(wanted, observed_at("/nonexistent"), apply=True, force=False)
    assert plan.file_changed and plan.action == "up"
    assert plan.report()["file"] == "created" and plan.report()["applied"] == "up"
    (plan,) = plan_restore(wanted, observed_at("/nonexistent"), apply=False, force=False)
    assert plan.action == "none" and plan.changed


def observed_at(path):
    return {"wg0": HostInterface("wg0", f"{path}/wg0.conf")}


def test_plan_refuses_another_key_and_an_unreadable_file_unless_forced(tmp_path):
    wanted = {"wg0": file_iface()}
    other = file_iface().replace(private_key=_keys.generate_private_key())
    with pytest.raises(WgError, match=r"another private key .*force: true") as info:
        plan_restore(wanted, observed(tmp_path, existing=other, original=b"x"), apply=False, force=False)
    assert other.private_key not in str(info.value) and KEY not in str(info.value)
    (plan,) = plan_restore(wanted, observed(tmp_path, existing=other, original=b"x"), apply=False, force=True)
    assert plan.report()["file"] == "updated"
    with pytest.raises(WgError, match=r"cannot be parsed \(line 2\).*force: true"):
        plan_restore(wanted, observed(tmp_path, original=b"junk", unreadable="line 2"), apply=False, force=False)
    (plan,) = plan_restore(wanted, observed(tmp_path, original=b"junk", unreadable="line 2"), apply=False, force=True)
    assert plan.original == b"junk" and plan.report()["file"] == "updated"


def test_an_unchanged_host_plans_nothing(tmp_path):
    wanted = {"wg0": file_iface(peer(1))}
    (plan,) = plan_restore(wanted, observed(tmp_path, existing=wanted["wg0"], original=b"x"), apply=False,
                           force=False)
    assert not plan.changed and plan.report()["file"] == "unchanged"
