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
import itertools
import operator
import re
from dataclasses import dataclass, field

from ._errors import REDACTED, WgValueError, shown
from ._expiry import EXPIRES_COMMENT, check_canonical
from ._keys import check_key

# Linux interface names as wg-quick accepts them. Anchored with \Z: "$" would let a final newline through.
IFNAME_RE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}\Z")
HOOKS = ("pre_up", "post_up", "pre_down", "post_down")
# The comment line that carries a peer's human label; wg-quick ignores it.
NAME_COMMENT = "# Name = "
# Longest label and hook accepted: a file line, not a document.
MAX_LABEL = 256
MAX_HOOK = 4096
# Longest path accepted (Linux PATH_MAX): a longer one cannot be opened anyway.
MAX_PATH = 4096

# What can never be part of a value in a wg-quick file: every character that ends a line for
# someone (str.splitlines() splits on \n \r \v \f \x1c-\x1e \x85 \u2028 \u2029; bash on \n), NUL
# and the other control characters, and lone surrogates (not writable as UTF-8). A tab is allowed
# inside free text (hooks, labels): bash reads it as part of the line.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def is_ifname(value) -> bool:
    """True for a valid interface name (what wg-quick accepts as NAME and NAME.conf)."""
    return isinstance(value, str) and bool(IFNAME_RE.match(value)) and value not in (".", "..")


def check_ifname(option: str, value) -> str:
    if not is_ifname(value):
        raise WgValueError(
            f"{option}: {shown(value)} is not a valid interface name "
            "(1 to 15 of the characters A-Z a-z 0-9 _ = + . -)"
        )
    return value


def check_text(option: str, value, comment_ok: bool = False, secret: bool = False,
               max_len: int | None = None) -> str:
    """``value`` as a single line of text that means the same once written to a wg-quick file.

    The one single-line rule of the collection (database and service settings use it too).
    Refuses line breaks of every kind and control characters (a tab aside); without
    ``comment_ok`` also ``#``, where wg-quick cuts the line, so the value could not be read back;
    with ``max_len``, longer values. A ``secret`` value is never quoted.
    """
    quoted = "(hidden)" if secret else None
    if not isinstance(value, str):
        raise WgValueError(f"{option}: {quoted or shown(value)} is not a string")
    bad = _FORBIDDEN.search(value)
    if bad:
        raise WgValueError(f"{option}: {quoted or shown(value)} holds a line break or control character "
                           f"(U+{ord(bad.group()):04X}); a value must be a single line")
    if not comment_ok and "#" in value:
        raise WgValueError(f"{option}: {quoted or shown(value)} holds '#', where wg-quick cuts the line as a comment")
    if max_len is not None and len(value) > max_len:
        raise WgValueError(f"{option}: {quoted or shown(value)} is longer than {max_len} characters")
    return value


def check_path(option: str, value, comment_ok: bool = True) -> str:
    """A path option (a directory or a file): not empty, one line (:func:`check_text`), at most
    ``MAX_PATH`` characters. Without ``comment_ok`` also no ``#`` (a path that ends up in a hook)."""
    if value == "":
        raise WgValueError(f"{option}: must not be empty")
    return check_text(option, value, comment_ok=comment_ok, max_len=MAX_PATH)


def check_port(option: str, value) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 <= port <= 65535:
        raise WgValueError(f"{option}: {shown(value)} is not a port number (0-65535)")
    return port


def check_int(option: str, value, low: int, high: int) -> int:
    try:
        number = int(str(value), 0) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        number = None
    if isinstance(value, (bool, float)) or number is None or not low <= number <= high:
        raise WgValueError(f"{option}: {shown(value)} is not a whole number from {low} to {high}")
    return number


_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# IPv4 written canonically (no leading zeros): the common case, read without ipaddress.
_IPV4_CIDR = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(3[0-2]|[12]?\d)\Z")
_IPV4_ENDPOINT = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}:([1-9]\d{{0,4}})\Z")
# A DNS name: labels of letters, digits, '-' and '_' (not at either end), dots between, a final dot allowed.
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?\Z")
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")


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
    if "%" in value:
        raise ValueError("zone id")
    net = ipaddress.ip_network(value, strict=False)
    return (net.version, net.network_address.packed, net.prefixlen), str(net)


def normalize_allowed_ips(option: str, values) -> tuple[str, ...]:
    """Masked networks, duplicates dropped, IPv4 before IPv6, then by address. No zone ids: wg refuses them.

    Cached by value: a run reads the same 10,000 peers' networks from the file, the
    device and the task, and builds each peer more than once.
    """
    if isinstance(values, str):
        values = (values,)
    if isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values):
        return _allowed_ips(option, tuple(values))
    return _allowed_ips.__wrapped__(option, values)


@functools.lru_cache(maxsize=1 << 16)
def _allowed_ips(option: str, values) -> tuple[str, ...]:
    nets = set()
    for value in _split_list(option, values):
        try:
            nets.add(_network(value))
        except ValueError:
            raise WgValueError(f"{option}: {shown(value)} is not an IP network in CIDR notation "
                               "(without a %zone)") from None
    return tuple(text for _key, text in sorted(nets))


def normalize_addresses(option: str, values) -> tuple[str, ...]:
    """Interface addresses keep their host bits and their order (the first is the primary)."""
    seen = []
    for value in _split_list(option, values):
        try:
            if "%" in value:
                raise ValueError("zone id")
            iface = ipaddress.ip_interface(value)
        except ValueError:
            raise WgValueError(f"{option}: {shown(value)} is not an IP address with an optional /prefix "
                               "(without a %zone)") from None
        if str(iface) not in seen:
            seen.append(str(iface))
    return tuple(seen)


def normalize_dns(option: str, values) -> tuple[str, ...]:
    """DNS servers (IP addresses) and search domains, as wg-quick tells them apart.

    wg-quick takes a value of digits and dots, or one with a colon, for a server
    and anything else for a search domain; each must then be what it is taken for.
    """
    out = []
    for value in _split_list(option, values):
        if re.match(r"^[0-9.]+\Z", value) or ":" in value:
            try:
                if "%" in value:
                    raise ValueError("zone id")
                text = str(ipaddress.ip_address(value))
            except ValueError:
                raise WgValueError(f"{option}: {shown(value)} is not an IP address (a DNS server)") from None
        elif _DOMAIN.match(value):
            text = value
        else:
            raise WgValueError(f"{option}: {shown(value)} is neither an IP address nor a search domain")
        if text not in out:
            out.append(text)
    return tuple(out)


def normalize_endpoint(option: str, value) -> str | None:
    """``host:port`` with IPv6 in brackets; IP literals in their compressed form, host names in lower case.

    An IPv6 zone id is kept when it names an interface (``[fe80::1%eth0]:51820``).
    """
    if value in (None, "", "(none)"):
        return None
    text = check_text(option, value if isinstance(value, str) else str(value)).strip(" ")
    fast = _IPV4_ENDPOINT.match(text)
    if fast and int(fast.group(5)) <= 65535:
        return text
    match = re.match(r"^\[([^\]]+)\]:(\d{1,5})\Z", text) or re.match(r"^([^:\[\]]+):(\d{1,5})\Z", text)
    if not match:
        raise WgValueError(f"{option}: {shown(value)} is not host:port (IPv6 as [address]:port)")
    host, port = match.group(1), int(match.group(2))
    if not 0 < port <= 65535:
        raise WgValueError(f"{option}: {shown(value)} has no valid port (1-65535)")
    address, _percent, zone = host.partition("%")
    try:
        addr = ipaddress.ip_address(address)
    except ValueError:
        if zone or not _DOMAIN.match(host) or host.endswith("."):
            raise WgValueError(f"{option}: {shown(value)} does not name a valid host") from None
        return f"{host.lower()}:{port}"
    if addr.version == 6:
        if zone and not is_ifname(zone):
            raise WgValueError(f"{option}: {shown(value)} has a zone id that is not an interface name")
        return f"[{addr}{'%' + zone if zone else ''}]:{port}"
    if zone:
        raise WgValueError(f"{option}: {shown(value)} has a zone id on an IPv4 address")
    return f"{addr}:{port}"


def _split_list(option: str, values) -> list[str]:
    """A list option's items: comma-separated parts of each string, stripped of spaces, empty ones dropped."""
    if values is None:
        return []
    if isinstance(values, (str, int)):
        values = [values]
    elif not isinstance(values, (list, tuple)):
        raise WgValueError(f"{option}: {shown(values)} is not a list")
    out = []
    for item in values:
        if not isinstance(item, str):
            if isinstance(item, (dict, list, tuple, bool)) or item is None:
                raise WgValueError(f"{option}: {shown(item)} is not a string")
            item = str(item)
        check_text(option, item)
        out.extend(part.strip(" \t") for part in item.split(",") if part.strip(" \t"))
    return out


def _free_text(option: str, value, limit: int, comment_ok: bool) -> str | None:
    """A hook or a label: one line of at most ``limit`` characters, spaces at either end dropped."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    text = check_text(option, value, comment_ok=comment_ok).strip(" \t")
    if len(text) > limit:
        raise WgValueError(f"{option}: {shown(value)} is longer than {limit} characters")
    return text or None


def check_unique_allowed_ips(peers, option: str = "peers") -> None:
    """Refuse two peers with the same allowed network: WireGuard gives it to one of them only,
    so the other would differ from the file forever."""
    owner: dict = {}
    for peer in peers:
        for net in peer.allowed_ips:
            other = owner.setdefault(net, peer.public_key)
            if other != peer.public_key:
                raise WgValueError(
                    f"{option}: {net} is in the allowed IPs of two peers, {other} and {peer.public_key}; "
                    "WireGuard routes a network to one peer only"
                )


@dataclass(frozen=True)
class Peer:
    public_key: str
    allowed_ips: tuple = ()
    endpoint: str | None = None
    preshared_key: str | None = field(default=None, repr=False)
    persistent_keepalive: int = 0
    name: str | None = None
    # When the peer is revoked (canonical UTC text, ``_expiry``); kept as a comment line, as the label is.
    expires: str | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        check_key("public_key", self.public_key)
        set_(self, "expires", check_canonical("expires", self.expires))
        if self.preshared_key is not None:
            check_key("preshared_key", self.preshared_key, secret=True)
        set_(self, "allowed_ips", normalize_allowed_ips("allowed_ips", self.allowed_ips))
        set_(self, "endpoint", normalize_endpoint("endpoint", self.endpoint))
        keepalive = self.persistent_keepalive
        if keepalive in (None, "off"):
            keepalive = 0
        set_(self, "persistent_keepalive", check_int("persistent_keepalive", keepalive, 0, 65535))
        if self.name is not None:
            # A label is a comment line of its own: '#' is fine there, a line break never.
            set_(self, "name", _free_text("name", self.name, MAX_LABEL, comment_ok=True))

    def replace(self, **changes) -> Peer:
        return dataclasses.replace(self, **changes)

    def to_dict(self, redact: bool = True) -> dict:
        data = dataclasses.asdict(self)
        data["allowed_ips"] = list(self.allowed_ips)
        if redact and self.preshared_key:
            data["preshared_key"] = REDACTED
        return data


_PUBLIC_KEY = operator.attrgetter("public_key")


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
        set_(self, "dns", normalize_dns("dns", self.dns))
        if self.mtu in (0, "0"):
            set_(self, "mtu", None)
        elif self.mtu is not None:
            set_(self, "mtu", check_int("mtu", self.mtu, 576, 65535))
        if self.table is not None:
            table = self.table if isinstance(self.table, str) else str(check_int("table", self.table, 0, 0xFFFFFFFF))
            table = check_text("table", table).strip(" \t")
            if table and not _TABLE.match(table):
                raise WgValueError(f"table: {shown(self.table)} is not off, auto, a number or a table name")
            set_(self, "table", None if table in ("", "auto") else table)
        for hook in HOOKS:
            value = getattr(self, hook)
            if value is None:
                value = ()
            elif isinstance(value, str):
                value = (value,)
            elif not isinstance(value, (list, tuple)):
                raise WgValueError(f"{hook}: {shown(value)} is not a list of commands")
            cmds = (_free_text(hook, cmd, MAX_HOOK, comment_ok=False) for cmd in value)
            set_(self, hook, tuple(c for c in cmds if c))
        if not isinstance(self.save_config, bool):
            raise WgValueError(f"save_config: {shown(self.save_config)} is not true or false")
        peers = tuple(self.peers)
        # Checked by C loops first (a restore builds 10,000 peers); the Python loop only finds what is wrong.
        if not all(map(isinstance, peers, itertools.repeat(Peer))) or \
                len(set(map(_PUBLIC_KEY, peers))) != len(peers):
            seen = set()
            for peer in peers:
                if not isinstance(peer, Peer):
                    raise WgValueError(f"peers: {shown(peer)} is not a peer")
                if peer.public_key in seen:
                    raise WgValueError(f"peers: public key {peer.public_key} appears twice")
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
# bash's [[:space:]] in the C locale wg-quick runs in, less the newline that ends each line; also
# what wg's own parser drops from a line wherever it stands.
_SPACE = " \t\v\f\r"
_DROP_SPACE = str.maketrans("", "", _SPACE)
_ANY_SPACE = re.compile("[ \t\v\f\r]")
_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}\Z")
_WG_QUICK_ONLY = ("address", "dns", "mtu", "table", *HOOKS, "save_config")


def parse(text: str, source: str = "<config>") -> Interface:
    """Parse a wg-quick file as wg-quick and ``wg setconf`` read it.

    Lines end at ``\n`` only (bash ``read``), not at whatever else
    ``str.splitlines()`` takes for a line break; ``#`` starts a comment anywhere
    on a line. wg-quick's own keys (Address, DNS, MTU, Table, hooks, SaveConfig)
    are trimmed at both ends, as wg-quick trims them; the others go to ``wg``,
    which drops every space in a line. Keys are case-insensitive, list keys may
    repeat and hold comma-separated values. The ``# Name =`` comment inside a
    [Peer] section is kept as that peer's label, ``# Expires =`` as its expiry. Errors name the file and line
    but never quote a line: any line may hold a key.
    """
    iface: dict = {}
    peers: list[tuple[int, dict]] = []
    section = None
    current: dict = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(_SPACE)
        if section == "peer" and line[:8].lower() == "# name =":
            current["name"] = line.split("=", 1)[1]
            continue
        if section == "peer" and line[:11].lower() == "# expires =":
            current["expires"] = line.split("=", 1)[1].strip(_SPACE)
            continue
        stripped = line.split("#", 1)[0].strip(_SPACE)
        if not stripped:
            continue
        if stripped.startswith("["):
            header = stripped.lower()
            if header == "[interface]":
                if section is not None or iface:
                    raise WgValueError(f"{source}, line {lineno}: only one [Interface] section is allowed, at the top")
                section, current = "interface", iface
            elif header == "[peer]":
                if section is None:
                    raise WgValueError(f"{source}, line {lineno}: [Peer] before [Interface]")
                current = {}
                peers.append((lineno, current))
                section = "peer"
            else:
                raise WgValueError(f"{source}, line {lineno}: unknown section (only [Interface] and [Peer] exist)")
            continue
        key, equals, value = stripped.partition("=")
        key, value = key.strip(_SPACE), value.strip(_SPACE)
        table = _PEER_KEYS if section == "peer" else _INTERFACE_KEYS
        entry = table.get(key.lower())
        if entry is None or entry[0] not in _WG_QUICK_ONLY:
            # What wg reads: the line without any space.
            if entry is None:
                entry = table.get(key.translate(_DROP_SPACE).lower())
            if _ANY_SPACE.search(value):
                value = value.translate(_DROP_SPACE)
        if not equals:
            raise WgValueError(f"{source}, line {lineno}: the line is not 'Key = Value'")
        if entry is None or (entry[0] in _WG_QUICK_ONLY and section != "interface"):
            shown_key = f"unknown key {key!r}" if _KEY_NAME.match(key) else "a key that is not a key name"
            raise WgValueError(f"{source}, line {lineno}: {shown_key} in [{(section or 'no section').capitalize()}]")
        if section is None:
            raise WgValueError(f"{source}, line {lineno}: {key!r} outside of a section")
        name, repeatable = entry
        if repeatable:
            # The model splits list values at commas (hooks are one command a line).
            current.setdefault(name, []).append(value)
        else:
            current[name] = value
    if section is None:
        raise WgValueError(f"{source}: no [Interface] section")
    try:
        if "save_config" in iface:
            iface["save_config"] = _parse_bool(iface["save_config"])
        interface = Interface(**iface)
    except WgValueError as exc:
        raise WgValueError(f"{source}: {exc}") from None
    built = []
    for lineno, data in peers:
        try:
            if "public_key" not in data:
                raise WgValueError("the section has no PublicKey")
            built.append(Peer(**data))
        except WgValueError as exc:
            raise WgValueError(f"{source}, [Peer] at line {lineno}: {exc}") from None
    try:
        return interface.replace(peers=tuple(built))
    except WgValueError as exc:
        raise WgValueError(f"{source}: {exc}") from None


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise WgValueError(f"save_config: {shown(value)} is not true or false")


def _line(key: str, option: str, value, comment: bool = False) -> str:
    """One line of a file; the last guard against a value that would not read back as one line."""
    text = str(value)
    if _FORBIDDEN.search(text) or (not comment and "#" in text):
        raise WgValueError(f"{option}: {shown(text)} cannot be written to a wg-quick file "
                           "(a line break, control character or '#')")
    return f"{key}{text}" if comment else f"{key} = {text}"


def render(iface: Interface, redact: bool = False, wg_only: bool = False) -> str:
    """The canonical wg-quick file of ``iface``.

    ``wg_only`` leaves out the wg-quick keys (what ``wg-quick strip`` prints),
    for ``wg setconf``/``addconf``; ``redact`` replaces every secret, for diffs.
    Every value goes through a guard that refuses anything that would not read
    back as the same single line.
    """
    out = ["[Interface]"]

    def put(key, option, value):
        if value is not None and value != () and value != "":
            out.append(_line(key, option, value))

    if not wg_only:
        put("Address", "address", ", ".join(iface.address))
    put("ListenPort", "listen_port", iface.listen_port)
    put("FwMark", "fwmark", f"0x{iface.fwmark:x}" if iface.fwmark else None)
    put("PrivateKey", "private_key", (REDACTED if redact else iface.private_key) if iface.private_key else None)
    if not wg_only:
        put("DNS", "dns", ", ".join(iface.dns))
        put("MTU", "mtu", iface.mtu)
        put("Table", "table", iface.table)
        for hook, key in zip(HOOKS, ("PreUp", "PostUp", "PreDown", "PostDown")):
            for cmd in getattr(iface, hook):
                put(key, hook, cmd)
        if iface.save_config:
            put("SaveConfig", "save_config", "true")
    for peer in iface.peers:
        out.extend(render_peer(peer, redact=redact, wg_only=wg_only))
    return "\n".join(out) + "\n"


def render_peer(peer: Peer, redact: bool = False, wg_only: bool = False, explicit: bool = False) -> list[str]:
    """The lines of one [Peer] section, a blank line first.

    ``explicit`` writes keepalive ``off`` too, so that ``wg addconf`` turns it off.
    """
    lines = ["", "[Peer]"]
    if peer.name and not wg_only:
        lines.append(_line(NAME_COMMENT, "name", peer.name, comment=True))
    if peer.expires and not wg_only:
        lines.append(_line(EXPIRES_COMMENT, "expires", peer.expires, comment=True))
    lines.append(_line("PublicKey", "public_key", peer.public_key))
    if peer.preshared_key:
        lines.append(_line("PresharedKey", "preshared_key", REDACTED if redact else peer.preshared_key))
    if peer.allowed_ips:
        lines.append(_line("AllowedIPs", "allowed_ips", ", ".join(peer.allowed_ips)))
    if peer.endpoint:
        lines.append(_line("Endpoint", "endpoint", peer.endpoint))
    if peer.persistent_keepalive:
        lines.append(_line("PersistentKeepalive", "persistent_keepalive", peer.persistent_keepalive))
    elif explicit:
        lines.append("PersistentKeepalive = off")
    return lines
