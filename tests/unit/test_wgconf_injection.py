"""Hostile values against the model, the parser and the renderer: nothing reaches a file that
would read back as something else, and no message quotes a key."""
from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._values import is_ifname
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import (
    INTERFACE_SETTINGS,
    PEER_SETTINGS,
    Interface,
    Peer,
    check_unique_allowed_ips,
    parse,
    render,
)
from tests.helpers.keys import PEER_A, PEER_B, PSK, SERVER_KEY

# Every character str.splitlines() ends a line at, NUL, and a few other control characters.
BREAKS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x1b", "\x7f"]
INJECTED = "AllowedIPs = 0.0.0.0/0"

# (model, field, a valid value the break is put into)
TEXT_FIELDS = [
    ("interface", "dns", ["10.79.0.53"]),
    ("interface", "address", ["10.10.0.1/24"]),
    ("interface", "table", "1234"),
    ("interface", "pre_up", ["echo up"]),
    ("interface", "post_up", ["echo up"]),
    ("interface", "pre_down", ["echo down"]),
    ("interface", "post_down", ["echo down"]),
    ("peer", "name", "alice phone"),
    ("peer", "endpoint", "vpn.example.com:51820"),
    ("peer", "allowed_ips", ["10.10.0.2/32"]),
]


def build(model, field, value):
    if model == "interface":
        return Interface(private_key=SERVER_KEY, **{field: value})
    return Peer(PEER_A, **{field: value})


def poisoned(value, brk):
    text = f"{brk}{INJECTED}"
    if isinstance(value, list):
        return [value[0] + text]
    return value + text


@pytest.mark.parametrize("brk", BREAKS, ids=[f"U+{ord(b):04X}" for b in BREAKS])
@pytest.mark.parametrize(("model", "field", "value"), TEXT_FIELDS, ids=[f[1] for f in TEXT_FIELDS])
def test_no_line_break_gets_into_any_value(model, field, value, brk):
    with pytest.raises(WgValueError) as err:
        build(model, field, poisoned(value, brk))
    assert str(err.value).startswith(f"{field}: ")


@pytest.mark.parametrize("field", ["pre_up", "post_up", "pre_down", "post_down"])
def test_a_hook_with_a_hash_is_refused_because_wg_quick_would_cut_it(field):
    with pytest.raises(WgValueError) as err:
        Interface(**{field: ["iptables -A INPUT -j ACCEPT # open"]})
    assert str(err.value).startswith(f"{field}: ") and "'#'" in str(err.value)


def test_a_label_may_hold_a_hash_it_is_a_comment_line_of_its_own():
    iface = Interface(private_key=SERVER_KEY, peers=[Peer(PEER_A, name="desk #3 = blue")])
    assert parse(render(iface)) == iface


def test_the_renderer_refuses_a_line_break_even_when_the_model_was_bypassed():
    peer = Peer(PEER_A, name="alice")
    object.__setattr__(peer, "name", f"alice\u2028{INJECTED}")
    with pytest.raises(WgValueError) as err:
        render(Interface(peers=[peer]))
    assert str(err.value).startswith("name: ")
    iface = Interface()
    object.__setattr__(iface, "post_up", ("echo a\nPreUp = touch /tmp/x",))
    with pytest.raises(WgValueError, match=r"^post_up: "):
        render(iface)


@pytest.mark.parametrize(
    ("dns", "normal"),
    [
        (["10.79.0.53", "FD00::53", "corp.example", "example.com."],
         ("10.79.0.53", "fd00::53", "corp.example", "example.com.")),
        ("1.1.1.1, 9.9.9.9", ("1.1.1.1", "9.9.9.9")),
    ],
)
def test_dns_holds_servers_and_search_domains(dns, normal):
    assert Interface(dns=dns).dns == normal


@pytest.mark.parametrize("bad", ["1.2.3", "10.0.0.1 10.0.0.2", "fe80::1%eth0", "$(touch x)", "a..b", "-x.example",
                                 "x" * 64 + ".example", "*"])
def test_dns_refuses_what_wg_quick_would_misread(bad):
    with pytest.raises(WgValueError, match=r"^dns: "):
        Interface(dns=[bad])


ZONES = [("address", "fe80::1%eth0/64"), ("allowed_ips", "fe80::1%eth0/128"), ("address", "fe80::1%eth0%0a/64"),
         ("allowed_ips", "10.0.0.1/32%x")]


@pytest.mark.parametrize(("field", "bad"), ZONES)
def test_zone_ids_are_refused_in_addresses_and_allowed_ips(field, bad):
    with pytest.raises(WgValueError, match=f"^{field}: .*%zone"):
        if field == "address":
            Interface(address=[bad])
        else:
            Peer(PEER_A, allowed_ips=[bad])


def test_an_endpoint_keeps_an_interface_zone_id_and_refuses_any_other():
    assert Peer(PEER_A, endpoint="[FE80::1%eth0]:51820").endpoint == "[fe80::1%eth0]:51820"
    for bad in ["[fe80::1%eth0 x]:1", "[fe80::1%$(id)]:1", "10.0.0.1%eth0:1", "host%eth0:1"]:
        with pytest.raises(WgValueError, match=r"^endpoint: "):
            Peer(PEER_A, endpoint=bad)


@pytest.mark.parametrize("bad", ["wg0\n", "wg0\r", "", "x" * 16, "wg 0", "wg0/", ".", "..", None, 5])
def test_interface_names_match_in_full(bad):
    assert not is_ifname(bad)


def test_a_file_is_split_into_lines_as_bash_reads_it():
    """Only \\n ends a line: a label holding \\v, \\x1c or \\u2028 stays one (refused) line, never a new key."""
    for brk in ["\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]:
        text = f"[Interface]\nPrivateKey = {SERVER_KEY}\n\n[Peer]\n# Name = alice{brk}{INJECTED}\nPublicKey = {PEER_A}\n"
        with pytest.raises(WgValueError) as err:
            parse(text, source="wg0.conf")
        assert "[Peer] at line 4: name: " in str(err.value)


def test_a_file_with_crlf_line_ends_reads_as_wg_quick_reads_it(tmp_path):
    text = f"[Interface]\r\nPrivateKey = {SERVER_KEY}\r\nAddress = 10.10.0.1/24\r\n[Peer]\r\nPublicKey = {PEER_A}\r\n" \
           "Allowed IPs = 10.10.0.2/32 , 10.10.0.3/32\r\n"
    parsed = parse(text)
    assert parsed.address == ("10.10.0.1/24",)
    assert parsed.peers[0].allowed_ips == ("10.10.0.2/32", "10.10.0.3/32")
    conf = tmp_path / "wgx.conf"
    conf.write_text(text)
    proc = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, text=True, check=False)
    if proc.returncode:
        pytest.skip("wg-quick not installed")
    assert parse(proc.stdout).peers == parsed.peers


TYPO_LINES = [
    "PrivateKey: {key}",
    "PrivateKey {key}",
    "Private-Key = {key}",
    "{key}",
    "[{key}]",
    "ListenPort = {key}",
    "MTU = {key}",
    "Table = {key}",
    "DNS = {key}",
    "Address = {key}",
    "FwMark = {key}",
    "SaveConfig = {key}",
    "PostUp = {key}#",
]


@pytest.mark.parametrize("line", TYPO_LINES)
@pytest.mark.parametrize("where", ["interface", "peer"])
def test_no_parse_error_quotes_a_key(line, where):
    key = SERVER_KEY if where == "interface" else PSK
    typo = SERVER_KEY[:-2] + "!="
    for secret in (key, typo):
        body = line.format(key=secret)
        text = f"[Interface]\n{body}\n" if where == "interface" else \
            f"[Interface]\n[Peer]\nPublicKey = {PEER_A}\n{body}\n"
        try:
            parse(text, source="wg0.conf")
        except WgValueError as exc:
            assert secret not in str(exc) and secret[:30] not in str(exc), str(exc)
            assert "wg0.conf" in str(exc)


def test_two_peers_with_one_network_are_named_with_it():
    peers = [Peer(PEER_A, allowed_ips=["10.10.0.2/32"]), Peer(PEER_B, allowed_ips=["10.10.0.5/32", "10.10.0.2"])]
    with pytest.raises(WgValueError) as err:
        check_unique_allowed_ips(peers)
    assert PEER_A in str(err.value) and PEER_B in str(err.value) and "10.10.0.2/32" in str(err.value)
    check_unique_allowed_ips([Peer(PEER_A, allowed_ips=["10.10.0.0/24"]), Peer(PEER_B, allowed_ips=["10.10.0.2/32"])])


WRONG_TYPES = [("listen_port", "51820\n"), ("mtu", [1]), ("fwmark", 1.5), ("save_config", "yes"), ("address", {"a": 1}),
               ("dns", 5), ("post_up", 7), ("table", ["x"]), ("address", [None])]


@pytest.mark.parametrize(("field", "value"), WRONG_TYPES)
def test_wrong_types_are_errors_naming_the_option(field, value):
    try:
        iface = Interface(**{field: value})
    except WgValueError as exc:
        assert str(exc).startswith(f"{field}: ")
    else:
        assert parse(render(iface)) == iface


_any_text = st.text(st.characters(), max_size=30)


@settings(max_examples=400, deadline=None)
@given(hook=_any_text, label=_any_text, dns=_any_text, table=_any_text, endpoint=_any_text)
def test_any_text_is_refused_or_reads_back_the_same(hook, label, dns, table, endpoint):
    for kwargs in ({"post_up": [hook]}, {"dns": [dns]}, {"table": table}):
        try:
            iface = Interface(private_key=SERVER_KEY, **kwargs)
        except WgValueError:
            continue
        assert parse(render(iface)) == iface
    for kwargs in ({"name": label}, {"endpoint": endpoint}):
        try:
            peer = Peer(PEER_A, **kwargs)
        except WgValueError:
            continue
        iface = Interface(private_key=SERVER_KEY, peers=[peer])
        text = render(iface)
        assert parse(text) == iface
        assert len(text.split("\n")) == len(text.splitlines()) + 1, "a value holds a line break"


@pytest.mark.parametrize("value", [2**32, 2**70, "4294967296", "1180591620717411303424"])
def test_a_table_number_out_of_range_is_refused_given_as_text_too(value):
    """The option is a str: Ansible gives an int as its text, which passed as a table name (ip refuses it when
    wg-quick brings the interface up)."""
    with pytest.raises(WgValueError, match=r"^table: .* from 0 to 4294967295"):
        Interface(table=value)
    assert Interface(table="4294967295").table == "4294967295"


# --- the parser, every setting of the registry -------------------------------------------------------------------

FILE_VALUES = {"address": "10.10.0.1/24", "listen_port": "51820", "fwmark": "0x10", "private_key": SERVER_KEY,
               "dns": "10.0.0.53", "mtu": "1420", "table": "1234", "pre_up": "echo a", "post_up": "echo a",
               "pre_down": "echo a", "post_down": "echo a", "save_config": "true", "public_key": PEER_B,
               "preshared_key": PSK, "allowed_ips": "10.10.0.2/32", "endpoint": "vpn.example.com:51820",
               "persistent_keepalive": "25", "name": "alice", "expires": "2035-01-01T00:00:00Z"}
FILE_CASES = [("interface", n, s) for n, s in INTERFACE_SETTINGS.items() if s.key or s.comment] + \
             [("peer", n, s) for n, s in PEER_SETTINGS.items() if s.key or s.comment]
# What bash does not end a line at (\n does) and the parser does not take for a space (\r \v \f and tab are).
NOT_SPACES = ["\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x01", "\x1b", "\x7f", "\x9f"]


def test_every_setting_of_the_registry_has_a_file_value():
    assert sorted(FILE_VALUES) == sorted(n for _w, n, _s in FILE_CASES)


def file_with(where, name, meta, value) -> str:
    line = f"{meta.comment}{value}" if meta.comment else f"{meta.key} = {value}"
    if where == "interface":
        key = "" if name == "private_key" else f"PrivateKey = {SERVER_KEY}\n"
        return f"[Interface]\n{line}\n{key}\n[Peer]\nPublicKey = {PEER_A}\n"
    key = "" if name == "public_key" else f"PublicKey = {PEER_A}\n"
    return f"[Interface]\nPrivateKey = {SERVER_KEY}\n\n[Peer]\n{key}{line}\n"


@pytest.mark.parametrize(("where", "name", "meta"), FILE_CASES, ids=[c[1] for c in FILE_CASES])
def test_a_control_character_inside_any_setting_of_a_file_is_refused_naming_the_file(where, name, meta):
    """Numbers included: int() reads '\\u202851820' as 51820, but wg reads the bytes and refuses it; between the
    digits no reader takes it. Never a key in the message."""
    good = FILE_VALUES[name]
    for char in NOT_SPACES:
        for value in (f"{good[:1]}{char}{good[1:]}", f"{good}{char}{INJECTED}"):
            with pytest.raises(WgValueError) as err:
                parse(file_with(where, name, meta, value), source="wg0.conf")
            message = str(err.value)
            assert message.startswith("wg0.conf"), message
            assert SERVER_KEY[:30] not in message and PSK[:30] not in message, message
            assert not any(c in message for c in NOT_SPACES), message


@pytest.mark.parametrize(("where", "name", "meta"), FILE_CASES, ids=[c[1] for c in FILE_CASES])
def test_any_setting_of_a_file_reads_back_the_same_after_a_render(where, name, meta):
    iface = parse(file_with(where, name, meta, FILE_VALUES[name]))
    assert parse(render(iface)) == iface
    value = getattr(iface if where == "interface" else iface.peers[0], name)
    assert value not in (None, (), 0, False), f"{name} was not read"
