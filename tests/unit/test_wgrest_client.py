"""The wgrest client: wire format and error handling, against the wgrest double driving a real device."""
from __future__ import annotations

import json
import re
import time

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgconf, _wgrest, _wgrest_dump
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError, WgValueError
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgrest_backend import WgrestBackend
from tests.helpers.keys import new_key
from tests.helpers.scripted_http import JSON, ScriptedHTTP

TOKEN = "unit-token-7f3a"


# --- pure logic -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0s", 0), ("25s", 25), ("1m5s", 65), ("1h0m0s", 3600), ("1.5m", 90), (None, 0), ("", 0)],
)
def test_go_durations_parse(text, seconds):
    assert _wgrest.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["25", "5x", "s"])
def test_bare_numbers_are_not_go_durations(text):
    with pytest.raises(WgError, match="not a Go duration"):
        _wgrest.parse_duration(text)


def test_keepalive_is_sent_as_a_go_duration():
    peer = _wgconf.Peer(public_key=new_key(), persistent_keepalive=25)
    assert _wgrest.peer_body(peer)["persistent_keepalive_interval"] == "25s"
    assert _wgrest.peer_body(peer.replace(persistent_keepalive=0))["persistent_keepalive_interval"] == "0s"


def test_api_peer_reads_into_the_model():
    key = new_key()
    peer = _wgrest.peer_from_api({"public_key": key, "allowed_ips": None, "endpoint": "",
                                  "preshared_key": _wgrest.ZERO_KEY, "persistent_keepalive_interval": "1m5s"})
    assert peer == _wgconf.Peer(public_key=key, persistent_keepalive=65)


def test_next_link_follows_rel_next_only():
    header = ('</v1/devices/wg0/peers/?page=0&per_page=2>; rel="first", </v1/devices/wg0/peers/?page=4&per_page=2>;'
              ' rel="last", </v1/devices/wg0/peers/?page=2&per_page=2>; rel="next"')
    assert _wgrest._next_link(header) == "/v1/devices/wg0/peers/?page=2&per_page=2"
    assert _wgrest._next_link('</x?page=0>; rel="first"') is None


def test_api_url_is_checked():
    with pytest.raises(WgValueError, match="api_url"):
        _wgrest.WgrestClient("ftp://example")
    with pytest.raises(WgValueError, match="api_token"):
        _wgrest.WgrestClient("http://user:pw@127.0.0.1:1")


def test_restore_hook_survives_the_wg_quick_parser(tmp_path):
    hook = _wgrest_dump.restore_hook("/var/lib/wgrest/wireguard")
    iface = _wgconf.Interface(private_key=_keys.generate_private_key(), address=["10.9.0.1/24"], post_up=[hook])
    assert _wgconf.parse(_wgconf.render(iface)).post_up == (hook,)


def test_wgrest_is_never_pointed_at_the_wg_quick_dir(tmp_path):
    (tmp_path / "wg").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "wg")
    with pytest.raises(WgValueError, match="would drop Address"):
        _wgrest_dump.check_dump_dir(str(tmp_path / "link"), str(tmp_path / "wg"))
    assert _wgrest_dump.check_dump_dir(str(tmp_path / "dump"), str(tmp_path / "wg")) == str(tmp_path / "dump")


# --- retries and timeouts, against a scripted HTTP server ------------------------------------


def Scripted(answers, delay=0.0):
    """A server answering from a list of (status, JSON body), in turn."""
    queue = list(answers)

    def answer(_request):
        time.sleep(delay)
        status, body = queue.pop(0) if queue else (200, [])
        return status, JSON, json.dumps(body).encode()

    return ScriptedHTTP(answer)


def test_get_is_retried_on_5xx_until_it_succeeds():
    busy = {"code": "internal_error", "message": "busy"}
    server = Scripted([(503, busy), (502, busy), (200, [{"name": "wg0"}])])
    try:
        client = _wgrest.WgrestClient(server.url, TOKEN, backoff=0.01)
        assert client.paged("/v1/devices/", "list devices") == [{"name": "wg0"}]
        assert [r.method for r in server.requests] == ["GET", "GET", "GET"]
    finally:
        server.close()


def test_post_is_never_retried():
    server = Scripted([(503, {"code": "internal_error", "message": "busy"}), (201, {})])
    try:
        client = _wgrest.WgrestClient(server.url, TOKEN, backoff=0.01)
        with pytest.raises(_wgrest.WgrestError, match="HTTP 503"):
            client.create_peer("wg0", {"public_key": new_key()})
        assert [r.method for r in server.requests] == ["POST"]
    finally:
        server.close()


def test_timeout_gives_a_clear_message():
    server = Scripted([], delay=1.0)
    try:
        client = _wgrest.WgrestClient(server.url, TOKEN, timeout=0.2, retries=0)
        with pytest.raises(_wgrest.WgrestError, match=r"list peers of device 'wg0' failed: .*timed out"):
            client.peers("wg0")
    finally:
        server.close()


def test_unreachable_server_names_the_url_and_post_warns_to_read_back():
    client = _wgrest.WgrestClient("http://127.0.0.1:9", TOKEN, retries=1, backoff=0.01)
    with pytest.raises(_wgrest.WgrestError, match=r"127\.0\.0\.1:9.*read the state back"):
        client.create_peer("wg0", {"public_key": new_key()})


# --- hostile servers ------------------------------------------------------------------------------------


def Paging(body, link):
    """Every answer is ``body`` (or ``body(page)``) with the Link header ``link(page, url)``."""

    def answer(request):
        headers = dict(JSON)
        header = link(request.page, server.url)
        if header:
            headers["Link"] = header
        return 200, headers, body(request.page) if callable(body) else body

    server = ScriptedHTTP(answer)
    return server


def test_a_next_link_to_another_origin_is_not_followed():
    other = Paging(b"[]", lambda page, url: None)
    for target in (other.url, other.url.replace("http://", "https://"), "http://localhost:" + other.url.rsplit(":", 1)[1]):
        server = Paging(b'[{"name": "wg0"}]', lambda page, url, t=target: f'<{t}/v1/devices/?page=1>; rel="next"')
        try:
            with pytest.raises(_wgrest.WgrestError, match="the next page is on another server"):
                _wgrest.WgrestClient(server.url, TOKEN, retries=0).devices()
        finally:
            server.close()
    other.close()
    assert other.tokens == [], "the token went to another origin"


def test_paging_is_bounded(monkeypatch):
    monkeypatch.setattr(_wgrest, "MAX_PAGES", 20)
    endless = Paging(lambda page: json.dumps([{"name": f"wg{page}"}]).encode(),
                     lambda page, url: f'</v1/devices/?page={page + 1}&per_page=100>; rel="next"')
    same = Paging(b'[{"name": "wg0"}]', lambda page, url: f'<{url}/v1/devices/?page={page + 1}>; rel="next"')
    loop = Paging(b'[{"name": "wg0"}]', lambda page, url: '</v1/devices/?page=0&per_page=100>; rel="next"')
    try:
        with pytest.raises(_wgrest.WgrestError, match="more than 20 pages"):
            _wgrest.WgrestClient(endless.url, TOKEN).devices()
        assert len(endless.requests) == 20
        with pytest.raises(_wgrest.WgrestError, match="same page twice"):
            _wgrest.WgrestClient(same.url, TOKEN).devices()
        assert len(same.requests) == 2
        # A next link back to a page already read ends the listing.
        assert _wgrest.WgrestClient(loop.url, TOKEN).devices() == [{"name": "wg0"}] and len(loop.requests) == 1
    finally:
        endless.close()
        same.close()
        loop.close()


@pytest.mark.parametrize(("body", "message"), [
    (b'[{"foo": 1}]', "not a device with a name"),
    (b'["wg0"]', "not a device with a name (got a JSON str)"),
    (b'[{"name": 5}]', "not a device with a name"),
    (b'{"name": "wg0"}', "the answer is not a JSON list"),
    (b"[" * 200_000, "the answer is not a JSON list"),
    (b"\xff\xfe garbage", "the answer is not a JSON list"),
])
def test_malformed_device_lists_are_errors(body, message):
    server = Paging(body, lambda page, url: None)
    try:
        with pytest.raises(_wgrest.WgrestError, match=re.escape(message)):
            _wgrest.WgrestClient(server.url, TOKEN, retries=0).devices()
    finally:
        server.close()


def test_an_answer_too_large_is_refused(monkeypatch):
    monkeypatch.setattr(_wgrest, "MAX_BODY", 1000)
    server = Paging(json.dumps([{"name": "x" * 10}] * 200).encode(), lambda page, url: None)
    try:
        with pytest.raises(_wgrest.WgrestError, match="larger than"):
            _wgrest.WgrestClient(server.url, TOKEN, retries=0).devices()
    finally:
        server.close()


@pytest.mark.parametrize(("data", "message"), [
    ({"foo": 1}, "not an object with a public_key"),
    ("x", "not an object with a public_key (got a JSON str)"),
    ({"public_key": 5}, "not an object with a public_key"),
    ({"public_key": "KEY", "allowed_ips": "10.0.0.1/32"}, "allowed_ips is a JSON str"),
    ({"public_key": "KEY", "allowed_ips": [1]}, "allowed_ips holds something other than strings"),
    ({"public_key": "KEY", "allowed_ips": ["10.0.0.1/32\nAllowedIPs = 0.0.0.0/0"]}, "holds a line break"),
    ({"public_key": "KEY", "endpoint": ["x"]}, "endpoint is a JSON list"),
    ({"public_key": "KEY", "persistent_keepalive_interval": 25}, "persistent_keepalive_interval is a JSON int"),
    ({"public_key": "KEY", "preshared_key": "A" * 43 + "x"}, "preshared_key: **redacted**"),
    ({"public_key": "not a key"}, "public_key: 'not a key' is not a WireGuard key"),
])
def test_malformed_peers_are_errors_that_name_the_field(data, message):
    key = new_key()
    if isinstance(data, dict) and data.get("public_key") == "KEY":
        data = {**data, "public_key": key}
    with pytest.raises(_wgrest.WgrestError, match=re.escape(message)) as info:
        _wgrest.peer_from_api(data, "wg0")
    assert "A" * 43 not in str(info.value)


@pytest.mark.parametrize("token", ["tok\n", "tok\r\nX-Injected: 1", "to ken", "tök", "tok\x00", "", 5])
def test_tokens_that_cannot_be_sent_are_refused_without_echo(token):
    if token == "":
        assert _wgrest.WgrestClient("http://127.0.0.1:1", token).token is None  # no token at all
        return
    with pytest.raises(WgValueError, match=r"^api_token: ") as info:
        _wgrest.WgrestClient("http://127.0.0.1:1", token)
    assert not isinstance(token, str) or "tok" not in str(info.value).replace("token", "")


@pytest.mark.parametrize("url", ["http://", "http://x:99999", "http://x:port", "http://a b", "http://x\n",
                                 "http://x/?q=1", "javascript:alert(1)", None, 5])
def test_bad_urls_are_refused_naming_the_option(url):
    with pytest.raises(WgValueError, match=r"^wgrest_url: "):
        _wgrest.WgrestClient(url, TOKEN, url_option="wgrest_url", token_option="wgrest_token")


def test_server_text_in_errors_loses_the_token_and_keys():
    key = _keys.generate_private_key()
    body = json.dumps({"code": "internal_error", "message": f"echo Bearer {TOKEN}", "detail": f"key {key}\nmore"})
    server = Scripted([(500, json.loads(body))])
    try:
        with pytest.raises(_wgrest.WgrestError) as info:
            _wgrest.WgrestClient(server.url, TOKEN, retries=0).create_peer("wg0", {"public_key": new_key()})
        text = str(info.value)
        assert TOKEN not in text and key not in text and "\n" not in text and "(api_token)" in text
    finally:
        server.close()


# --- wgrest's dump after a restore ---------------------------------------------------------------------


def test_prune_dump_keeps_only_the_snapshots_peers(tmp_path):
    dump_dir = tmp_path / "wgrest dump"
    dump_dir.mkdir()
    keep, gone = new_key(), new_key()
    (dump_dir / "wg0.conf").write_text(
        f"[Interface]\nListenPort = 51820\nPrivateKey = {_keys.generate_private_key()}\n\n"
        f"[Peer]\nPublicKey = {keep}\nAllowedIPs = 10.0.0.2/32\n\n[Peer]\nPublicKey = {gone}\nAllowedIPs = 10.0.0.3/32\n")
    iface = _wgconf.Interface(private_key=_keys.generate_private_key(), peers=(_wgconf.Peer(public_key=keep),),
                              post_up=("echo not a hook", _wgrest_dump.restore_hook(str(dump_dir))))
    assert _wgrest_dump.dump_dirs(iface) == [f"{dump_dir}/"]
    assert _wgrest_dump.prune_dump(iface, "wg0") == [gone]
    text = (dump_dir / "wg0.conf").read_text()
    assert keep in text and gone not in text
    assert _wgrest_dump.prune_dump(iface, "wg0") == [] and _wgrest_dump.prune_dump(iface, "wg1") == []
    # Only the exact hook counts: a look-alike command names no dump.
    assert _wgrest_dump.dump_dirs(iface.replace(post_up=("[ ! -r /x/%i.conf ] || awk 1 /x/%i.conf",))) == []


@pytest.mark.parametrize("url", ["{key}", "http://127.0.0.1/?k={key}", "ftp://{key}", "http://127.0.0.1:{key}/"])
def test_a_key_given_as_the_api_url_is_refused_without_quoting_it(url):
    key = new_key()
    with pytest.raises(WgValueError, match=r"^api_url: ") as caught:
        _wgrest.WgrestClient(url.format(key=key), token="t")
    assert key[:20] not in str(caught.value), str(caught.value).replace(key, "<the key>")


@pytest.mark.parametrize("timeout", [0, -1, 3601, True, float("nan"), "30"])
def test_a_request_timeout_that_cannot_wait_is_refused_naming_the_option(timeout):
    """0 made every request fail at once ("operation in progress"), a negative one with Python's own words."""
    with pytest.raises(WgValueError, match=r"^api_timeout: .* is not a number greater than 0 and at most 3600"):
        WgrestBackend("wg0", api_url="http://127.0.0.1:1", timeout=timeout)
