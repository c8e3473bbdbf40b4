# Private to the wgfleet.wireguard collection: not a public API.
"""A client's side of a peer, made on the controller: its key pair, its wg-quick file and a QR code of it.

Everything here runs where the module runs, which is the controller
(``delegate_to: localhost``): the client's private key is generated and kept in
``dest_dir`` and never goes to a server; only its public key does (wg_peer). The
files are 0600 in a directory made 0700. Messages and the result never hold the
private or preshared key: the result's ``config`` is the file with both redacted.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field

from . import _files, _keys
from ._errors import WgError, WgValueError
from ._values import (
    check_ifname,
    check_int,
    check_path,
    normalize_addresses,
    normalize_allowed_ips,
    normalize_dns,
    normalize_endpoint,
)
from ._wgconf import Interface, Peer, render

FULL_TUNNEL = ("0.0.0.0/0", "::/0")


@dataclass
class ClientRequest:
    name: str
    dest_dir: str
    address: list | None = None
    server_public_key: str | None = None
    endpoint: str | None = None
    dns: list = field(default_factory=list)
    allowed_ips: list = field(default_factory=lambda: list(FULL_TUNNEL))
    persistent_keepalive: int = 25
    mtu: int | None = None
    preshared_key: bool = True
    qr_code: bool = True

    def check(self) -> None:
        """Every value refused here, naming its option, before a file is touched."""
        # The file is NAME.conf, and wg-quick takes only an interface name for NAME.
        check_ifname("name", self.name)
        check_path("dest_dir", self.dest_dir)
        if self.address is None:
            return
        self.address = list(normalize_addresses("address", self.address))
        if not self.address:
            raise WgValueError("address: the client needs at least one address (wg_peer's addresses result)")
        for option in ("server_public_key", "endpoint"):
            if not getattr(self, option):
                raise WgValueError(f"{option}: required to write the client's config (with address)")
        _keys.check_key("server_public_key", self.server_public_key)
        self.endpoint = normalize_endpoint("endpoint", self.endpoint)
        self.dns = list(normalize_dns("dns", self.dns or []))
        self.allowed_ips = list(normalize_allowed_ips("allowed_ips", self.allowed_ips))
        if not self.allowed_ips:
            raise WgValueError("allowed_ips: empty; give the networks the client sends through the tunnel "
                               "(0.0.0.0/0 and ::/0 for a full tunnel)")
        self.persistent_keepalive = check_int("persistent_keepalive", self.persistent_keepalive, 0, 65535)
        if self.mtu is not None:
            self.mtu = check_int("mtu", self.mtu, 1280, 9000)


def _read_or_make_key(path: str, option: str, check_mode: bool) -> tuple[str | None, bool]:
    """The key kept at ``path``, or a new one written there (0600); (key, made)."""
    text = _files.read_raw(path)
    if text is not None:
        try:
            return _keys.check_key(option, text.strip(), secret=True), False
        except WgValueError:
            raise WgValueError(f"{option}: {path} does not hold a WireGuard key; move it away to make a new one") \
                from None
    if check_mode:
        return None, True
    key = _keys.generate_private_key()
    _files.write_atomic(path, key + "\n")
    return key, True


def qr_png(text: str) -> bytes:
    try:
        import segno
    except ImportError:
        raise WgError("qr_code: the Python library segno is not installed on the controller "
                      "(pip install segno), or set qr_code: false") from None
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=6, border=4)
    return out.getvalue()


def _put(path: str, data: bytes, check_mode: bool) -> bool:
    """Write ``data`` to ``path`` (0600) unless it holds exactly that (and is 0600); True when it changed."""
    try:
        with open(path, "rb") as handle:
            same = handle.read() == data
    except FileNotFoundError:
        same = False
    except OSError as exc:
        raise WgError(f"cannot read {path}: {exc.strerror}") from None
    if same and _files.loose_mode(path) is None:
        return False
    if not check_mode:
        _files.write_atomic(path, data)
    return True


def client_config(req: ClientRequest, check_mode: bool) -> dict:
    req.check()
    base = os.path.join(req.dest_dir, req.name)
    result: dict = {"changed": False, "changes": [], "key_file": f"{base}.key"}
    if not check_mode:
        _files.ensure_dir(req.dest_dir)
    with _files.locked(req.dest_dir, req.name):
        private, made = _read_or_make_key(f"{base}.key", "private_key", check_mode)
        if made:
            result["changes"].append("key")
        result["public_key"] = _keys.public_key(private) if private else None
        psk = None
        if req.preshared_key:
            result["preshared_key_file"] = f"{base}.psk"
            psk, made = _read_or_make_key(f"{base}.psk", "preshared_key", check_mode)
            if made:
                result["changes"].append("preshared_key")
        if req.address is not None:
            server = Peer(public_key=req.server_public_key, allowed_ips=tuple(req.allowed_ips), endpoint=req.endpoint,
                          preshared_key=psk, persistent_keepalive=req.persistent_keepalive)
            iface = Interface(private_key=private, address=tuple(req.address), dns=tuple(req.dns), mtu=req.mtu,
                              peers=(server,))
            text = render(iface)
            result["path"] = f"{base}.conf"
            result["config"] = render(iface, redact=True)
            if _put(result["path"], text.encode(), check_mode):
                result["changes"].append("config")
            if req.qr_code:
                result["qr_code"] = f"{base}.png"
                if private is None or _put(result["qr_code"], qr_png(text), check_mode):
                    result["changes"].append("qr_code")
    result["changed"] = bool(result["changes"])
    return result
