# Private to the wgfleet.wireguard collection: not a public API.
"""The one model of a WireGuard interface and its peers, and the wg-quick file format.

Everything that reads or writes interface state (the modules, the PostgreSQL
store, the wgrest-sync daemon, the live device reader) converts to and from
these classes, so that two sources can be compared with ``==`` after
normalization. Values are normalized on construction: CIDRs masked and
sorted, endpoints with bracketed IPv6, keepalive 0 meaning off.
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass, field

from ._errors import WgValueError
from ._keys import REDACTED, check_key

IFNAME_RE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")
HOOKS = ("pre_up", "post_up", "pre_down", "post_down")
# The comment line that carries a peer's human label; wg-quick ignores it.
NAME_COMMENT = "# Name = "


def check_ifname(option: str, value) -> str:
    if not isinstance(value, str) or not IFNAME_RE.match(value) or value in (".", ".."):
        raise WgValueError(
            f"{option}: {value!r} is not a valid interface name "
            "(1 to 15 of the characters A-Z a-z 0-9 _ = + . -)"
        )
    return value


def check_port(option: str, value) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise WgValueError(f"{option}: {value!r} is not a port number (0-65535)")
    return port


def check_int(option: str, value, low: int, high: int) -> int:
    try:
        number = int(str(value), 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, bool) or number is None or not low <= number <= high:
        raise WgValueError(f"{option}: {value!r} is not a whole number from {low} to {high}")
    return number


_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# IPv4 written canonically (no leading zeros): the common case, read without ipaddress.
_IPV4_CIDR = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(3[0-2]|[12]?\d)$")
_IPV4_ENDPOINT = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}:(\d{{1,5}})$")


@functools.lru_cache(maxsize=1 << 16)
def _network(value: str) -> tuple:
    """(sort key, canonical text) of a CIDR. Cached, with a fast path for canonical IPv4:
    a server's 10,000 peers are read from the file, the device and the task on every run."""
    match = _IPV4_CIDR.match(value)
    if match:
        a, b, c, d, prefix = (int(g) for g in match.groups())
        address = (a << 24) | (b << 16) | (c << 8) | d
        if address & ((1 << (32 - prefix)) - 1) == 0:
            return (4, address.to_bytes(4, "big"), prefix), value
    net = ipaddress.ip_network(value, strict=False)
    return (net.version, net.network_address.packed, net.prefixlen), str(net)


def normalize_allowed_ips(option: str, values) -> tuple[str, ...]:
    """Masked networks, duplicates dropped, IPv4 before IPv6, then by address."""
    nets = set()
    for value in _split_list(values):
        try:
            nets.add(_network(value))
        except ValueError:
            raise WgValueError(f"{option}: {value!r} is not an IP network in CIDR notation") from None
    return tuple(text for _key, text in sorted(nets))


def normalize_addresses(option: str, values) -> tuple[str, ...]:
    """Interface addresses keep their host bits and their order (the first is the primary)."""
    seen = []
    for value in _split_list(values):
        try:
            iface = ipaddress.ip_interface(value)
        except ValueError:
            raise WgValueError(f"{option}: {value!r} is not an IP address with an optional /prefix") from None
        if str(iface) not in seen:
            seen.append(str(iface))
    return tuple(seen)


def normalize_endpoint(option: str, value) -> str | None:
    """``host:port`` with IPv6 in brackets; IP literals in their compressed form."""
    if value in (None, "", "(none)"):
        return None
    text = str(value).strip()
    fast = _IPV4_ENDPOINT.match(text)
    if fast and 0 < int(fast.group(5)) <= 65535 and not fast.group(5).startswith("0"):
        return text
    match = re.match(r"^\[([^\]]+)\]:(\d+)$", text) or re.match(r"^([^:\[\]]+):(\d+)$", text)
    if not match:
        raise WgValueError(f"{option}: {value!r} is not host:port (IPv6 as [address]:port)")
    host, port = match.group(1), int(match.group(2))
    if not 0 < port <= 65535:
        raise WgValueError(f"{option}: {value!r} has no valid port (1-65535)")
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        if not re.match(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", host):
            raise WgValueError(f"{option}: {value!r} does not name a valid host") from None
        return f"{host.lower()}:{port}"
    if addr.version == 6:
        return f"[{addr}]:{port}"
    return f"{addr}:{port}"


def _split_list(values) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out = []
    for item in values:
        item = str(item)
        if "," in item:
            out.extend(part.strip() for part in item.split(",") if part.strip())
        elif item.strip():
            out.append(item.strip())
    return out


@dataclass(frozen=True)
class Peer:
    public_key: str
    allowed_ips: tuple = ()
    endpoint: str | None = None
    preshared_key: str | None = field(default=None, repr=False)
    persistent_keepalive: int = 0
    name: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        check_key("public_key", self.public_key)
        if self.preshared_key is not None:
            check_key("preshared_key", self.preshared_key, secret=True)
        set_(self, "allowed_ips", normalize_allowed_ips("allowed_ips", self.allowed_ips))
        set_(self, "endpoint", normalize_endpoint("endpoint", self.endpoint))
        keepalive = self.persistent_keepalive
        set_(self, "persistent_keepalive", 0 if keepalive in (None, "off") else check_int("persistent_keepalive", keepalive, 0, 65535))
        if self.name is not None:
            name = str(self.name)
            if "\n" in name or "\r" in name:
                raise WgValueError(f"name: {name!r} must be a single line")
            set_(self, "name", name.strip() or None)

    def replace(self, **changes) -> Peer:
        return dataclasses.replace(self, **changes)

    def to_dict(self, redact: bool = True) -> dict:
        data = dataclasses.asdict(self)
        data["allowed_ips"] = list(self.allowed_ips)
        if redact and self.preshared_key:
            data["preshared_key"] = REDACTED
        return data


@dataclass(frozen=True)
class Interface:
    """An [Interface] section and its peers. ``peers`` is ordered as in the file."""

    private_key: str | None = field(default=None, repr=False)
    listen_port: int | None = None
    fwmark: int | None = None
    address: tuple = ()
    dns: tuple = ()
    mtu: int | None = None
    table: str | None = None
    pre_up: tuple = ()
    post_up: tuple = ()
    pre_down: tuple = ()
    post_down: tuple = ()
    save_config: bool = False
    peers: tuple = ()

    def __post_init__(self):
        set_ = object.__setattr__
        if self.private_key is not None:
            check_key("private_key", self.private_key, secret=True)
        # 0/auto mean the same as leaving the key out; normalizing them keeps comparisons honest.
        if self.listen_port is not None:
            set_(self, "listen_port", check_port("listen_port", self.listen_port) or None)
        if self.fwmark in ("off", 0):
            set_(self, "fwmark", None)
        elif self.fwmark is not None:
            set_(self, "fwmark", check_int("fwmark", self.fwmark, 1, 0xFFFFFFFF))
        set_(self, "address", normalize_addresses("address", self.address))
        set_(self, "dns", tuple(_split_list(self.dns)))
        if self.mtu in (0, "0"):
            set_(self, "mtu", None)
        elif self.mtu is not None:
            set_(self, "mtu", check_int("mtu", self.mtu, 576, 65535))
        if self.table is not None:
            table = str(self.table).strip()
            if table and not re.match(r"^[A-Za-z0-9_.-]+$", table):
                raise WgValueError(f"table: {self.table!r} is not off, auto, a number or a table name")
            set_(self, "table", None if table in ("", "auto") else table)
        for hook in HOOKS:
            value = getattr(self, hook)
            cmds = [value] if isinstance(value, str) else list(value or ())
            for cmd in cmds:
                if "\n" in cmd:
                    raise WgValueError(f"{hook}: {cmd!r} must be a single line")
            set_(self, hook, tuple(c.strip() for c in cmds if c.strip()))
        peers = tuple(self.peers)
        seen = set()
        for peer in peers:
            if peer.public_key in seen:
                raise WgValueError(f"peers: public key {peer.public_key!r} appears twice")
            seen.add(peer.public_key)
        set_(self, "peers", peers)

    def replace(self, **changes) -> Interface:
        return dataclasses.replace(self, **changes)

    def settings(self) -> dict:
        """The interface settings without peers, for comparisons and reports."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "peers"}

    def peer_map(self) -> dict:
        return {p.public_key: p for p in self.peers}


# Keys of each section: file spelling -> (model field, repeatable).
_INTERFACE_KEYS = {
    "privatekey": ("private_key", False),
    "listenport": ("listen_port", False),
    "fwmark": ("fwmark", False),
    "address": ("address", True),
    "dns": ("dns", True),
    "mtu": ("mtu", False),
    "table": ("table", False),
    "preup": ("pre_up", True),
    "postup": ("post_up", True),
    "predown": ("pre_down", True),
    "postdown": ("post_down", True),
    "saveconfig": ("save_config", False),
}
_PEER_KEYS = {
    "publickey": ("public_key", False),
    "presharedkey": ("preshared_key", False),
    "allowedips": ("allowed_ips", True),
    "endpoint": ("endpoint", False),
    "persistentkeepalive": ("persistent_keepalive", False),
}
_SECRET_FIELDS = ("private_key", "preshared_key")


def parse(text: str, source: str = "<config>") -> Interface:
    """Parse a wg-quick file as wg-quick and ``wg setconf`` read it.

    Keys are case-insensitive, ``#`` starts a comment anywhere on a line,
    list keys may repeat and hold comma-separated values. The ``# Name =``
    comment inside a [Peer] section is kept as that peer's label.
    Any other key, or a key outside a section, is an error naming the line.
    """
    iface: dict = {}
    peers: list[dict] = []
    section = None
    current: dict = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{source}, line {lineno}"
        stripped_raw = raw.strip()
        if section == "peer" and stripped_raw.lower().startswith("# name ="):
            current["name"] = stripped_raw.split("=", 1)[1].strip()
            continue
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            header = line.lower()
            if header == "[interface]":
                if section is not None or iface:
                    raise WgValueError(f"{where}: only one [Interface] section is allowed, at the top")
                section, current = "interface", iface
            elif header == "[peer]":
                if section is None:
                    raise WgValueError(f"{where}: [Peer] before [Interface]")
                current = {}
                peers.append(current)
                section = "peer"
            else:
                raise WgValueError(f"{where}: unknown section {line!r}")
            continue
        if "=" not in line:
            raise WgValueError(f"{where}: {line!r} is not 'Key = Value'")
        key, value = (part.strip() for part in line.split("=", 1))
        if section is None:
            raise WgValueError(f"{where}: {key!r} outside of a section")
        table = _INTERFACE_KEYS if section == "interface" else _PEER_KEYS
        entry = table.get(key.lower())
        if entry is None:
            raise WgValueError(f"{where}: unknown key {key!r} in [{section.capitalize()}]")
        name, repeatable = entry
        if repeatable:
            current.setdefault(name, []).extend(_split_list(value) if name not in HOOKS else [value])
        else:
            current[name] = value
    if section is None:
        raise WgValueError(f"{source}: no [Interface] section")
    try:
        if "save_config" in iface:
            iface["save_config"] = _parse_bool(iface["save_config"])
        built = [Peer(**p) if "public_key" in p else _missing_pubkey(source) for p in peers]
        return Interface(peers=tuple(built), **iface)
    except WgValueError as exc:
        raise WgValueError(f"{source}: {exc}") from None


def _missing_pubkey(source):
    raise WgValueError("a [Peer] section has no PublicKey")


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise WgValueError(f"SaveConfig: {value!r} is not true or false")


def render(iface: Interface, redact: bool = False, wg_only: bool = False) -> str:
    """The canonical wg-quick file of ``iface``.

    ``wg_only`` leaves out the wg-quick keys (what ``wg-quick strip`` prints),
    for ``wg setconf``/``addconf``; ``redact`` replaces every secret, for diffs.
    """
    out = ["[Interface]"]

    def put(key, value):
        if value is not None and value != () and value != "":
            out.append(f"{key} = {value}")

    if not wg_only:
        put("Address", ", ".join(iface.address))
    put("ListenPort", iface.listen_port)
    put("FwMark", f"0x{iface.fwmark:x}" if iface.fwmark else None)
    put("PrivateKey", (REDACTED if redact else iface.private_key) if iface.private_key else None)
    if not wg_only:
        put("DNS", ", ".join(iface.dns))
        put("MTU", iface.mtu)
        put("Table", iface.table)
        for hook, key in zip(HOOKS, ("PreUp", "PostUp", "PreDown", "PostDown"), strict=True):
            for cmd in getattr(iface, hook):
                put(key, cmd)
        if iface.save_config:
            put("SaveConfig", "true")
    for peer in iface.peers:
        out.extend(render_peer(peer, redact=redact, wg_only=wg_only))
    return "\n".join(out) + "\n"


def render_peer(peer: Peer, redact: bool = False, wg_only: bool = False, explicit: bool = False) -> list[str]:
    """The lines of one [Peer] section, a blank line first.

    ``explicit`` writes keepalive ``off`` too, so that ``wg addconf`` turns it off.
    """
    lines = ["", "[Peer]"]
    if peer.name and not wg_only:
        lines.append(NAME_COMMENT + peer.name)
    lines.append(f"PublicKey = {peer.public_key}")
    if peer.preshared_key:
        lines.append(f"PresharedKey = {REDACTED if redact else peer.preshared_key}")
    if peer.allowed_ips:
        lines.append(f"AllowedIPs = {', '.join(peer.allowed_ips)}")
    if peer.endpoint:
        lines.append(f"Endpoint = {peer.endpoint}")
    if peer.persistent_keepalive:
        lines.append(f"PersistentKeepalive = {peer.persistent_keepalive}")
    elif explicit:
        lines.append("PersistentKeepalive = off")
    return lines
