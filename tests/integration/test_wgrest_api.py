"""The wgrest client against the real wgrest serving a real device: the wire facts of docs/wgrest.md."""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _wgconf, _wgrest
from tests.conftest import _can_make_namespaces, needs_lab
from tests.helpers.keys import new_key
from tests.helpers.netns import Lab
from tests.helpers.server_host import write_conf
from tests.helpers.wgrest_real import WgrestHost

pytestmark = [needs_lab, pytest.mark.lab]
TOKEN = "api-token-7f3a"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One server host for the module: a running interface and the real wgrest in front of it."""
    if not _can_make_namespaces():
        pytest.skip("needs root, wireguard-go and wg-quick")
    lab = Lab()
    try:
        tmp = tmp_path_factory.mktemp("wgrest-unit")
        host = WgrestHost(lab)
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


def test_peers_are_read_across_zero_based_pages(api):
    host, name, _unused = api
    keys = sorted(new_key() for _unused in range(230))
    host.run("wg", "set", name, *[a for k in keys for a in ("peer", k)])
    try:
        status, headers, body = raw(host, "GET", f"/v1/devices/{name}/peers/?page=1&per_page=100",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and len(json.loads(body)) == 100
        assert 'page=0&per_page=100>; rel="first"' in headers["Link"]
        assert 'page=2&per_page=100>; rel="last"' in headers["Link"]
        peers = _wgrest.WgrestClient(host.api_url, TOKEN).peers(name)
        assert sorted(p["public_key"] for p in peers) == keys
    finally:
        host.run("wg", "set", name, *[a for k in keys for a in ("peer", k, "remove")])


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
    # A bare number is no Go duration: the real wgrest answers 500, not 400.
    with pytest.raises(_wgrest.WgrestError, match=r'HTTP 500 internal_error .*missing unit in duration "25"'):
        client.create_peer(name, {"public_key": key, "persistent_keepalive_interval": "25"})


def test_routes_outside_the_api(api):
    host, _unused, _unused = api
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, headers, body = raw(host, "GET", "/v1/foo", headers=auth)
    assert (status, body) == (404, b"Cannot GET /v1/foo") and headers["Content-Type"].startswith("text/plain")
    assert raw(host, "GET", "/v1/foo")[0] == 401  # under /v1 the token is checked before the route
    status, headers, _unused = raw(host, "GET", "/devices")
    assert status == 307 and headers["Location"] == "/v1/devices/"
    preflight = {"Origin": "http://ui.example", "Access-Control-Request-Method": "GET"}
    assert raw(host, "OPTIONS", "/v1/devices/", headers=preflight)[0] == 204  # a CORS preflight needs no token
    assert raw(host, "OPTIONS", "/v1/devices/")[0] == 401  # a bare OPTIONS is no preflight
    assert raw(host, "DELETE", f"/v1/devices/{api[1]}/", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 404


def test_dump_strips_the_wg_quick_settings(api):
    """The hazard itself, reproduced: wgrest's dump of a device has no Address."""
    _host, name, tmp = api
    dump = _wgconf.parse(Path(tmp / "wgrest" / f"{name}.conf").read_text())
    assert dump.listen_port == 51820 and dump.address == ()
