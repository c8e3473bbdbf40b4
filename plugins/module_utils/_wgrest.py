# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest v2: an HTTP client, the wg_peer ``wgrest`` backend, and the guard against wgrest's file dumps.

The client uses urllib only, so it runs in modules on any host and in the
wgrest-sync container. It speaks wgrest as docs/wgrest.md describes it: a
``Bearer`` token, keys in URLs as URL-safe base64 with ``=`` padding, 0-based
pages followed through the ``Link`` header, keepalives as Go durations, and
``{"code", "message", "detail"}`` error bodies turned into messages that name
the device and peer. Only requests that are safe to repeat are retried.

The file hazard: wgrest rewrites ``<config-dir>/<name>.conf`` from
``wg showconf`` (no Address, DNS, MTU, Table or hooks). The collection never
lets it near the wg-quick file: wgrest gets its own config dir
(``WGREST_DUMP_DIR``), which then holds its dumps of every device, and each
wg-quick file carries the ``PostUp`` hook of :func:`restore_hook`, which puts
back on the device the peers that exist only in wgrest's dump. See
docs/wgrest.md for the whole design.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ._errors import WgError, WgValueError
from ._keys import url_safe
from ._peers import PeerSpec, plan_peers
from ._wgconf import Peer, check_ifname, render_peer

DEFAULT_API_URL = "http://127.0.0.1:51822"
# wgrest's own config dir on the host (its data volume): its dumps land here, never in /etc/wireguard.
WGREST_DUMP_DIR = "/var/lib/wgrest/wireguard"
PER_PAGE = 100
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
            raise WgError(f"wgrest: {text!r} is not a Go duration")
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
                 timeout: float = 30, retries: int = 3, backoff: float = 0.5):
        parsed = urllib.parse.urlsplit(api_url or "")
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise WgValueError(f"api_url: {api_url!r} is not an http:// or https:// URL")
        if parsed.username or parsed.password:
            raise WgValueError("api_url: must not carry credentials; give the token as api_token")
        self.base = api_url.rstrip("/")
        self.token = token or None
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
                    return resp.status, dict(resp.headers), _decode(resp.read())
            except urllib.error.HTTPError as exc:
                payload = _decode(exc.read())
                if exc.code in RETRY_STATUS and attempt < attempts:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                raise self._http_error(exc.code, payload, what, method) from None
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                if attempt < attempts:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                    continue
                reason = getattr(exc, "reason", exc)
                hint = " (the request may have been carried out: read the state back before retrying)" \
                    if method == "POST" else ""
                raise WgrestError(f"wgrest at {self.base}: {what} failed: {reason}{hint}") from None
        raise AssertionError("unreachable")

    def _http_error(self, status: int, payload, what: str, method: str) -> WgrestError:
        if isinstance(payload, dict) and "code" in payload:
            code = str(payload.get("code"))
            text = str(payload.get("message") or code)
            detail = payload.get("detail")
            if detail:
                text += f": {detail}"
        else:
            code, text = None, str(payload or "").strip()[:200] or "no details"
        if status == 401:
            return WgrestError(f"wgrest at {self.base}: {what}: authentication failed ({text}); "
                               "check api_token", status, code)
        return WgrestError(f"wgrest at {self.base}: {what}: HTTP {status} {code or ''} ({text})".replace("  ", " "),
                           status, code)

    def paged(self, path: str, what: str, query: dict | None = None) -> list:
        """Every item of a list route: 0-based pages, following ``rel="next"`` in the Link header."""
        items: list = []
        url = f"{path}?{urllib.parse.urlencode({**(query or {}), 'page': 0, 'per_page': PER_PAGE})}"
        seen = set()
        while url and url not in seen:
            seen.add(url)
            _status, headers, page = self.request("GET", url, what=what)
            if not isinstance(page, list):
                raise WgrestError(f"wgrest at {self.base}: {what}: expected a JSON list")
            items.extend(page)
            url = _next_link(headers.get("Link") or headers.get("link") or "")
            if url and not url.startswith(("http://", "https://")):
                url = urllib.parse.urljoin(self.base + "/", url)
            if not page:
                break
        return items

    # -- routes
    def version(self) -> dict:
        return self.request("GET", "/version", what="GET /version")[2]

    def devices(self) -> list[dict]:
        return self.paged("/v1/devices/", "list devices")

    def device(self, name: str) -> dict:
        return self.request("GET", f"/v1/devices/{_q(name)}/", what=f"read device {name!r}")[2]

    def peers(self, name: str) -> list[dict]:
        """Every peer of a device. Sorted by key on the server: a device lists its peers in no stable
        order (wireguard-go walks a map), and pages cut from two different orders would skip peers."""
        what = f"list peers of device {name!r}"
        peers = self.paged(f"/v1/devices/{_q(name)}/peers/", what, {"sort": "pub_key"})
        keys = {p.get("public_key") for p in peers}
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
    except ValueError:
        return raw.decode("utf-8", "replace")


_LINK_RE = re.compile(r'<([^>]*)>\s*;\s*rel="?([a-z]+)"?')


def _next_link(header: str) -> str | None:
    for url, rel in _LINK_RE.findall(header):
        if rel == "next":
            return url
    return None


# --- the model ----------------------------------------------------------------------


def peer_from_api(data: dict, device: str = "") -> Peer:
    """A wgrest peer as the shared model (wgrest has no label: ``name`` is None)."""
    psk = data.get("preshared_key") or None
    try:
        return Peer(
            public_key=data["public_key"],
            allowed_ips=data.get("allowed_ips") or (),
            endpoint=data.get("endpoint") or None,
            preshared_key=None if psk == ZERO_KEY else psk,
            persistent_keepalive=parse_duration(data.get("persistent_keepalive_interval")),
        )
    except (KeyError, WgValueError) as exc:
        raise WgError(f"wgrest: device {device!r} returned a peer that cannot be read: {exc}") from None


def peer_body(peer: Peer) -> dict:
    body: dict = {
        "public_key": peer.public_key,
        "allowed_ips": list(peer.allowed_ips),
        "persistent_keepalive_interval": format_duration(peer.persistent_keepalive),
    }
    if peer.endpoint:
        body["endpoint"] = peer.endpoint
    if peer.preshared_key:
        body["preshared_key"] = peer.preshared_key
    return body


def needs_recreate(old: Peer, new: Peer) -> bool:
    """True when PATCH cannot reach ``new``: it never clears allowed IPs, an endpoint or a preshared key."""
    return (bool(old.allowed_ips) and not new.allowed_ips) or (bool(old.endpoint) and not new.endpoint) \
        or (bool(old.preshared_key) and not new.preshared_key)


# --- the wg_peer backend -----------------------------------------------------------

LABEL_WARNING = ("name: wgrest has no field for a peer label; the label of {count} peer(s) was ignored "
                 "(labels are kept by backend=file, in the wg-quick file)")


class WgrestBackend:
    """Peers of one device, kept by wgrest (and so on the live device). Same surface as FileBackend."""

    def __init__(self, interface: str, api_url: str = DEFAULT_API_URL, api_token: str | None = None,
                 validate_certs: bool = True, timeout: float = 30):
        self.interface = check_ifname("interface", interface)
        self.client = WgrestClient(api_url, api_token, validate_certs=validate_certs, timeout=timeout)

    def read(self) -> list[Peer]:
        try:
            self.client.device(self.interface)
        except WgrestError as exc:
            if exc.code == "device_not_found":
                raise WgValueError(f"interface: {self.interface!r} does not exist on wgrest at {self.client.base}; "
                                   "create it with wg_interface (wgrest cannot create interfaces)") from None
            raise
        return [peer_from_api(p, self.interface) for p in self.client.peers(self.interface)]

    def apply(self, specs: list[PeerSpec], exclusive: bool, check_mode: bool) -> dict:
        labelled = [s for s in specs if s.name]
        # wgrest cannot hold a label: plan without it, so that a label never reads as a change.
        specs = [PeerSpec(**{**vars(s), "name": None}) for s in specs]
        current = self.read()
        plan = plan_peers(current, specs, exclusive)
        where = f"{self.client.base}/v1/devices/{self.interface}/"
        result = {
            "changed": plan.changed,
            "peers": plan.summary(),
            "drift": [],
            "peer_count": len(plan.desired),
            "applied": "none",
            "diff": {"before": _render_peers(current), "after": _render_peers(plan.desired),
                     "before_header": where, "after_header": where},
        }
        if labelled:
            result["warnings"] = [LABEL_WARNING.format(count=len(labelled))]
        if check_mode or not plan.changed:
            return result
        old = {p.public_key: p for p in current}
        for key in plan.removed:
            self.client.delete_peer(self.interface, key)
        for peer in plan.updated:
            if needs_recreate(old[peer.public_key], peer):
                self.client.delete_peer(self.interface, peer.public_key)
                self.client.create_peer(self.interface, peer_body(peer))
            else:
                self.client.update_peer(self.interface, peer.public_key, peer_body(peer))
        for peer in plan.added:
            self.client.create_peer(self.interface, peer_body(peer))
        result["applied"] = "api"
        # wgrest's answers echo the request; only a read-back tells what the device holds.
        after = {p.public_key: p for p in self.read()}
        wrong = [p.public_key for p in plan.desired if after.get(p.public_key) != p]
        wrong += [k for k in plan.removed if k in after]
        if wrong:
            raise WgError(f"wgrest at {self.client.base}: device {self.interface!r} does not hold the requested "
                          f"state of peer(s) {', '.join(wrong)} after the change")
        return result


def _render_peers(peers: list[Peer]) -> str:
    lines: list[str] = []
    for peer in peers:
        lines.extend(render_peer(peer, redact=True))
    return "\n".join(lines).lstrip("\n") + ("\n" if lines else "")


# --- the file hazard -------------------------------------------------------------------


def check_dump_dir(dump_dir: str, wg_config_dir: str = "/etc/wireguard") -> str:
    """Refuse to point wgrest at the wg-quick directory: its dumps would strip Address, DNS, MTU and hooks."""
    if os.path.realpath(dump_dir) == os.path.realpath(wg_config_dir):
        raise WgValueError(
            f"wgrest config dir: {dump_dir!r} is the wg-quick directory; wgrest rewrites <name>.conf there from "
            f"'wg showconf' and would drop Address, DNS, MTU, Table and the hooks. Use its own directory "
            f"(default {WGREST_DUMP_DIR})"
        )
    return dump_dir


# awk over wgrest's dump: print each [Peer] section whose PublicKey the device does not have yet.
# No '#' anywhere: the wg-quick parser would cut the line there.
_RESTORE_AWK = (
    'function flush() { if (b != "" && !skip) printf "%s", b; b = ""; skip = 0 } '
    'BEGIN { n = split(live, l, "\\n"); for (i = 1; i <= n; i++) have[l[i]] = 1 } '
    '/^\\[/ { flush(); inpeer = ($0 == "[Peer]") } '
    'inpeer && $1 == "PublicKey" { skip = ($3 in have) } '
    "inpeer { b = b $0 \"\\n\" } "
    "END { flush() }"
)


def restore_hook(dump_dir: str = WGREST_DUMP_DIR) -> str:
    """The ``PostUp`` command that gives a freshly started interface back the peers wgrest added.

    wg-quick has just loaded the wg-quick file; this adds, from wgrest's last
    dump (``<dump_dir>/<name>.conf``), only the peers the device does not hold,
    so peers managed in the file keep the file's settings and the interface's
    own settings (key, port) never come from the dump. Without a dump it does
    nothing. It needs only bash, awk and wg, which wg-quick needs anyway.
    """
    dump = shlex.quote(os.path.join(dump_dir, "")) + "%i.conf"
    return (f"[ ! -r {dump} ] || awk -v live=\"$(wg show %i peers)\" {shlex.quote(_RESTORE_AWK)} {dump} "
            "| wg addconf %i /dev/stdin")


__all__ = ["DEFAULT_API_URL", "WGREST_DUMP_DIR", "WgrestBackend", "WgrestClient", "WgrestError",
           "check_dump_dir", "peer_from_api", "restore_hook"]
