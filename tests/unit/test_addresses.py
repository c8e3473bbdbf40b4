"""Address allocation and expiry through wg_peer's main() on a file whose interface is down (no root needed).

The file is read back with a tiny parser of the test's own (``peers_in``), not the collection's.
"""
from __future__ import annotations

import contextlib
import datetime
import io
import ipaddress
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.module_utils._expiry import has_passed, normalize_expiry
from ansible_collections.wgfleet.wireguard.plugins.modules import wg_interface, wg_peer
from tests.helpers.keys import PEER_A, PEER_B, PEER_C, new_key
from tests.helpers.keys import SERVER_KEY as KEY

NAME = "wgalloc0"


def call(module, args) -> dict:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    text = out.getvalue()
    return json.loads(text[text.index("{"):])


def peers_in(conf) -> dict:
    """public key -> {"allowed": [...], "expires": str|None}, read line by line."""
    found, current = {}, None
    for line in conf.read_text().split("\n"):
        if line == "[Peer]":
            current = {"allowed": [], "expires": None}
        elif current is not None and line.startswith("PublicKey = "):
            found[line[12:]] = current
        elif current is not None and line.startswith("AllowedIPs = "):
            current["allowed"] = line[13:].split(", ")
        elif current is not None and line.startswith("# Expires = "):
            current["expires"] = line[12:]
    return found


@pytest.fixture
def etc(tmp_path):
    etc = tmp_path / "etc"
    data = call(wg_interface, {"name": NAME, "address": ["10.10.0.1/24", "fd10::1/64"], "private_key": KEY,
                               "up": False, "config_dir": str(etc)})
    assert not data.get("failed"), data
    return etc


def peer(etc, **args) -> dict:
    return call(wg_peer, {"interface": NAME, "config_dir": str(etc), **args})


def test_peers_get_distinct_free_addresses_of_both_families_and_keep_them(etc):
    taken = peer(etc, public_key=PEER_A, allowed_ips=["10.10.0.2/32"])
    assert not taken.get("failed"), taken
    res = peer(etc, address_pool=["10.10.0.0/25", "fd10::/120"],
               peers=[{"public_key": PEER_B}, {"public_key": PEER_C, "name": "carol"}])
    assert res["changed"] and not res.get("failed"), res
    on_file = peers_in(etc / f"{NAME}.conf")
    # .0 is the network, .1 the interface's own, .2 held by PEER_A; fd10::0 the subnet-router, ::1 the interface.
    assert on_file[PEER_B]["allowed"] == ["10.10.0.3/32", "fd10::2/128"]
    assert on_file[PEER_C]["allowed"] == ["10.10.0.4/32", "fd10::3/128"]
    assert res["allocated"] == {PEER_B: ["10.10.0.3/32", "fd10::2/128"], PEER_C: ["10.10.0.4/32", "fd10::3/128"]}
    before = (etc / f"{NAME}.conf").read_bytes()
    again = peer(etc, address_pool=["10.10.0.0/25", "fd10::/120"], peers=[{"public_key": PEER_C}, {"public_key": PEER_B}])
    assert not again["changed"] and again["allocated"] == {}
    assert again["addresses"][PEER_B] == ["10.10.0.3/32", "fd10::2/128"]
    assert (etc / f"{NAME}.conf").read_bytes() == before


def test_a_peer_without_the_new_family_gets_only_that_one(etc):
    peer(etc, public_key=PEER_A, allowed_ips=["10.10.0.9/32"])
    res = peer(etc, address_pool=["10.10.0.0/25", "fd10::/120"], public_key=PEER_A)
    assert peers_in(etc / f"{NAME}.conf")[PEER_A]["allowed"] == ["10.10.0.9/32", "fd10::2/128"], res


def test_two_hundred_peers_in_one_run_get_two_hundred_distinct_addresses(etc):
    keys = [new_key() for _n in range(200)]
    res = peer(etc, address_pool=["10.10.0.0/24"], peers=[{"public_key": k} for k in keys])
    assert res["changed"] and res["peer_count"] == 200, res.get("msg")
    on_file = peers_in(etc / f"{NAME}.conf")
    addresses = [on_file[k]["allowed"][0] for k in keys]
    assert len(set(addresses)) == 200
    hosts = {ipaddress.ip_interface(a).ip for a in addresses}
    net = ipaddress.ip_network("10.10.0.0/24")
    assert all(h in net for h in hosts) and not hosts & {net[0], net[1], net[255]}


@pytest.mark.parametrize("pool, words", [
    (["10.20.0.0/25"], "address_pool: 10.20.0.0/25 is not inside the interface's subnet"),
    (["10.10.0.5/25"], "address_pool: '10.10.0.5/25' is not a network"),
    (["10.10.0.0/25\nPostUp = id"], "address_pool: '10.10.0.0/25\\nPostUp = id' holds a line break"),
    (["10.10.0.0/25\u2028"], "address_pool:"),
    (["10.10.0.0\x00/25"], "address_pool:"),
    (["1" * 100_000], "address_pool:"),
    ([], "address_pool: the list is empty"),
    (["10.10.0.0/25", "10.10.0.128/25"], "address_pool: two IPv4 networks"),
])
def test_a_bad_pool_is_refused_naming_the_option_and_nothing_is_written(etc, pool, words):
    before = (etc / f"{NAME}.conf").read_bytes()
    res = peer(etc, address_pool=pool, public_key=PEER_A)
    assert res.get("failed") and words in res["msg"], res
    assert (etc / f"{NAME}.conf").read_bytes() == before


def test_a_full_pool_is_an_error_naming_the_option_and_nothing_is_written(etc):
    peer(etc, public_key=PEER_A, allowed_ips=["10.10.0.2/32"])
    before = (etc / f"{NAME}.conf").read_bytes()
    # 10.10.0.0/30: .0 network, .1 the interface, .2 PEER_A, .3 free for one peer only.
    res = peer(etc, address_pool=["10.10.0.0/30"], peers=[{"public_key": PEER_B}, {"public_key": PEER_C}])
    assert res.get("failed") and "address_pool: no free address left in 10.10.0.0/30" in res["msg"], res
    assert (etc / f"{NAME}.conf").read_bytes() == before


def test_an_expiry_is_kept_in_utc_and_revokes_the_peer_once_passed(etc):
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=30)).replace(microsecond=0)
    res = peer(etc, peers=[{"public_key": PEER_A, "allowed_ips": ["10.10.0.2/32"],
                            "expires": later.astimezone(datetime.timezone(datetime.timedelta(hours=2))).isoformat()},
                           {"public_key": PEER_B, "allowed_ips": ["10.10.0.3/32"]}])
    assert not res.get("failed"), res
    assert peers_in(etc / f"{NAME}.conf")[PEER_A]["expires"] == later.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not peer(etc, public_key=PEER_A, expires=later.strftime("%Y-%m-%dT%H:%M:%SZ"))["changed"]
    # Its time comes: the file says so (as a clock moving on would), and a run that does not even name it.
    conf = etc / f"{NAME}.conf"
    conf.write_text(conf.read_text().replace(later.strftime("%Y-%m-%dT%H:%M:%SZ"), "2020-01-01T00:00:00Z"))
    predicted = call(wg_peer, {"interface": NAME, "config_dir": str(etc), "public_key": PEER_B, "_ansible_check_mode": True})
    assert predicted["changed"] and predicted["expired"] == [PEER_A] and PEER_A in peers_in(conf)
    res = peer(etc, public_key=PEER_B)
    assert res["changed"] and res["expired"] == [PEER_A] and res["peers"]["removed"] == [PEER_A]
    assert set(peers_in(conf)) == {PEER_B}
    assert peer(etc, public_key=PEER_B)["expired"] == []


@pytest.mark.parametrize("value, words", [
    ("2020-01-01T00:00:00Z", "expires: 2020-01-01T00:00:00Z is in the past"),
    ("yesterday", "expires: 'yesterday' is not a time"),
    ("2027-01-01T00:00:00", "expires: '2027-01-01T00:00:00' has no time zone"),
    ("2027-01-01T00:00:00Z\n", "expires:"),
    ("2027-01-01\u2028", "expires:"),
    ("2027-01-01\x00", "expires:"),
    ("9" * 100_000, "expires:"),
    ("99999999999999", "expires:"),
])
def test_a_bad_expiry_is_refused_naming_the_option_and_nothing_is_written(etc, value, words):
    before = (etc / f"{NAME}.conf").read_bytes()
    res = peer(etc, peers=[{"public_key": PEER_A, "allowed_ips": ["10.10.0.2/32"], "expires": value}])
    assert res.get("failed") and words in res["msg"] and res["msg"].startswith("peers[0].expires"), res
    assert (etc / f"{NAME}.conf").read_bytes() == before


def test_expiry_forms():
    assert normalize_expiry("e", "2027-01-31") == "2027-01-31T00:00:00Z"
    assert normalize_expiry("e", "2027-01-31T19:00:00+01:00") == "2027-01-31T18:00:00Z"
    assert normalize_expiry("e", 1800000000) == normalize_expiry("e", "1800000000") == "2027-01-15T08:00:00Z"
    assert has_passed("2020-01-01T00:00:00Z") and not has_passed("2999-01-01T00:00:00Z")


def test_expiry_is_refused_by_the_wgrest_backend(etc):
    res = peer(etc, public_key=PEER_A, backend="wgrest", api_token="unit-test-token-7", api_url="http://127.0.0.1:9",
               expires="2030-01-01T00:00:00Z")
    assert res.get("failed") and res["msg"].startswith("expires: backend wgrest has no field"), res
