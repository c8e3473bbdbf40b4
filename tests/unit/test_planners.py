"""The pure planners: what a run would do, from (request, file, device), with neither root nor PostgreSQL."""
from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._device import Routes
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._interface import (
    InterfaceRequest,
    plan_device,
    plan_interface,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._peers import (
    FilePeerPlan,
    PeerSpec,
    live_drift,
    plan_peers,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import Interface, Peer
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgrest_dump import restore_hook
from tests.helpers.keys import PEER_A as A
from tests.helpers.keys import PEER_B as B
from tests.helpers.keys import PEER_C as C
from tests.helpers.keys import SERVER_KEY as KEY


def spec(key, **options):
    return PeerSpec.from_params({"public_key": key, **options})


def test_plan_peers_adds_updates_removes_and_keeps_order():
    current = [Peer(A, allowed_ips=["10.0.0.2/32"]), Peer(B, allowed_ips=["10.0.0.3/32"])]
    plan = plan_peers(current, [spec(C, allowed_ips=["10.0.0.4/32"]), spec(A, persistent_keepalive=25),
                                spec(B, state="absent")])
    assert [p.public_key for p in plan.desired] == [A, C]
    assert plan.summary() == {"added": [C], "updated": [A], "removed": [B]}
    assert plan.absent == {B}
    assert plan_peers(current, [spec(A, allowed_ips=["10.0.0.2"])]).changed is False


def test_plan_peers_exclusive_removes_what_is_not_listed():
    current = [Peer(A), Peer(B)]
    plan = plan_peers(current, [spec(B)], exclusive=True)
    assert plan.removed == [A] and [p.public_key for p in plan.desired] == [B]


def test_plan_peers_refuses_one_network_for_two_peers_naming_both():
    current = [Peer(A, allowed_ips=["10.0.0.2/32"])]
    with pytest.raises(WgValueError) as err:
        plan_peers(current, [spec(B, allowed_ips=["10.0.0.2/32"])])
    assert A in str(err.value) and B in str(err.value) and "10.0.0.2/32" in str(err.value)
    # Moving the network in the same run is fine.
    plan_peers(current, [spec(B, allowed_ips=["10.0.0.2/32"]), spec(A, allowed_ips=[])])


def test_live_drift_ignores_learned_endpoints_and_takes_revoked_keys_off_the_device():
    desired = [Peer(A, allowed_ips=["10.0.0.2/32"])]
    live = Interface(peers=[Peer(A, allowed_ips=["10.0.0.2/32"], endpoint="172.30.1.9:40000"),
                            Peer(B, allowed_ips=["10.0.0.3/32"]), Peer(C)])
    assert live_drift(desired, live, False, set()) == ([], [])
    assert live_drift(desired, live, False, set(), removed={B}) == ([], [B])
    assert live_drift(desired, live, True, set()) == ([], [B, C])
    upsert, _remove = live_drift([Peer(A, allowed_ips=["10.0.0.9/32"])], live, False, set())
    assert [p.public_key for p in upsert] == [A]


def test_live_drift_counts_a_peer_whose_routes_are_missing():
    routes = Routes(ipaddress.ip_network(n) for n in ("10.0.0.0/24", "10.9.0.0/16", "fd00:1::/64"))
    desired = [Peer(A, allowed_ips=["10.0.0.2/32", "10.9.4.0/24"]), Peer(B, allowed_ips=["10.8.0.0/24"]),
               Peer(C, allowed_ips=["0.0.0.0/0", "fd00:1::5/128"])]
    live = Interface(peers=[Peer(A, allowed_ips=["10.0.0.2/32", "10.9.4.0/24"], endpoint="172.30.1.9:40000"),
                            Peer(B, allowed_ips=["10.8.0.0/24"]), Peer(C, allowed_ips=["0.0.0.0/0", "fd00:1::5/128"])])
    upsert, remove = live_drift(desired, live, False, set(), routes=routes)
    # Only B lacks a route; it goes to the device as the device has it (a learned endpoint would stay).
    assert upsert == [live.peer_map()[B]] and remove == []
    assert live_drift(desired, live, False, set(), routes=None) == ([], [])  # Table = off: no routes wanted
    assert Routes([ipaddress.ip_network("0.0.0.0/0")]).covers("10.8.0.0/24")
    assert not Routes([ipaddress.ip_network("10.8.0.0/25")]).covers("10.8.0.0/24")
    assert not Routes([ipaddress.ip_network("10.0.0.0/8")]).covers("fd00::/64")


LIVE = Interface(private_key=KEY, listen_port=51820, address=("10.10.0.1/24", "fd10::1/64"), mtu=1420)
FILE = Interface(private_key=KEY, listen_port=51820, address=("10.10.0.1/24", "fd10::1/64"))


NO_PORT = FILE.replace(listen_port=None)


@pytest.mark.parametrize(
    ("before", "desired", "live", "up", "action", "drift"),
    [
        (FILE, FILE, None, True, "up", []),
        (FILE, FILE, None, False, "none", []),
        (FILE, FILE, LIVE, False, "down", []),
        (FILE, FILE, LIVE, True, "none", []),
        (FILE, FILE.replace(address=("fd10::1/64", "10.10.0.1/24")), LIVE, True, "none", []),
        (FILE, FILE.replace(mtu=1380), LIVE, True, "restart", []),
        (FILE, FILE.replace(post_up=("true",)), LIVE, True, "restart", []),
        (FILE, FILE.replace(listen_port=51821), LIVE, True, "live", []),
        (FILE, FILE, LIVE.replace(listen_port=40000), True, "live", ["listen_port"]),
        (FILE, FILE, LIVE.replace(address=("10.10.0.1/24",)), True, "restart", ["address"]),
        # No ListenPort in the file: the port the device picked is no drift.
        (NO_PORT, NO_PORT, LIVE.replace(listen_port=40000), True, "none", []),
    ],
)
def test_plan_device_is_pure_and_restarts_only_for_start_only_settings(before, desired, live, up, action, drift):
    plan = plan_device(before, desired, live, up)
    assert plan.action == action
    assert plan.drift == drift


def request(**settings):
    api = settings.pop("api_peers_dir", None)
    return InterfaceRequest(name="wg0", config_dir="/nonexistent/wg", settings=settings, api_peers_dir=api)


def test_plan_interface_one_comparison_gives_changed_changes_and_the_write():
    plan = plan_interface(request(address=["fd10::1/64", "10.10.0.1/24"]), "/x/wg0.conf", FILE, LIVE, None, True)
    assert (plan.changed, plan.differences.names(), plan.write_file) == (False, [], False)
    assert plan.desired == FILE
    plan = plan_interface(request(mtu=1380), "/x/wg0.conf", FILE, LIVE, None, True)
    assert (plan.changed, plan.differences.names(), plan.write_file, plan.device.action) == \
        (True, ["mtu"], True, "restart")
    plan = plan_interface(request(), "/x/wg0.conf", FILE, LIVE, 0o644, True)
    assert (plan.changed, plan.report()["changes"], plan.write_file, plan.fix_mode) == (True, ["mode"], False, True)


def test_plan_interface_counts_file_peers_without_their_routes_as_drift_repaired_live():
    peer = Peer(A, allowed_ips=["10.50.0.0/24"])
    file, live = FILE.replace(peers=(peer,)), LIVE.replace(peers=(peer,))
    lacking = Routes([ipaddress.ip_network("10.10.0.0/24")])
    plan = plan_interface(request(), "/x/wg0.conf", file, live, None, True, lacking)
    found = (plan.changed, plan.device.action, plan.report()["drift"], plan.routes_for)
    assert found == (True, "live", ["routes"], [peer])
    assert plan.live_settings is False and plan.write_file is False
    routed = Routes(ipaddress.ip_network(n) for n in ("10.10.0.0/24", "10.50.0.0/24"))
    assert plan_interface(request(), "/x/wg0.conf", file, live, None, True, routed).changed is False
    # A restart adds every route anyway; without routes read (Table = off) there is nothing to add.
    assert plan_interface(request(mtu=1380), "/x/wg0.conf", file, live, None, True, lacking).routes_for == []
    assert plan_interface(request(), "/x/wg0.conf", file, live, None, True, None).changed is False


def test_plan_interface_predicts_a_generated_key_in_check_mode_and_makes_none():
    keyless = FILE.replace(private_key=None)
    plan = plan_interface(request(), "/x/wg0.conf", keyless, None, None, True)
    assert plan.changed and plan.report()["changes"] == ["private_key"] and plan.desired.private_key is None
    plan = plan_interface(request(), "/x/wg0.conf", keyless, None, None, False)
    assert plan.desired.private_key and plan.report()["private_key_source"] == "generated"


def test_plan_interface_keeps_live_only_peers_over_a_restart_and_says_so():
    live = LIVE.replace(peers=(Peer(B, allowed_ips=["10.10.0.7/32"]),))
    plan = plan_interface(request(mtu=1380), "/x/wg0.conf", FILE, live, None, True)
    assert plan.device.action == "restart"
    assert plan.report()["changes"] == ["mtu", "peers"] and plan.report()["preserved_peers"] == [B]


def test_plan_interface_adds_the_api_peers_hook_once():
    plan = plan_interface(request(api_peers_dir="/var/lib/wgrest/wireguard"), "/x/wg0.conf", FILE, LIVE, None, True)
    hook = restore_hook("/var/lib/wgrest/wireguard")
    assert plan.desired.post_up == (hook,) and plan.device.action == "restart"
    again = plan_interface(request(api_peers_dir="/var/lib/wgrest/wireguard"), "/x/wg0.conf", plan.desired, LIVE,
                           None, True)
    assert again.changed is False
    with_own = plan_interface(request(api_peers_dir="/var/lib/wgrest/wireguard", post_up=["echo hi"]),
                              "/x/wg0.conf", plan.desired, LIVE, None, True)
    assert with_own.desired.post_up == ("echo hi", hook)


def test_api_peers_dir_must_not_be_the_wg_quick_directory():
    with pytest.raises(WgValueError, match="wg-quick directory"):
        InterfaceRequest(name="wg0", config_dir="/etc/wireguard", api_peers_dir="/etc/wireguard/")


def test_file_peer_plan_is_changed_exactly_when_something_is_written_or_applied():
    existing = FILE.replace(peers=(Peer(A, allowed_ips=["10.10.0.2/32"]),))
    peers = plan_peers(list(existing.peers), [spec(A, allowed_ips=["10.10.0.2/32"])])
    quiet = FilePeerPlan("/x", existing, existing, peers, None)
    assert (quiet.changed, quiet.report()["applied"], quiet.report()["changes"]) == (False, "none", [])
    loose = FilePeerPlan("/x", existing, existing, peers, None, fix_mode=True)
    assert (loose.changed, loose.report()["applied"], loose.report()["changes"]) == (True, "file", ["mode"])
    revoked = plan_peers(list(existing.peers), [spec(B, state="absent")])
    live = LIVE.replace(peers=(Peer(A, allowed_ips=["10.10.0.2/32"]), Peer(B)))
    plan = FilePeerPlan("/x", existing, existing, revoked, live, upsert=[], remove=[B])
    assert plan.changed and plan.report()["applied"] == "live"
    assert plan.report()["peers"]["removed"] == [B] and plan.report()["drift"] == []
