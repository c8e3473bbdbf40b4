# Private to the wgfleet.wireguard collection: not a public API.
"""The one model of a WireGuard interface and its peers, its settings' registry, and the wg-quick file format.

Everything that reads or writes interface state (the modules, the PostgreSQL
store, the wgrest-sync daemon, the live device reader) converts to and from
these classes, so that two sources can be compared with ``==`` after
normalization. Values are normalized on construction: CIDRs masked and
sorted, endpoints with bracketed IPv6, keepalive 0 meaning off.

Each setting is declared once, as its field's :class:`Setting`: its check, its
wg-quick key, who applies it, how the device and wgrest show it, whether the
store keeps it and the module option that sets it. The parser's and renderer's
key tables here, the planners' setting lists, the store's columns and digest
inputs, the wgrest mapping and the modules' options are derived from it.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import operator
import re
from dataclasses import dataclass, field
from typing import Callable

from . import _values as v
from ._errors import REDACTED, WgValueError, shown
from ._expiry import EXPIRES_COMMENT, check_canonical, parse_canonical
from ._keys import check_key

HOOKS = ("pre_up", "post_up", "pre_down", "post_down")
# The comment line that carries a peer's human label; wg-quick ignores it.
NAME_COMMENT = "# Name = "


@dataclass(frozen=True)
class Setting:
    """What the collection knows of one setting of the model, declared once, on its field."""

    # (option, value) -> the value normalized; raises WgValueError naming the option.
    check: Callable
    # Its key in a wg-quick file, as wg-quick spells it; or the comment line that carries it (wg-quick ignores it).
    key: str | None = None
    comment: str | None = None
    # A list key: it may be given on several lines, whose values add up; each item on a line of its own when
    # ``per_line`` (a hook's commands), else joined with commas.
    repeatable: bool = False
    per_line: bool = False
    # Who applies it: None, wg (on the live device); "up", only wg-quick when it brings the interface up (a
    # change restarts it); "down", wg-quick when it takes it down.
    wg_quick: str | None = None
    # How the running device shows it: its column in ``wg show dump`` (the interface's line or a peer's), or
    # ``ip`` (addresses and MTU).
    dump: int | None = None
    ip: bool = False
    # How wgrest's JSON shows it: (key, wire form); _wgrest reads and writes each wire form.
    wgrest: tuple | None = None
    # The store schema version since which it is stored (a peers column, a key of an interface's settings), or
    # None. A secret is sealed: a peer's in its column, an interface's private key in server_keys.
    stored: int | None = None
    secret: bool = False
    # Its module option (argument spec entry, no_log from ``secret``); None: no option sets it.
    option: dict | None = None
    # Its file text, when not str() of the value (None: no line); what reads it back from a file.
    text: Callable | None = None
    parse_text: Callable | None = None
    # The word that unsets it, taken in any case as wg compares it (the check reads it as nothing); written when
    # unset but asked to be explicit (wg addconf keeps a value a missing key does not clear).
    explicit_off: str | None = None
    # The order of its items is kept but means nothing: reordering is no change.
    unordered: bool = False
    # Unset, the device picks a value of its own (a random port, wg-quick's MTU): what it picked is no drift.
    device_picks: bool = False

    def __post_init__(self):
        check, off = self.check, (self.explicit_off or "").lower()
        if off:  # The check reads the word, in any case and with spaces around it, as nothing.
            object.__setattr__(self, "check", lambda option, value: check(
                option, None if isinstance(value, str) and value.strip(" \t").lower() == off else value))


def setting(default=None, **declared) -> dataclasses.Field:
    """A model field and its :class:`Setting`."""
    meta = Setting(**declared)
    # Called in the model's class bodies, where dataclass() takes it up.
    return field(default=default, repr=not meta.secret, metadata={"setting": meta})  # pylint: disable=invalid-field-call


def _optional_key(option: str, value, secret: bool = False):
    return None if value is None else check_key(option, value, secret=secret)


def _secret_key(option: str, value):
    return _optional_key(option, value, secret=True)


_LIST = {"type": "list", "elements": "str"}


@dataclass(frozen=True)
class Peer:
    # Fields in file order: comment lines first, then the keys.
    public_key: str = setting(check=check_key, key="PublicKey", dump=0, wgrest=("public_key", "text"), stored=1)
    preshared_key: str | None = setting(check=_secret_key, key="PresharedKey", dump=1, secret=True,
                                        wgrest=("preshared_key", "key"), stored=1, option={"type": "str"})
    allowed_ips: tuple = setting((), check=v.normalize_allowed_ips, key="AllowedIPs", repeatable=True, dump=3,
                                 wgrest=("allowed_ips", "list"), stored=1, option=_LIST)
    endpoint: str | None = setting(check=v.normalize_endpoint, key="Endpoint", dump=2, wgrest=("endpoint", "text"),
                                   stored=1, option={"type": "str"})
    persistent_keepalive: int = setting(0, check=v.normalize_keepalive, key="PersistentKeepalive", dump=7,
                                        wgrest=("persistent_keepalive_interval", "duration"), stored=1,
                                        option={"type": "int"}, explicit_off="off")
    name: str | None = setting(check=v.normalize_label, comment=NAME_COMMENT, stored=1, option={"type": "str"})
    # When the peer is revoked (canonical UTC text, ``_expiry``); kept as a comment line, as the label is.
    expires: str | None = setting(check=check_canonical, comment=EXPIRES_COMMENT, stored=4, option={"type": "str"},
                                  parse_text=parse_canonical)

    def __post_init__(self):
        set_ = object.__setattr__
        for name, meta in _PEER_CHECKS:
            set_(self, name, meta(name, getattr(self, name)))

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
    """An [Interface] section and its peers. ``peers`` is ordered as in the file; settings in file order."""

    address: tuple = setting((), check=v.normalize_addresses, key="Address", repeatable=True, wg_quick="up",
                             ip=True, stored=1, option=_LIST, unordered=True)
    listen_port: int | None = setting(check=v.normalize_listen_port, key="ListenPort", dump=2,
                                      wgrest=("listen_port", "int"), stored=1, option={"type": "int"},
                                      device_picks=True)
    fwmark: int | None = setting(check=v.normalize_fwmark, key="FwMark", dump=3, wgrest=("firewall_mark", "int"),
                                 stored=1, option={"type": "int"}, text=lambda mark: f"0x{mark:x}",
                                 explicit_off="off")
    private_key: str | None = setting(check=_secret_key, key="PrivateKey", dump=0, wgrest=("private_key", "text"),
                                      stored=1, secret=True, option={"type": "str"})
    dns: tuple = setting((), check=v.normalize_dns, key="DNS", repeatable=True, wg_quick="up", stored=1,
                         option=_LIST)
    mtu: int | None = setting(check=v.normalize_mtu, key="MTU", wg_quick="up", ip=True, stored=1,
                              option={"type": "int"}, device_picks=True)
    table: str | None = setting(check=v.normalize_table, key="Table", wg_quick="up", stored=1, option={"type": "str"})
    pre_up: tuple = setting((), check=v.normalize_commands, key="PreUp", repeatable=True, per_line=True,
                            wg_quick="up", stored=1, option=_LIST)
    post_up: tuple = setting((), check=v.normalize_commands, key="PostUp", repeatable=True, per_line=True,
                             wg_quick="up", stored=1, option=_LIST)
    pre_down: tuple = setting((), check=v.normalize_commands, key="PreDown", repeatable=True, per_line=True,
                              wg_quick="up", stored=1, option=_LIST)
    post_down: tuple = setting((), check=v.normalize_commands, key="PostDown", repeatable=True, per_line=True,
                               wg_quick="up", stored=1, option=_LIST)
    save_config: bool = setting(False, check=v.check_bool, key="SaveConfig", wg_quick="down", stored=1,
                                text=lambda on: "true" if on else None, parse_text=v.parse_bool)
    peers: tuple = ()

    def __post_init__(self):
        set_ = object.__setattr__
        for name, check in _INTERFACE_CHECKS:
            set_(self, name, check(name, getattr(self, name)))
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
        return {name: getattr(self, name) for name in INTERFACE_SETTINGS}

    def peer_map(self) -> dict:
        return {p.public_key: p for p in self.peers}


def settings_of(model) -> dict[str, Setting]:
    """The settings of a model class, by field name, in field (file) order."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(model) if "setting" in f.metadata}


def option_specs(settings: dict) -> dict:
    """The module options (argument spec entries) of the settings a module option sets."""
    return {name: {**s.option, **({"no_log": True} if s.secret else {})}
            for name, s in settings.items() if s.option is not None}


PEER_SETTINGS = settings_of(Peer)
INTERFACE_SETTINGS = settings_of(Interface)
_PEER_CHECKS = tuple((name, s.check) for name, s in PEER_SETTINGS.items())
_INTERFACE_CHECKS = tuple((name, s.check) for name, s in INTERFACE_SETTINGS.items())


def trusted_peers(values: list) -> list:
    """Peers built from values validated peers had (sealed store rows), without checking them again.

    Each of ``values`` must hold exactly a peer's fields, normalized (what a :class:`Peer` held when it was saved).
    """
    peers = list(map(object.__new__, itertools.repeat(Peer, len(values))))
    # A frozen dataclass without slots keeps its fields in __dict__; set by a C loop (deque consumes the map).
    collections.deque(map(object.__setattr__, peers, itertools.repeat("__dict__"), values), maxlen=0)
    return peers


def with_proved_peers(iface: Interface, peers: list) -> Interface:
    """``iface`` holding ``peers`` without checking them again: a validated interface's peers, proved (a sealed
    snapshot's state digest covers every one), so that a key appears once among them."""
    object.__setattr__(iface, "peers", tuple(peers))
    return iface


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


# --- the wg-quick file ----------------------------------------------------------------------------------------

# Keys of each section: file spelling, lower case -> (model field, repeatable).
_INTERFACE_KEYS = {s.key.lower(): (n, s.repeatable) for n, s in INTERFACE_SETTINGS.items() if s.key}
_PEER_KEYS = {s.key.lower(): (n, s.repeatable) for n, s in PEER_SETTINGS.items() if s.key}
# Comment lines of a [Peer] section that carry a setting: their start (lower case, up to '=') -> field.
_PEER_COMMENTS = {s.comment.split("=")[0].rstrip(" ").lower(): n for n, s in PEER_SETTINGS.items() if s.comment}
# The settings of each section read from their file text by a parse_text of their own: (field, parse_text).
_PARSE_TEXT = {section: tuple((n, s.parse_text) for n, s in settings.items() if s.parse_text)
               for section, settings in (("interface", INTERFACE_SETTINGS), ("peer", PEER_SETTINGS))}
_WG_QUICK_ONLY = frozenset(n for n, s in INTERFACE_SETTINGS.items() if s.wg_quick)
# bash's [[:space:]] in the C locale wg-quick runs in, less the newline that ends each line; also
# what wg's own parser drops from a line wherever it stands.
_SPACE = " \t\v\f\r"
_DROP_SPACE = str.maketrans("", "", _SPACE)
_ANY_SPACE = re.compile("[ \t\v\f\r]")
_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,31}\Z")


def _from_text(section: str, values: dict) -> dict:
    """A section's values as the file gave them, each setting with a ``parse_text`` read through it."""
    for name, parse_text in _PARSE_TEXT[section]:
        if name in values:
            values[name] = parse_text(name, values[name])
    return values


def parse(text: str, source: str = "<config>") -> Interface:
    """Parse a wg-quick file as wg-quick and ``wg setconf`` read it.

    Lines end at ``\n`` only (bash ``read``), not at whatever else
    ``str.splitlines()`` takes for a line break; ``#`` starts a comment anywhere
    on a line. wg-quick's own keys (Address, DNS, MTU, Table, hooks, SaveConfig)
    are trimmed at both ends, as wg-quick trims them; the others go to ``wg``,
    which drops every space in a line. Keys are case-insensitive, list keys may
    repeat and hold comma-separated values. The ``# Name =`` comment inside a
    [Peer] section is kept as that peer's label, ``# Expires =`` as its expiry (in the form the
    renderer writes only). Errors name the file and line
    but never quote a line: any line may hold a key.
    """
    iface: dict = {}
    peers: list[tuple[int, dict]] = []
    section = None
    current: dict = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip(_SPACE)
        if section == "peer" and line.startswith("#"):
            start, equals, value = line.partition("=")
            name = _PEER_COMMENTS.get(start.rstrip(" ").lower()) if equals else None
            if name is not None:
                current[name] = value.strip(_SPACE)
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
            raise WgValueError(f"{source}, line {lineno}: {shown(key)} outside of a section")
        name, repeatable = entry
        if repeatable:
            # The model splits list values at commas (hooks are one command a line).
            current.setdefault(name, []).append(value)
        else:
            current[name] = value
    if section is None:
        raise WgValueError(f"{source}: no [Interface] section")
    try:
        interface = Interface(**_from_text("interface", iface))
    except WgValueError as exc:
        raise WgValueError(f"{source}: {exc}") from None
    built = []
    for lineno, data in peers:
        try:
            if "public_key" not in data:
                raise WgValueError("the section has no PublicKey")
            built.append(Peer(**_from_text("peer", data)))
        except WgValueError as exc:
            raise WgValueError(f"{source}, [Peer] at line {lineno}: {exc}") from None
    try:
        return interface.replace(peers=tuple(built))
    except WgValueError as exc:
        raise WgValueError(f"{source}: {exc}") from None


def _line(key: str, option: str, value, comment: bool = False) -> str:
    """One line of a file; the last guard against a value that would not read back as one line."""
    text = str(value)
    if v.FORBIDDEN.search(text) or (not comment and "#" in text):
        raise WgValueError(f"{option}: {shown(text)} cannot be written to a wg-quick file "
                           "(a line break, control character or '#')")
    return f"{key}{text}" if comment else f"{key} = {text}"


def _file_order(settings: dict) -> tuple:
    """(field, setting) in the order a file gives them: comment lines first, then keys, each in field order."""
    return (tuple((n, s) for n, s in settings.items() if s.comment)
            + tuple((n, s) for n, s in settings.items() if s.key))


_INTERFACE_LINES = _file_order(INTERFACE_SETTINGS)
_PEER_LINES = _file_order(PEER_SETTINGS)


def _lines(obj, settings: tuple, redact: bool, wg_only: bool, explicit: bool = False) -> list[str]:
    out = []
    for name, meta in settings:
        if wg_only and (meta.wg_quick or meta.comment):
            continue
        value = getattr(obj, name)
        if not value:  # the model keeps an unset setting falsy: None, (), 0, False
            if explicit and meta.explicit_off:
                out.append(f"{meta.key} = {meta.explicit_off}")
            continue
        if meta.comment:
            out.append(_line(meta.comment, name, value, comment=True))
            continue
        if meta.secret and redact:
            value = REDACTED
        elif meta.text is not None:
            value = meta.text(value)
            if value is None:
                continue
        if meta.per_line:
            out.extend(_line(meta.key, name, item) for item in value)
        else:
            out.append(_line(meta.key, name, ", ".join(value) if isinstance(value, tuple) else value))
    return out


def render(iface: Interface, redact: bool = False, wg_only: bool = False) -> str:
    """The canonical wg-quick file of ``iface``.

    ``wg_only`` leaves out the wg-quick keys (what ``wg-quick strip`` prints),
    for ``wg setconf``/``addconf``; ``redact`` replaces every secret, for diffs.
    Every value goes through a guard that refuses anything that would not read
    back as the same single line.
    """
    out = ["[Interface]", *_lines(iface, _INTERFACE_LINES, redact, wg_only)]
    for peer in iface.peers:
        out.extend(render_peer(peer, redact=redact, wg_only=wg_only))
    return "\n".join(out) + "\n"


def render_peer(peer: Peer, redact: bool = False, wg_only: bool = False, explicit: bool = False) -> list[str]:
    """The lines of one [Peer] section, a blank line first.

    ``explicit`` writes keepalive ``off`` too, so that ``wg addconf`` turns it off.
    """
    return ["", "[Peer]", *_lines(peer, _PEER_LINES, redact, wg_only, explicit)]
