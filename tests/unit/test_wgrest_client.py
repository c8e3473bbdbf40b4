"""The wgrest client: wire format and error handling, against the wgrest double driving a real device."""
from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgconf, _wgrest
from ansible_collections.wgfleet.wireguard.plugins.module_utils._errors import WgError, WgValueError
from tests.conftest import _can_make_namespaces, needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import Lab, sh
from tests.wgrest_server.harness import ServerHost, write_conf

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
    hook = _wgrest.restore_hook("/var/lib/wgrest/wireguard")
    iface = _wgconf.Interface(private_key=_keys.generate_private_key(), address=["10.9.0.1/24"], post_up=[hook])
    assert _wgconf.parse(_wgconf.render(iface)).post_up == (hook,)


def test_wgrest_is_never_pointed_at_the_wg_quick_dir(tmp_path):
    (tmp_path / "wg").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "wg")
    with pytest.raises(WgValueError, match="would drop Address"):
        _wgrest.check_dump_dir(str(tmp_path / "link"), str(tmp_path / "wg"))
    assert _wgrest.check_dump_dir(str(tmp_path / "dump"), str(tmp_path / "wg")) == str(tmp_path / "dump")


# --- retries and timeouts, against a scripted HTTP server ------------------------------------


class Scripted:
    """An HTTP server answering from a list of (status, body) and counting requests per method."""

    def __init__(self, answers, delay=0.0):
        self.answers = list(answers)
        self.seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return

            def answer(self):
                outer.seen.append(self.command)
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                time.sleep(delay)
                status, body = outer.answers.pop(0) if outer.answers else (200, [])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may have timed out and gone
                    self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_get_is_retried_on_5xx_until_it_succeeds():
    busy = {"code": "internal_error", "message": "busy"}
    server = Scripted([(503, busy), (502, busy), (200, [{"name": "wg0"}])])
    try:
        client = _wgrest.WgrestClient(server.url, TOKEN, backoff=0.01)
        assert client.paged("/v1/devices/", "list devices") == [{"name": "wg0"}]
        assert server.seen == ["GET", "GET", "GET"]
    finally:
        server.close()


def test_post_is_never_retried():
    server = Scripted([(503, {"code": "internal_error", "message": "busy"}), (201, {})])
    try:
        client = _wgrest.WgrestClient(server.url, TOKEN, backoff=0.01)
        with pytest.raises(_wgrest.WgrestError, match="HTTP 503"):
            client.create_peer("wg0", {"public_key": new_key()})
        assert server.seen == ["POST"]
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


# --- against the wgrest double and a real device ------------------------------------------------


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One server host for the module: a running interface and the double in front of it."""
    if not _can_make_namespaces():
        pytest.skip("needs root, wireguard-go and wg-quick")
    lab = Lab()
    try:
        tmp = tmp_path_factory.mktemp("wgrest-unit")
        host = ServerHost(lab)
        name = lab.wg_name("u")
        conf = write_conf(tmp / "etc" / f"{name}.conf",
                          f"[Interface]\nPrivateKey = {_keys.generate_private_key()}\nListenPort = 51820\n"
                          "Address = 10.231.7.1/24\n")
        host.quick("up", conf)
        host.start_wgrest(tmp / "wgrest", token=TOKEN)
        yield host, name, tmp
    finally:
        lab.close()


def raw(host, method, path, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(host.api_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(_wgrest._NoRedirect).open(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@needs_lab
def test_token_must_be_exactly_bearer(api):
    host, name, _unused = api
    assert raw(host, "GET", "/version")[0] == 200  # no token needed
    status, _unused, body = raw(host, "GET", "/v1/devices/", headers={"Authorization": f"bearer {TOKEN}"})
    assert (status, json.loads(body)["message"]) == (401, "invalid authorization format")
    with pytest.raises(_wgrest.WgrestError, match=r"authentication failed \(invalid token\); check api_token"):
        _wgrest.WgrestClient(host.api_url, "wrong").devices()
    with pytest.raises(_wgrest.WgrestError, match="missing authorization header"):
        _wgrest.WgrestClient(host.api_url, None).device(name)
    assert [d["name"] for d in _wgrest.WgrestClient(host.api_url, TOKEN).devices()] == [name]


@needs_lab
def test_peers_are_read_across_zero_based_pages(api):
    host, name, _unused = api
    keys = sorted(new_key() for _unused in range(230))
    sh("wg", "set", name, *[a for k in keys for a in ("peer", k)], netns=host.ns)
    try:
        status, headers, body = raw(host, "GET", f"/v1/devices/{name}/peers/?page=1&per_page=100",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and len(json.loads(body)) == 100
        assert 'page=0&per_page=100>; rel="first"' in headers["Link"]
        assert 'page=2&per_page=100>; rel="last"' in headers["Link"]
        peers = _wgrest.WgrestClient(host.api_url, TOKEN).peers(name)
        assert sorted(p["public_key"] for p in peers) == keys
    finally:
        sh("wg", "set", name, *[a for k in keys for a in ("peer", k, "remove")], netns=host.ns)


@needs_lab
def test_keys_in_urls_are_url_safe_with_padding(api):
    host, name, _unused = api
    client = _wgrest.WgrestClient(host.api_url, TOKEN)
    key = next(k for k in iter(new_key, None) if "+" in k and "/" in k)
    client.create_peer(name, {"public_key": key, "allowed_ips": ["10.231.7.9/32"]})
    try:
        status, _unused, body = raw(host, "GET", f"/v1/devices/{name}/peers/{_keys.url_safe(key)}/",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and json.loads(body)["url_safe_public_key"] == _keys.url_safe(key)
        updated = client.update_peer(name, key, {"persistent_keepalive_interval": "30s"})
        assert updated["persistent_keepalive_interval"] == "30s"
    finally:
        assert client.delete_peer(name, key)["public_key"] == key
    assert client.delete_peer(name, key) is None  # already gone counts as deleted


@needs_lab
def test_post_answer_echoes_the_request_and_reading_back_tells_the_truth(api):
    host, name, _unused = api
    client = _wgrest.WgrestClient(host.api_url, TOKEN)
    key = new_key()
    answer = client.create_peer(name, {"public_key": key})
    try:
        assert answer["allowed_ips"] is None and answer["persistent_keepalive_interval"] == "0s"
        back = next(p for p in client.peers(name) if p["public_key"] == key)
        assert back["allowed_ips"] == [] and back["last_handshake_time"] == "0001-01-01T00:00:00Z"
    finally:
        client.delete_peer(name, key)


@needs_lab
def test_a_body_without_json_content_type_is_ignored_so_the_client_always_sends_it(api):
    host, name, _unused = api
    key = new_key()
    status, _unused, body = raw(host, "POST", f"/v1/devices/{name}/peers/",
                                body=json.dumps({"public_key": key}).encode(),
                                headers={"Authorization": f"Bearer {TOKEN}"})
    generated = json.loads(body)
    assert status == 201 and generated["public_key"] != key and "private_key" in generated
    client = _wgrest.WgrestClient(host.api_url, TOKEN)
    client.delete_peer(name, generated["public_key"])
    assert client.create_peer(name, {"public_key": key})["public_key"] == key
    client.delete_peer(name, key)


@needs_lab
def test_errors_name_the_device_and_peer_and_never_a_secret(api):
    host, name, _unused = api
    client = _wgrest.WgrestClient(host.api_url, TOKEN)
    with pytest.raises(_wgrest.WgrestError, match=r"read device 'nosuchwg'.*404 device_not_found"):
        client.device("nosuchwg")
    psk = _keys.generate_private_key()
    with pytest.raises(_wgrest.WgrestError) as caught:
        client.create_peer(name, {"public_key": "not-a-key", "preshared_key": psk})
    assert "HTTP 500 internal_error" in str(caught.value) and "'wgrest'" not in str(caught.value)
    assert psk not in str(caught.value), "preshared key leaked"
    key = new_key()
    with pytest.raises(_wgrest.WgrestError, match=f"update peer {key.replace('+', '.')} on device '{name}'.*404"):
        client.update_peer(name, key, {"persistent_keepalive_interval": "5s"})
    with pytest.raises(_wgrest.WgrestError, match="HTTP 400 invalid_request"):
        client.create_peer(name, {"public_key": key, "persistent_keepalive_interval": "25"})


@needs_lab
def test_routes_outside_the_api(api):
    host, _unused, _unused = api
    status, headers, body = raw(host, "GET", "/v1/foo")
    assert (status, body) == (404, b"Cannot GET /v1/foo") and headers["Content-Type"].startswith("text/plain")
    status, headers, _unused = raw(host, "GET", "/devices")
    assert status == 307 and headers["Location"] == "/v1/devices/"
    assert raw(host, "OPTIONS", "/v1/devices/")[0] == 204
    assert raw(host, "DELETE", f"/v1/devices/{api[1]}/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 404


@needs_lab
def test_dump_strips_the_wg_quick_settings(api):
    """The hazard itself, reproduced: wgrest's dump of a device has no Address."""
    _host, name, tmp = api
    dump = _wgconf.parse(Path(tmp / "wgrest" / f"{name}.conf").read_text())
    assert dump.listen_port == 51820 and dump.address == ()
