"""The wgrest v2 double: HTTP routes over real ``wg`` devices, and wgrest's file dumps.

Every behaviour here is one listed in the project's wgrest notes (shared/docs/wgrest.md); the comments name the
quirk when the behaviour would otherwise look like a bug.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as dt
import json
import math
import os
import re
import subprocess
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_PER_PAGE = 100

# --- Go durations -------------------------------------------------------------

_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string, as time.ParseDuration reads it ("25" alone is an error)."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"invalid duration {text!r}")
    body = text.lstrip("+-")
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _GO_PART.match(body, pos)
        if not match:
            raise ValueError(f'time: missing unit in duration "{text}"')
        total += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * total


def format_go_duration(seconds: int) -> str:
    """time.Duration(seconds * time.Second).String() for whole seconds."""
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


# --- keys and devices -----------------------------------------------------------


def is_key(value) -> bool:
    if not isinstance(value, str) or len(value) != 44:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def url_safe(key: str) -> str:
    return key.replace("+", "-").replace("/", "_")


def key_from_url(text: str) -> str | None:
    """The standard key of a URL-safe one with padding; None when malformed (wgrest answers 404 then)."""
    try:
        raw = base64.urlsafe_b64decode(text.encode())
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32 or url_safe(base64.b64encode(raw).decode()) != text:
        return None
    return base64.b64encode(raw).decode()


class DeviceError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def wg(*argv, stdin: str | None = None, check: bool = True) -> str:
    proc = subprocess.run(["wg", *argv], input=stdin, capture_output=True, text=True, check=False)
    if check and proc.returncode:
        raise DeviceError(500, "internal_error", "wireguard error", proc.stderr.strip())
    return proc.stdout


def device_names() -> list[str]:
    """Devices of this network namespace (wireguard-go's socket list is machine-wide)."""
    names = wg("show", "interfaces").split()
    return sorted(n for n in names if os.path.exists(f"/sys/class/net/{n}"))


@dataclass
class PeerState:
    public_key: str
    preshared_key: str | None
    endpoint: str
    allowed_ips: list
    last_handshake: int
    rx: int
    tx: int
    keepalive: int


@dataclass
class DeviceState:
    name: str
    private_key: str
    public_key: str
    listen_port: int
    fwmark: int
    peers: list = field(default_factory=list)


def read_device(name: str) -> DeviceState:
    if name not in device_names():
        raise DeviceError(404, "device_not_found", "device not found")
    lines = wg("show", name, "dump").splitlines()
    priv, pub, port, fwmark = lines[0].split("\t")[:4]
    peers = []
    for line in lines[1:]:
        key, psk, endpoint, allowed, hs, rx, tx, keepalive = line.split("\t")[:8]
        peers.append(PeerState(key, None if psk == "(none)" else psk, "" if endpoint == "(none)" else endpoint,
                               [] if allowed == "(none)" else allowed.split(","), int(hs), int(rx), int(tx),
                               0 if keepalive == "off" else int(keepalive)))
    return DeviceState(name, "" if priv == "(none)" else priv, "" if pub == "(none)" else pub, int(port),
                       0 if fwmark == "off" else int(fwmark, 0), peers)


def peer_json(peer: PeerState) -> dict:
    data = {
        "public_key": peer.public_key,
        "url_safe_public_key": url_safe(peer.public_key),
        "allowed_ips": peer.allowed_ips,
        "last_handshake_time": ZERO_TIME if not peer.last_handshake else
        dt.datetime.fromtimestamp(peer.last_handshake, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "persistent_keepalive_interval": format_go_duration(peer.keepalive),
        "endpoint": peer.endpoint,
        "receive_bytes": peer.rx,
        "transmit_bytes": peer.tx,
    }
    if peer.preshared_key:
        data["preshared_key"] = peer.preshared_key
    return data


# --- the server -----------------------------------------------------------------


@dataclass
class Settings:
    listen: str = "127.0.0.1:8000"
    config_dirs: list = field(default_factory=lambda: ["/etc/wireguard"])
    dump_interval: float = 600.0
    static_auth_token: str = ""


class Wgrest:
    """State shared by the request threads: settings, one lock over device changes, the dumper."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.lock = threading.RLock()
        self.stop = threading.Event()

    # wgrest writes <dir>/<name>.conf from `wg showconf`: no Address, DNS, MTU, Table or hooks.
    def dump_path(self, name: str) -> str:
        for directory in self.settings.config_dirs:
            path = os.path.join(directory, f"{name}.conf")
            if os.path.exists(path):
                return path
        return os.path.join(self.settings.config_dirs[0], f"{name}.conf")

    def dump(self, name: str) -> None:
        with self.lock:
            try:
                text = wg("showconf", name)
            except DeviceError:
                return
            write_file(self.dump_path(name), text)

    def dump_all(self) -> None:
        with self.lock:
            for name in device_names():
                self.dump(name)

    def dump_loop(self) -> None:
        while not self.stop.wait(self.settings.dump_interval):
            self.dump_all()

    def file_settings(self, name: str) -> dict:
        """What a device GET shows beyond the device: read from the file in the config dir (none after a dump)."""
        found: dict = {"addresses": [], "dns": [], "mtu": 0, "table": "", "pre_up": [], "post_up": [],
                       "pre_down": [], "post_down": []}
        keys = {"address": "addresses", "dns": "dns", "preup": "pre_up", "postup": "post_up",
                "predown": "pre_down", "postdown": "post_down"}
        try:
            with open(self.dump_path(name), encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return found
        for line in lines:
            if line.strip().lower() == "[peer]":
                break
            key, _unused, value = line.partition("=")
            key = key.strip().lower()
            if key in ("address", "dns"):
                found[keys[key]].extend(v.strip() for v in value.split(",") if v.strip())
            elif key in keys:
                found[keys[key]].append(value.strip())
            elif key == "mtu":
                found["mtu"] = int(value)
            elif key == "table":
                found["table"] = value.strip()
        return found


def write_file(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(text)
    os.replace(tmp, path)


class Handler(BaseHTTPRequestHandler):
    server_version = "wgrest"
    protocol_version = "HTTP/1.1"
    app: Wgrest  # set on the subclass made by make_server

    def log_message(self, format, *args):
        return

    # -- plumbing
    def send(self, status: int, body=None, headers: dict | None = None, text: str | None = None) -> None:
        payload = text.encode() if text is not None else b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=UTF-8" if text is not None else "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def error(self, status: int, code: str, message: str, detail: str | None = None) -> None:
        body = {"code": code, "message": message}
        if detail:
            body["detail"] = detail
        self.send(status, body)

    def read_body(self) -> dict | None:
        """The JSON body, or {} when it was not sent as JSON: wgrest ignores such bodies silently."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not (self.headers.get("Content-Type") or "").lower().startswith("application/json"):
            return {}
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def authorized(self) -> bool:
        token = self.app.settings.static_auth_token
        if not token:
            return True  # an empty token turns authentication off
        header = self.headers.get("Authorization")
        if not header:
            self.error(401, "unauthorized", "missing authorization header")
            return False
        if not header.startswith("Bearer "):  # exactly "Bearer ": a lowercase scheme is refused
            self.error(401, "unauthorized", "invalid authorization format")
            return False
        if header[len("Bearer "):] != token:
            self.error(401, "unauthorized", "invalid token")
            return False
        return True

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET,POST,PATCH,DELETE,OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Authorization,Content-Type")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PUT(self):
        self.route("PUT")

    def route(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        query = urllib.parse.parse_qs(url.query)
        if method == "GET" and path == "/version":
            return self.send(200, {"wgrest": "", "wireguard": wg("--version", check=False).strip()})
        if method == "GET" and path == "/openapi.json":
            return self.send(200, {"openapi": "3.0.0", "info": {"title": "wgrest", "version": "2.0.0"}})
        if method == "GET" and path.startswith("/docs"):
            return self.send(200, text="<html><body>wgrest API docs</body></html>")
        if path.rstrip("/") == "/devices":
            self.send_response(307)
            self.send_header("Location", "/v1/devices/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] != ["v1", "devices"] or len(parts) > 5 or (len(parts) > 3 and parts[3] not in ("peers", "up", "down")):
            return self.send(404, text=f"Cannot {method} {path}")
        routes = {
            (2, "GET"): self.list_devices, (2, "POST"): self.create_device,
            (3, "GET"): self.get_device, (3, "PATCH"): self.update_device, (3, "DELETE"): self.delete_device,
            (4, "GET"): self.list_peers, (4, "POST"): self.create_peer,
            (5, "GET"): self.get_peer, (5, "PATCH"): self.update_peer, (5, "DELETE"): self.delete_peer,
        }
        if len(parts) == 4 and parts[3] in ("up", "down"):
            handler = self.up_down if method == "POST" else None
        elif len(parts) >= 4 and parts[3] != "peers":
            handler = None
        else:
            handler = routes.get((len(parts), method))
        if handler is None:
            return self.send(404, text=f"Cannot {method} {path}")
        if not self.authorized():
            return None
        try:
            return handler(parts, query)
        except DeviceError as exc:
            return self.error(exc.status, exc.code, exc.message, exc.detail)

    # -- pagination: 0-based pages, GitHub-style Link header, no total count
    def paginate(self, items: list, query: dict) -> tuple[list, dict]:
        try:
            page = max(0, int(query.get("page", ["0"])[0]))
            per_page = int(query.get("per_page", [str(DEFAULT_PER_PAGE)])[0])
        except ValueError:
            raise DeviceError(400, "invalid_request", "invalid pagination") from None
        if per_page <= 0:
            per_page = DEFAULT_PER_PAGE
        last = max(0, math.ceil(len(items) / per_page) - 1)
        base = urllib.parse.urlsplit(self.path).path
        extra = {k: v[0] for k, v in query.items() if k not in ("page", "per_page")}

        def link(number, rel):
            params = urllib.parse.urlencode({**extra, "page": number, "per_page": per_page})
            return f'<{base}?{params}>; rel="{rel}"'

        links = [link(0, "first"), link(last, "last")]
        if page > 0:
            links.append(link(min(page - 1, last), "prev"))
        if page < last:
            links.append(link(page + 1, "next"))
        return items[page * per_page:(page + 1) * per_page], {"Link": ", ".join(links)}

    # -- devices
    def device_json(self, state: DeviceState) -> dict:
        extra = self.app.file_settings(state.name)
        return {
            "name": state.name, "listen_port": state.listen_port, "public_key": state.public_key,
            "private_key": state.private_key, "firewall_mark": state.fwmark, **extra, "running": True,
            "peers_count": len(state.peers), "total_receive_bytes": sum(p.rx for p in state.peers),
            "total_transmit_bytes": sum(p.tx for p in state.peers),
        }

    def list_devices(self, parts, query):
        with self.app.lock:
            devices = [self.device_json(read_device(n)) for n in device_names()]
        page, headers = self.paginate(devices, query)
        self.send(200, page, headers)

    def get_device(self, parts, query):
        with self.app.lock:
            self.send(200, self.device_json(read_device(parts[2])))

    def create_device(self, parts, query):
        body = self.read_body() or {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise DeviceError(400, "invalid_request", "name is required")
        if name in device_names():
            raise DeviceError(409, "device_exists", "device already exists")
        # wgctrl cannot create a Linux interface.
        raise DeviceError(500, "internal_error", "device does not exist and cannot be created")

    def update_device(self, parts, query):
        name = parts[2]
        body = self.read_body()
        try:
            if body is None:
                raise DeviceError(404, "device_not_found", "invalid request")
            with self.app.lock:
                read_device(name)
                args = []
                if body.get("listen_port") is not None:
                    args += ["listen-port", str(int(body["listen_port"]))]
                if body.get("firewall_mark") is not None:
                    args += ["fwmark", str(int(body["firewall_mark"]))]
                stdin = None
                if body.get("private_key"):
                    if not is_key(body["private_key"]):
                        raise DeviceError(404, "device_not_found", "invalid private key")
                    args += ["private-key", "/dev/stdin"]
                    stdin = body["private_key"] + "\n"
                if args:
                    wg("set", name, *args, stdin=stdin)
                # Device PATCH writes the file with wgrest's own renderer: showconf plus the given addresses.
                text = wg("showconf", name)
                addresses = body.get("addresses") or []
                if addresses:
                    text = text.replace("[Interface]\n", "[Interface]\nAddress = " + ", ".join(addresses) + "\n", 1)
                write_file(self.app.dump_path(name), text)
                state = read_device(name)
        except DeviceError as exc:
            raise DeviceError(404, exc.code, exc.message, exc.detail) from None  # any PATCH failure answers 404
        self.send(200, self.device_json(state))

    def delete_device(self, parts, query):
        raise DeviceError(404, "device_not_found", "device cannot be deleted")

    def up_down(self, parts, query):
        name, action = parts[2], parts[3]
        proc = subprocess.run(["wg-quick", action, name], capture_output=True, text=True, check=False)
        if proc.returncode:
            raise DeviceError(500, "internal_error", f"wg-quick {action} failed", proc.stderr.strip()[-500:])
        self.send(200, {"status": action, "interface": name})

    # -- peers
    def list_peers(self, parts, query):
        with self.app.lock:
            peers = read_device(parts[2]).peers
        needle = query.get("q", [""])[0]
        if needle:
            peers = [p for p in peers if needle in p.public_key or needle in p.endpoint
                     or any(needle in ip for ip in p.allowed_ips)]
        sort = query.get("sort", [""])[0]
        sort_keys = {"pub_key": lambda p: p.public_key, "receive_bytes": lambda p: p.rx,
                     "transmit_bytes": lambda p: p.tx, "total_bytes": lambda p: p.rx + p.tx,
                     "last_handshake_time": lambda p: p.last_handshake}
        if sort:
            func = sort_keys.get(sort.lstrip("-"))
            if func is None:
                raise DeviceError(400, "invalid_request", f"unknown sort field {sort}")
            peers = sorted(peers, key=func, reverse=sort.startswith("-"))
        page, headers = self.paginate([peer_json(p) for p in peers], query)
        self.send(200, page, headers)

    def find_peer(self, name: str, url_key: str) -> PeerState:
        state = read_device(name)
        key = key_from_url(url_key)
        for peer in state.peers:
            if peer.public_key == key:
                return peer
        raise DeviceError(404, "peer_not_found", "peer not found")

    def get_peer(self, parts, query):
        with self.app.lock:
            self.send(200, peer_json(self.find_peer(parts[2], parts[4])))

    def peer_args(self, body: dict, patch: bool) -> tuple[list, str | None]:
        args, stdin = [], None
        keepalive = body.get("persistent_keepalive_interval")
        if keepalive is not None:
            try:
                seconds = parse_go_duration(keepalive)
            except ValueError as exc:
                # The real wgrest answers 500 here, not 400 (seen with v2.0.0-alpha.1).
                raise DeviceError(500, "internal_error", f"invalid keepalive interval: {exc}") from None
            args += ["persistent-keepalive", str(int(seconds)) if seconds else "off"]
        allowed = body.get("allowed_ips")
        if allowed:  # an empty list leaves them as they are (PATCH replaces only with a non-empty list)
            args += ["allowed-ips", ",".join(allowed)]
        if body.get("endpoint"):
            args += ["endpoint", body["endpoint"]]
        if body.get("preshared_key"):
            if not is_key(body["preshared_key"]):
                raise DeviceError(500, "internal_error", "invalid preshared key")
            args += ["preshared-key", "/dev/stdin"]
            stdin = body["preshared_key"] + "\n"
        return args, stdin

    def create_peer(self, parts, query):
        name = parts[2]
        body = self.read_body()
        if body is None:
            raise DeviceError(400, "invalid_request", "invalid request body")
        with self.app.lock:
            read_device(name)
            private_key = None
            public_key = body.get("public_key")
            if not public_key:
                # Without public_key the server makes a key pair and ignores any private_key sent.
                private_key = wg("genkey").strip()
                public_key = wg("pubkey", stdin=private_key + "\n").strip()
            elif not is_key(public_key):
                raise DeviceError(500, "internal_error", "internal error", "wgtypes: failed to parse base64-encoded key")
            args, stdin = self.peer_args(body, patch=False)
            wg("set", name, "peer", public_key, *args, stdin=stdin)
            self.app.dump(name)
        # The answer is built from the request, not read back from the device.
        answer = {
            "public_key": public_key,
            "url_safe_public_key": url_safe(public_key),
            "allowed_ips": body.get("allowed_ips"),
            "last_handshake_time": ZERO_TIME,
            "persistent_keepalive_interval": body.get("persistent_keepalive_interval") or "0s",
            "endpoint": body.get("endpoint") or "",
            "receive_bytes": 0,
            "transmit_bytes": 0,
        }
        if body.get("preshared_key"):
            answer["preshared_key"] = body["preshared_key"]
        if private_key:
            answer["private_key"] = private_key
        self.send(201, answer)

    def update_peer(self, parts, query):
        name = parts[2]
        body = self.read_body()
        try:
            if body is None:
                raise DeviceError(404, "peer_not_found", "invalid request body")
            with self.app.lock:
                peer = self.find_peer(name, parts[4])
                args, stdin = self.peer_args(body, patch=True)
                if args:
                    # Replace (not add to) the allowed IPs, as wgctrl's ReplaceAllowedIPs does.
                    if "allowed-ips" in args:
                        wg("set", name, "peer", peer.public_key, "allowed-ips", "")
                    wg("set", name, "peer", peer.public_key, *args, stdin=stdin)
                self.app.dump(name)
                updated = self.find_peer(name, parts[4])
        except DeviceError as exc:
            raise DeviceError(404, exc.code, exc.message, exc.detail) from None  # any PATCH failure answers 404
        self.send(200, peer_json(updated))

    def delete_peer(self, parts, query):
        name = parts[2]
        with self.app.lock:
            peer = self.find_peer(name, parts[4])
            wg("set", name, "peer", peer.public_key, "remove")
            self.app.dump(name)
        self.send(200, peer_json(peer))


def make_server(settings: Settings) -> tuple[ThreadingHTTPServer, Wgrest]:
    app = Wgrest(settings)
    handler = type("BoundHandler", (Handler,), {"app": app})
    host, _unused, port = settings.listen.rpartition(":")
    httpd = ThreadingHTTPServer((host or "0.0.0.0", int(port)), handler)
    httpd.daemon_threads = True
    return httpd, app


def serve(settings: Settings) -> None:
    """Dump at start, serve, dump every interval and once more on SIGTERM, as wgrest does."""
    import signal

    httpd, app = make_server(settings)
    app.dump_all()
    dumper = threading.Thread(target=app.dump_loop, daemon=True)
    dumper.start()

    def on_term(signum, frame):
        app.stop.set()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        with contextlib.suppress(Exception):
            app.dump_all()
        httpd.server_close()
