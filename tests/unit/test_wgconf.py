"""The wg-quick parser and renderer: round trips, normalization, errors that name the line."""
from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgCommandError, WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._values import (
    normalize_allowed_ips,
    normalize_endpoint,
)
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import (
    Interface,
    Peer,
    parse,
    render,
    render_peer,
)
from tests.helpers.keys import PEER_A, PEER_B, PSK, SERVER_KEY

# The shape of files seen in the wild: wg-quick(8)'s example, a road-warrior server with
# iptables hooks and IPv6, and a hand-written file with odd case, spacing and comments.
REAL_WORLD = {
    "wg-quick man page": f"""
[Interface]
Address = 10.200.100.8/24
DNS = 10.200.100.1
PrivateKey = {SERVER_KEY}

[Peer]
PublicKey = {PEER_A}
PresharedKey = {PSK}
AllowedIPs = 0.0.0.0/0
Endpoint = demo.wireguard.com:51820
""",
    "server with hooks and IPv6": f"""
[Interface]
Address = 10.10.0.1/24, fd10::1/64
ListenPort = 51820
PrivateKey = {SERVER_KEY}
MTU = 1420
SaveConfig = false
PostUp = iptables -A FORWARD -i %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
PostUp = ip6tables -A FORWARD -i %i -j ACCEPT
PostDown = iptables -D FORWARD -i %i -j ACCEPT; iptables -t nat -D POSTROUTING -o eth0 -j MASQUERADE

[Peer]
# Name = alice phone
PublicKey = {PEER_A}
AllowedIPs = 10.10.0.2/32, fd10::2/128

[Peer]
PublicKey = {PEER_B}
AllowedIPs = 10.10.0.3/32
AllowedIPs = 192.168.77.0/24
Endpoint = [2001:db8:0:0::3]:51820
PersistentKeepalive = 25
""",
    "hand written": f"""
# managed by hand
[interface]
privatekey={SERVER_KEY}   # the key
listenport=51821
fwmark = 0xca6c
Table = 1234
PreUp = echo pre
PreDown = echo down
[peer]
publickey = {PEER_A}
allowedips = 10.11.0.2/32,10.11.0.9/32 , 10.11.0.4/32
persistentkeepalive = off
""",
}


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_real_world_files_survive_a_round_trip(name):
    parsed = parse(REAL_WORLD[name])
    assert parse(render(parsed)) == parsed
    assert render(parse(render(parsed))) == render(parsed)


@pytest.mark.parametrize("name", sorted(REAL_WORLD))
def test_stripped_rendering_means_what_wg_quick_strip_means(name, tmp_path):
    """``render(wg_only=True)`` must be what ``wg-quick strip`` would hand to ``wg setconf``."""
    conf = tmp_path / "wgx.conf"
    conf.write_text(REAL_WORLD[name])
    proc = subprocess.run(["wg-quick", "strip", str(conf)], capture_output=True, text=True, check=False)
    if proc.returncode:
        pytest.skip("wg-quick not installed")
    # strip keeps comments, so the peers' labels come through on its side only: compare without them.

    def unlabelled(iface):
        return iface.replace(peers=tuple(p.replace(name=None) for p in iface.peers))

    assert unlabelled(parse(proc.stdout)) == parse(render(parse(REAL_WORLD[name]), wg_only=True))


def test_values_are_read_as_wg_quick_reads_them():
    parsed = parse(REAL_WORLD["hand written"])
    assert parsed.listen_port == 51821
    assert parsed.fwmark == 0xCA6C
    assert parsed.table == "1234"
    assert parsed.peers[0].allowed_ips == ("10.11.0.2/32", "10.11.0.4/32", "10.11.0.9/32")
    assert parsed.peers[0].persistent_keepalive == 0
    server = parse(REAL_WORLD["server with hooks and IPv6"])
    assert server.address == ("10.10.0.1/24", "fd10::1/64")
    assert len(server.post_up) == 2
    assert server.peers[0].name == "alice phone"
    assert server.peers[1].endpoint == "[2001:db8::3]:51820"
    assert server.peers[1].allowed_ips == ("10.10.0.3/32", "192.168.77.0/24")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Interface]\nListenPort = 1\nFoo = bar\n", "line 3: unknown key 'Foo' in [Interface]"),
        ("[Interface]\n[Peer]\nAddress = 10.0.0.1/24\n", "line 3: unknown key 'Address' in [Peer]"),
        ("ListenPort = 1\n", "line 1: 'ListenPort' outside of a section"),
        ("[Interface]\n[Bogus]\n", "line 2: unknown section"),
        ("[Interface]\nListenPort 1\n", "line 2: the line is not 'Key = Value'"),
        ("[Interface]\nListenPort = 70000\n", "listen_port: '70000' is not a port number"),
        (f"[Interface]\n[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = 10.0.0.300/32\n", "'10.0.0.300/32' is not an IP network"),
        ("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.1/32\n", "[Peer] at line 2: the section has no PublicKey"),
        ("", "no [Interface] section"),
        # Numbers wg refuses though Python's int() reads them: a file reported in order would not load.
        (f"[Interface]\n[Peer]\nPublicKey = {PEER_A}\nPersistentKeepalive = 2_5\n", "'2_5' is not a whole number"),
        ("[Interface]\nListenPort = \u0665\u0661\u0668\u0662\u0660\n", "is not a port number"),
        ("[Interface]\nMTU = +1420\n", "'+1420'"),
        (f"[Interface]\n[Peer]\nPublicKey = {PEER_A}\nPersistentKeepalive = 0x19\n", "'0x19' is not a whole number"),
    ],
)
def test_bad_files_fail_naming_the_line_or_value(text, message):
    with pytest.raises(WgValueError) as err:
        parse(text, source="wg9.conf")
    assert message in str(err.value)
    assert str(err.value).startswith("wg9.conf")


def test_a_bad_private_key_in_a_file_is_not_echoed():
    secretish = SERVER_KEY[:-2] + "!="
    with pytest.raises(WgValueError) as err:
        parse(f"[Interface]\nPrivateKey = {secretish}\n")
    assert secretish not in str(err.value)
    assert "private_key" in str(err.value)


def test_render_redacts_every_secret():
    text = render(parse(REAL_WORLD["wg-quick man page"]), redact=True)
    assert SERVER_KEY not in text
    assert PSK not in text
    assert PEER_A in text


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("1.2.3.4:51820", "1.2.3.4:51820"),
        ("[2001:DB8::0:1]:51820", "[2001:db8::1]:51820"),
        ("VPN.Example.com:443", "vpn.example.com:443"),
    ],
)
def test_endpoints_normalize(given, normal):
    assert normalize_endpoint("endpoint", given) == normal


@pytest.mark.parametrize("bad", ["1.2.3.4", "2001:db8::1:51820", "host:0", "host:99999", "-bad-:1", "[::1]"])
def test_bad_endpoints_name_the_option_and_value(bad):
    with pytest.raises(WgValueError) as err:
        normalize_endpoint("endpoint", bad)
    assert "endpoint" in str(err.value)
    assert repr(bad) in str(err.value)


def test_equal_meaning_compares_equal():
    a = Peer(PEER_A, allowed_ips=["10.0.0.2/32", "10.0.0.0/24", "10.0.0.2/32"], persistent_keepalive="off")
    b = Peer(PEER_A, allowed_ips="10.0.0.7/24, 10.0.0.2/32", persistent_keepalive=0)
    assert a == b
    assert Interface(listen_port=0, table="auto", mtu=0) == Interface()


def test_keys_validate_derive_and_generate():
    private = _keys.generate_private_key()
    if shutil.which("wg") is None:
        pytest.skip("wg (wireguard-tools) is missing: the independent check of public-key derivation needs it")
    proc = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True)
    assert _keys.public_key(private) == proc.stdout.strip()
    for bad in ["", "abc", SERVER_KEY[:-1], SERVER_KEY.replace("=", "A"), "A" * 42 + "B="]:
        with pytest.raises(WgValueError):
            _keys.check_key("public_key", bad)
    assert _keys.from_url_safe(_keys.url_safe("a+b/c=")) == "a+b/c="


_cidr4 = st.builds(lambda a, p: f"10.{a % 256}.{a // 256 % 256}.0/{p}", st.integers(0, 65535), st.integers(8, 32))
_cidr6 = st.builds(lambda a, p: f"fd{a:02x}::/{p}", st.integers(0, 255), st.integers(16, 128))
_keys_st = st.binary(min_size=32, max_size=32).map(lambda b: __import__("base64").b64encode(b).decode())
_peer = st.builds(
    Peer,
    public_key=_keys_st,
    allowed_ips=st.lists(st.one_of(_cidr4, _cidr6), max_size=4),
    endpoint=st.one_of(st.none(), st.builds(lambda p: f"[fd00::{p:x}]:{p}", st.integers(1, 65535))),
    preshared_key=st.one_of(st.none(), _keys_st),
    persistent_keepalive=st.integers(0, 65535),
    name=st.one_of(st.none(), st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=20)),
)


@settings(max_examples=150, deadline=None)
@given(
    peers=st.lists(_peer, max_size=5, unique_by=lambda p: p.public_key),
    port=st.one_of(st.none(), st.integers(1, 65535)),
    mtu=st.one_of(st.none(), st.integers(1280, 9000)),
    hooks=st.lists(st.text("abcdef ;%i-$", min_size=1, max_size=20).filter(str.strip), max_size=3),
)
def test_any_model_survives_render_and_parse(peers, port, mtu, hooks):
    iface = Interface(private_key=SERVER_KEY, listen_port=port, mtu=mtu, address=["10.10.0.1/24"], post_up=hooks,
                      peers=peers)
    assert parse(render(iface)) == iface


@settings(max_examples=300, deadline=None)
@given(address=st.integers(0, 2**32 - 1), prefix=st.integers(0, 32), port=st.integers(1, 65535))
def test_ipv4_fast_paths_mean_what_ipaddress_means(address, prefix, port):
    text = str(ipaddress.IPv4Address(address))
    cidr = f"{text}/{prefix}"
    assert normalize_allowed_ips("allowed_ips", [cidr]) == (str(ipaddress.ip_network(cidr, strict=False)),)
    assert normalize_endpoint("endpoint", f"{text}:{port}") == f"{text}:{port}"


def test_command_errors_never_carry_a_key():
    stderr = f"Line unrecognized: `PrivateKey={SERVER_KEY}'\nConfiguration parsing error"
    message = str(WgCommandError(["wg", "setconf", "wg0", "/dev/stdin"], 1, stderr))
    assert SERVER_KEY not in message, "a key leaked into an error message"
    assert "Line unrecognized" in message and "**redacted**" in message


@pytest.mark.parametrize(
    ("lines", "fwmark", "keepalive"),
    [
        ("FwMark = 0", None, 0),  # wg: 0 is no mark
        ("FwMark = OFF", None, 0),  # wg compares off in any case
        ("FwMark = 0x10", 16, 0),  # wg reads a mark in hex too
        ("FwMark = 51820", 51820, 0),
    ],
)
def test_numbers_are_read_as_wg_reads_them(lines, fwmark, keepalive):
    iface = parse(f"[Interface]\n{lines}\n[Peer]\nPublicKey = {PEER_A}\nPersistentKeepalive = Off\n", source="wg9.conf")
    assert iface.fwmark == fwmark
    assert iface.peers[0].persistent_keepalive == keepalive


# --- a setting read from its text (parse_text), in either section ----------------------------------------------

@pytest.mark.parametrize(("line", "on"), [("SaveConfig = true", True), ("saveconfig = TRUE", True),
                                          ("SaveConfig = false", False), ("SaveConfig=False", False)])
def test_save_config_is_read_from_its_text_as_the_peers_expiry_is(line, on):
    text = f"[Interface]\n{line}\n[Peer]\nPublicKey = {PEER_A}\n# Expires = 2035-01-31T18:00:00Z\n"
    iface = parse(text, source="wg9.conf")
    assert iface.save_config is on
    assert iface.peers[0].expires == "2035-01-31T18:00:00Z"
    # Verified by other means: the renderer writes the line only when on, the expiry as it was read.
    assert ("SaveConfig = true" in render(iface)) is on
    assert "\n# Expires = 2035-01-31T18:00:00Z\n" in render(iface)


def test_a_save_config_that_is_not_true_or_false_is_refused_naming_the_file():
    with pytest.raises(WgValueError) as err:
        parse("[Interface]\nSaveConfig = maybe\n", source="wg9.conf")
    assert str(err.value) == "wg9.conf: save_config: 'maybe' is not true or false"


# --- ports: ASCII decimal only, as wg (getaddrinfo) reads them ---------------------------------------------------

@pytest.mark.parametrize("text", ["0x10", "\uff15\uff11\uff18\uff12\uff10", "2_5", "1e3", "51820.0", "-1", "65536",
                                  "99999", "+80"])
def test_a_listen_port_wg_would_not_read_as_that_number_is_refused(text):
    """Fullwidth digits, hex, underscores: Python's int() reads some, wg refuses them. 65536 wg wraps to 0 (a
    random port); +80 it reads, but the collection writes and reads only plain digits."""
    with pytest.raises(WgValueError) as err:
        parse(f"[Interface]\nListenPort = {text}\n", source="wg9.conf")
    assert str(err.value) == f"wg9.conf: listen_port: {text!r} is not a port number (0-65535)"


@pytest.mark.parametrize(("text", "port"), [("51820", 51820), ("000051820", 51820), ("00080", 80), ("65535", 65535)])
def test_a_listen_port_is_read_as_wg_reads_it(text, port):
    # Verified by other means: wg reads the port with getaddrinfo(), which Python's socket module calls as is.
    addr = socket.getaddrinfo(None, text, socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, socket.AI_PASSIVE)
    assert addr[0][4][1] == port
    assert parse(f"[Interface]\nListenPort = {text}\n").listen_port == port


@pytest.mark.parametrize("text", ["0x10", "\uff15\uff11\uff18\uff12\uff10"])
def test_getaddrinfo_refuses_what_the_listen_port_refuses(text):
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(None, text, socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP, socket.AI_PASSIVE)


@pytest.mark.parametrize("value", [True, False, 80.0, 51820.5, "", " ", "80 80", [80]])
def test_a_listen_port_that_is_not_a_whole_number_is_refused(value):
    with pytest.raises(WgValueError) as err:
        Interface(listen_port=value)
    assert str(err.value).startswith("listen_port: ") and str(err.value).endswith(" is not a port number (0-65535)")


@pytest.mark.parametrize(("value", "port"), [(51820, 51820), ("51820", 51820), (" 443\t", 443), (0, None), ("0", None)])
def test_a_listen_port_given_to_the_model_is_normalized(value, port):
    assert Interface(listen_port=value).listen_port == port


# --- off: keepalive and fwmark, as wg reads them (it compares off in any case) -------------------------------------

@pytest.mark.parametrize("word", ["off", "OFF", "Off", "oFf", " off\t"])
def test_off_in_any_case_means_no_keepalive_and_no_mark(word):
    text = f"[Interface]\nFwMark = {word}\n[Peer]\nPublicKey = {PEER_A}\nPersistentKeepalive = {word}\n"
    iface = parse(text)
    assert iface.fwmark is None
    assert iface.peers[0].persistent_keepalive == 0
    assert Interface(fwmark=word) == Interface()
    assert Peer(PEER_A, persistent_keepalive=word) == Peer(PEER_A)


@pytest.mark.parametrize("word", ["of", "offf", "no", "none", "\uff4f\uff46\uff46"])
def test_only_off_means_off(word):
    with pytest.raises(WgValueError, match=r"^fwmark: "):
        Interface(fwmark=word)
    with pytest.raises(WgValueError, match=r"^persistent_keepalive: "):
        Peer(PEER_A, persistent_keepalive=word)


@pytest.mark.parametrize(("field", "value"), [("listen_port", "off"), ("mtu", "off"), ("listen_port", "OFF")])
def test_off_is_no_number_for_the_settings_wg_reads_no_off_for(field, value):
    with pytest.raises(WgValueError) as err:
        Interface(**{field: value})
    assert str(err.value).startswith(f"{field}: {value!r} is not a")


def test_table_off_stays_off_it_is_a_value_of_its_own():
    assert Interface(table="off").table == "off"
    assert parse("[Interface]\nTable = off\n").table == "off"


def test_an_explicit_peer_section_turns_keepalive_off_and_reads_back():
    lines = render_peer(Peer(PEER_A), explicit=True)
    assert "PersistentKeepalive = off" in lines
    assert "PersistentKeepalive = off" not in render_peer(Peer(PEER_A))
    assert parse("[Interface]\n" + "\n".join(lines) + "\n").peers[0] == Peer(PEER_A)
    # An interface is written in full (wg setconf, wg-quick): an unset mark has no line.
    assert "FwMark" not in render(Interface(peers=[Peer(PEER_A)]))
