# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest v2: the HTTP client and the mapping between the API's peers and devices and the model.

The client uses urllib only, so it runs in modules on any host and in the
wgrest-sync container. It speaks wgrest as docs/wgrest.md describes it: a
``Bearer`` token, keys in URLs as URL-safe base64 with ``=`` padding, 0-based
pages followed through the ``Link`` header, keepalives as Go durations, and
``{"code", "message", "detail"}`` error bodies turned into messages that name
the device and peer. Only requests that are safe to repeat are retried.

The wg_peer ``wgrest`` backend is in ``_wgrest_backend``; the guard against wgrest's
file dumps (its own directory, the ``PostUp`` restore hook) in ``_wgrest_dump``.
See docs/wgrest.md for the whole design.
"""
from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ._errors import WgError, WgValueError, scrub_keys, shown
from ._keys import url_safe
from ._values import check_ifname
from ._wgconf import INTERFACE_SETTINGS, PEER_SETTINGS, Interface, Peer

DEFAULT_API_URL = "http://127.0.0.1:51822"
# wgrest's own config dir on the host (its data volume): its dumps land here, never in /etc/wireguard.
PER_PAGE = 100
# A listing longer than this many pages (a million peers) is a server that never stops answering "next".
MAX_PAGES = 10_000
# No answer of wgrest's comes near this (10,000 peers are about 3 MB).
MAX_BODY = 64 << 20
# A preshared key of 32 zero bytes is how WireGuard says "none".
ZERO_KEY = "A" * 43 + "="
RETRY_STATUS = (500, 502, 503, 504)


class WgrestError(WgError):
    """wgrest answered with an error, or could not be reached. ``status`` is None for the latter."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


# --- Go durations (persistent_keepalive_interval) -------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text) -> int:
    """Whole seconds of a Go duration such as ``25s``, ``1m5s`` or ``0s``."""
    if text in (None, "", "0"):
        return 0
    pos, total = 0, 0.0
    while pos < len(str(text)):
        match = _GO_PART.match(str(text), pos)
        if not match:
            raise WgError(f"wgrest: {shown(text)} is not a Go duration")
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    return round(total)


def format_duration(seconds: int) -> str:
    """A keepalive as wgrest wants it: ``25s`` (a bare ``25`` is refused), ``0s`` for off."""
    return f"{int(seconds or 0)}s"


# --- the client -----------------------------------------------------------------


class WgrestClient:
    """One wgrest server. Keys never appear in messages, except public keys, which are not secret."""

    def __init__(self, api_url: str = DEFAULT_API_URL, token: str | None = None, validate_certs: bool = True,
                 timeout: float = 30, retries: int = 3, backoff: float = 0.5, url_option: str = "api_url",
                 token_option: str = "api_token"):
        parsed = _check_url(url_option, api_url, token_option)
        self.base = api_url.rstrip("/")
        self.origin = _origin(parsed)
        self.token = check_token(token_option, token) if token else None
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._context = None
        if parsed.scheme == "https" and not validate_certs:
            self._context = ssl.create_default_context()
            self._context.check_hostname = False
            self._context.verify_mode = ssl.CERT_NONE
        self.opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=self._context))

    # -- plumbing
    def request(self, method: str, path: str, body: dict | None = None, what: str = "") -> tuple[int, dict, object]:
        """Send one request; returns (status, headers, decoded JSON). Raises WgrestError with a clear message.

        GET, PATCH and DELETE are retried on connection errors and 5xx answers:
        repeating them cannot do anything twice. POST is never retried.
        """
        url = path if path.startswith(("http://", "https://")) else self.base + path
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            # wgrest silently ignores a body without this header, and then creates a peer with a generated key.
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        attempts = 1 + (self.retries if method in ("GET", "PATCH", "DELETE", "PUT") else 0)
        what = what or f"{method} {urllib.parse.urlsplit(url).path}"
        for attempt in range(1, attempts + 1):
            req = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with self.opener.open(req, timeout=self.timeout) as resp:
                    return resp.status, dict(resp.headers), _decode(self._body(resp, what))
            except urllib.error.HTTPError as exc:
                payload = _decode(self._body(exc, what))
                if exc.code in RETRY_STATUS and attempt < attempts:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise self._http_error(exc.code, payload, what, method) from None
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                if attempt < attempts:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                reason = self._clean(getattr(exc, "reason", exc))
                hint = " (the request may have been carried out: read the state back before retrying)" \
                    if method == "POST" else ""
                raise WgrestError(f"wgrest at {self.base}: {what} failed: {reason}{hint}") from None
            except (http.client.HTTPException, ValueError) as exc:
                # A broken answer (bad status line, headers, chunking): the message may quote the answer.
                raise WgrestError(f"wgrest at {self.base}: {what}: the server's answer is not valid HTTP "
                                  f"({type(exc).__name__}: {self._clean(exc)})") from None
        raise AssertionError("unreachable")

    def _body(self, resp, what: str) -> bytes:
        data = resp.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise WgrestError(f"wgrest at {self.base}: {what}: the answer is larger than {MAX_BODY >> 20} MiB; refused")
        return data

    def _clean(self, text) -> str:
        """Server-supplied text as it may appear in a message: one line, short, no token, nothing shaped like a key."""
        text = str(text)
        if self.token:
            text = text.replace(self.token, "(api_token)")
        text = "".join(c if c.isprintable() else " " for c in text).strip()
        return scrub_keys(text)[:200]

    def _http_error(self, status: int, payload, what: str, method: str) -> WgrestError:
        if isinstance(payload, dict) and "code" in payload:
            code = self._clean(payload.get("code"))
            text = self._clean(payload.get("message") or code)
            detail = payload.get("detail")
            if detail:
                text += f": {self._clean(detail)}"
        else:
            code, text = None, self._clean(payload or "") or "no details"
        if status == 401:
            return WgrestError(f"wgrest at {self.base}: {what}: authentication failed ({text}); "
                               "check api_token", status, code)
        return WgrestError(f"wgrest at {self.base}: {what}: HTTP {status} {code or ''} ({text})".replace("  ", " "),
                           status, code)

    def paged(self, path: str, what: str, query: dict | None = None) -> list:
        """Every item of a list route: 0-based pages, following ``rel="next"`` in the Link header.

        A next link is followed only to this client's origin (scheme, host, port: the token goes
        with it), never to a page already read, and for at most MAX_PAGES pages.
        """
        items: list = []
        url = f"{self.base}{path}?{urllib.parse.urlencode({**(query or {}), 'page': 0, 'per_page': PER_PAGE})}"
        seen = set()
        previous = None
        while url and url not in seen:
            if len(seen) >= MAX_PAGES:
                raise WgrestError(f"wgrest at {self.base}: {what}: more than {MAX_PAGES} pages; the server keeps "
                                  "answering with a next page, refused")
            seen.add(url)
            _status, headers, page = self.request("GET", url, what=what)
            if not isinstance(page, list):
                raise WgrestError(f"wgrest at {self.base}: {what}: the answer is not a JSON list")
            if not page:
                break
            if page == previous:
                raise WgrestError(f"wgrest at {self.base}: {what}: the server answered the same page twice; refused")
            previous = page
            items.extend(page)
            link = _next_link(headers.get("Link") or headers.get("link") or "")
            url = urllib.parse.urljoin(url, link) if link else None
            if url and _origin(urllib.parse.urlsplit(url)) != self.origin:
                _scheme, host, port = _origin(urllib.parse.urlsplit(url))
                raise WgrestError(f"wgrest at {self.base}: {what}: the next page is on another server "
                                  f"({self._clean(host)}:{port}); not followed")
        return items

    # -- routes
    def version(self) -> dict:
        return self.request("GET", "/version", what="GET /version")[2]

    def devices(self) -> list[dict]:
        what = "list devices"
        devices = self.paged("/v1/devices/", what)
        for device in devices:
            if not isinstance(device, dict) or not isinstance(device.get("name"), str):
                raise WgrestError(f"wgrest at {self.base}: {what}: an entry is not a device with a name "
                                  f"(got {_shape(device)})")
        return devices

    def device(self, name: str) -> dict:
        what = f"read device {name!r}"
        device = self.request("GET", f"/v1/devices/{_q(name)}/", what=what)[2]
        if not isinstance(device, dict):
            raise WgrestError(f"wgrest at {self.base}: {what}: the answer is not a device (got {_shape(device)})")
        return device

    def peers(self, name: str) -> list[dict]:
        """Every peer of a device. Sorted by key on the server: a device lists its peers in no stable
        order (wireguard-go walks a map), and pages cut from two different orders would skip peers."""
        what = f"list peers of device {name!r}"
        peers = self.paged(f"/v1/devices/{_q(name)}/peers/", what, {"sort": "pub_key"})
        for peer in peers:
            if not isinstance(peer, dict) or not isinstance(peer.get("public_key"), str):
                raise WgrestError(f"wgrest at {self.base}: {what}: an entry is not a peer with a public key "
                                  f"(got {_shape(peer)})")
        keys = {p["public_key"] for p in peers}
        if len(keys) != len(peers):
            raise WgrestError(f"wgrest at {self.base}: {what}: the pages overlap (peers changed while reading); "
                              "read again")
        return peers

    def create_peer(self, name: str, body: dict) -> dict:
        what = f"create peer {body.get('public_key')} on device {name!r}"
        return self.request("POST", f"/v1/devices/{_q(name)}/peers/", body, what=what)[2]

    def update_peer(self, name: str, public_key: str, body: dict) -> dict:
        what = f"update peer {public_key} on device {name!r}"
        return self.request("PATCH", _peer_path(name, public_key), body, what=what)[2]

    def delete_peer(self, name: str, public_key: str) -> dict | None:
        """Delete a peer; one that is already gone counts as deleted (a retried DELETE may find it so)."""
        try:
            return self.request("DELETE", _peer_path(name, public_key),
                                what=f"delete peer {public_key} on device {name!r}")[2]
        except WgrestError as exc:
            if exc.code == "peer_not_found":
                return None
            raise


def _check_url(option: str, api_url, token_option: str) -> urllib.parse.SplitResult:
    if not isinstance(api_url, str) or not api_url.isprintable() or " " in api_url:
        raise WgValueError(f"{option}: {shown(api_url)} is not an http:// or https:// URL")
    try:
        parsed = urllib.parse.urlsplit(api_url)
        parsed.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise WgValueError(f"{option}: {shown(api_url)} is not an http:// or https:// URL (bad port?)") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise WgValueError(f"{option}: {shown(api_url)} is not an http:// or https:// URL")
    if parsed.username or parsed.password:
        raise WgValueError(f"{option}: must not carry credentials; give the token as {token_option}")
    if parsed.query or parsed.fragment:
        raise WgValueError(f"{option}: {shown(api_url)} must not have a query or fragment")
    return parsed


def _origin(parsed: urllib.parse.SplitResult) -> tuple:
    try:
        port = parsed.port
    except ValueError:
        port = -1
    return parsed.scheme, (parsed.hostname or "").lower(), port or {"http": 80, "https": 443}.get(parsed.scheme)


# What RFC 6750 allows in a bearer token, and any other visible ASCII (wgrest compares the token as a string).
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


def check_token(option: str, token) -> str:
    """A token that can go in an HTTP header: visible ASCII, no space, no line break. Never echoed."""
    if not isinstance(token, str):
        raise WgValueError(f"{option}: must be a string, not {type(token).__name__}")
    if not _TOKEN_RE.fullmatch(token):
        what = "a line break" if "\r" in token or "\n" in token else "a space, control or non-ASCII character"
        raise WgValueError(f"{option}: the token contains {what}; a token is visible ASCII characters only "
                           "(its value is not shown)")
    return token


def _shape(value) -> str:
    """What an unexpected JSON value is, without quoting it (it might hold a key)."""
    if isinstance(value, dict):
        return f"an object with keys {', '.join(sorted(map(str, value))[:6])[:120]}"
    return f"a JSON {type(value).__name__}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # Following a redirect would resend the token to wherever it points; wgrest's API routes never redirect.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _peer_path(name: str, public_key: str) -> str:
    # URL-safe base64 keeps its '=' padding: wgrest does not percent-decode it.
    return f"/v1/devices/{_q(name)}/peers/{url_safe(public_key)}/"


def _decode(raw: bytes):
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, or nested deep enough to exhaust the parser
        return raw.decode("utf-8", "replace")


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?([a-z]+)"?')


def _next_link(header: str) -> str | None:
    for url, rel in _LINK_RE.findall(header):
        if rel == "next":
            return url
    return None


# --- the model ----------------------------------------------------------------------


def _typed(data: dict, key: str, kind, what: str):
    value = data.get(key)
    if value is not None and not isinstance(value, kind):
        raise WgrestError(f"wgrest: {what}: {key} is {_shape(value)}, not what wgrest sends")
    return value


def _strings(value: list, key: str, what: str) -> tuple:
    if not all(isinstance(item, str) for item in value):
        raise WgrestError(f"wgrest: {what}: {key} holds something other than strings")
    return tuple(value)


# wgrest's wire forms, which the registry names for each setting wgrest shows (Setting.wgrest):
# form -> (JSON type, JSON value -> model value (None: absent), model value -> JSON value (None: leave out)).
_WIRE = {
    "text": (str, lambda value, key, what: value or None, lambda value: value or None),
    # A preshared key of zeros is how WireGuard says "none".
    "key": (str, lambda value, key, what: None if value in (None, "", ZERO_KEY) else value, lambda value: value or None),
    "list": (list, lambda value, key, what: _strings(value or (), key, what), list),
    "int": (int, lambda value, key, what: value or None, lambda value: value),
    "duration": (str, lambda value, key, what: parse_duration(value), format_duration),
}
_API_PEER = tuple((name, *s.wgrest, *_WIRE[s.wgrest[1]]) for name, s in PEER_SETTINGS.items() if s.wgrest)
_API_DEVICE = tuple((name, *s.wgrest, *_WIRE[s.wgrest[1]]) for name, s in INTERFACE_SETTINGS.items() if s.wgrest)
# What a PATCH never clears (it leaves out an empty value): a peer losing one is made again.
_PATCH_KEEPS = tuple(name for name, _key, form, *_wire in _API_PEER if form in ("text", "key", "list"))


def _from_api(data: dict, fields: tuple, what: str) -> dict:
    return {name: read(_typed(data, key, kind, what), key, what) for name, key, _form, kind, read, _write in fields}


def peer_from_api(data, device: str = "") -> Peer:
    """A wgrest peer as the shared model (wgrest shows no label or expiry: those are None)."""
    what = f"device {shown(device)} returned a peer that cannot be read"
    if not isinstance(data, dict) or not isinstance(data.get("public_key"), str):
        raise WgrestError(f"wgrest: {what}: it is not an object with a public_key (got {_shape(data)})")
    values = _from_api(data, _API_PEER, what)
    try:
        return Peer(**values)
    except WgValueError as exc:
        raise WgrestError(f"wgrest: {what}: {scrub_keys(str(exc))}") from None


def device_from_api(data: dict) -> Interface:
    """A wgrest device's own settings as the model (no peers, no wg-quick settings: wgrest does not show them)."""
    what = f"device {shown(data.get('name'))} cannot be read"
    values = _from_api(data, _API_DEVICE, what)
    try:
        return Interface(**values)
    except WgValueError as exc:
        raise WgrestError(f"wgrest: {what}: {scrub_keys(str(exc))}") from None


class WgrestSource:
    """The devices as wgrest shows them: wgrest-sync's live source for ``_backup.capture``."""

    def __init__(self, client: WgrestClient):
        self.client = client
        self._devices: dict | None = None

    def names(self) -> list[str]:
        self._devices = {d["name"]: d for d in self.client.devices()}
        return [n for n in self._devices if _is_name(n)]

    def read(self, name: str) -> Interface | None:
        if self._devices is None:
            self.names()
        device = self._devices.get(name)
        if device is None:
            return None
        peers = tuple(peer_from_api(p, name) for p in self.client.peers(name))
        return device_from_api(device).replace(peers=peers)  # wgrest shows no addresses and no MTU


def _is_name(name: str) -> bool:
    try:
        check_ifname("device", name)
    except WgValueError:
        return False
    return "\n" not in name and not name.startswith(".")


def peer_body(peer: Peer) -> dict:
    body = {}
    for name, key, _form, _kind, _read, write in _API_PEER:
        value = write(getattr(peer, name))
        if value is not None:
            body[key] = value
    return body


def needs_recreate(old: Peer, new: Peer) -> bool:
    """True when PATCH cannot reach ``new``: it never clears allowed IPs, an endpoint or a preshared key."""
    return any(getattr(old, name) and not getattr(new, name) for name in _PATCH_KEEPS)
