# Private to the wgfleet.wireguard collection: not a public API.
"""The checks of single values: what a key of a wg-quick file, a name or an option may hold, and its normal form.

Each check takes the option it reports under and the value, and returns the value normalized or raises a
``WgValueError`` that names the option (and never quotes a secret). The model (_wgconf) declares which check each
setting takes; database, service and client settings use the same ones.
"""
from __future__ import annotations

import functools
import ipaddress
import math
import re

from ._errors import WgValueError, shown

IFNAME_RE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}\Z")
# Longest path accepted (Linux PATH_MAX): a longer one cannot be opened anyway.
MAX_PATH = 4096

# What can never be part of a value in a wg-quick file: every character that ends a line for
# someone (str.splitlines() splits on \n \r \v \f \x1c-\x1e \x85 \u2028 \u2029; bash on \n), NUL
# and the other control characters, and lone surrogates (not writable as UTF-8). A tab is allowed
# inside free text (hooks, labels): bash reads it as part of the line.
FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


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
    bad = FORBIDDEN.search(value)
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


# A number as text, as wg and ip read them: ASCII decimal, or 0x hex where they take it (fwmark, MTU, table).
# Python's int() also takes 2_5 and other scripts' digits, which wg refuses: a file would be reported in order
# that wg cannot load.
_DECIMAL_TEXT = re.compile(r"[ \t]*[0-9]+[ \t]*\Z")
_NUMBER_TEXT = re.compile(r"[ \t]*(0[xX][0-9a-fA-F]+|[0-9]+)[ \t]*\Z")


def _whole_number(value, text: re.Pattern, base: int) -> int | None:
    """``value`` as a whole number, or None: an int, or text that ``text`` matches, read in ``base``. Never a bool
    or a float (int() takes True for 1 and cuts 1.5 to 1)."""
    if isinstance(value, (bool, float)):
        return None
    try:
        return (int(value, base) if text.match(value) else None) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        return None


def _not_whole(option: str, value, low: int, high: int) -> WgValueError:
    return WgValueError(f"{option}: {shown(value)} is not a whole number from {low} to {high}")


def check_whole(option: str, value, low: int, high: int) -> int:
    """An int from ``low`` to ``high``, never a bool nor text: for settings a caller keeps as it was given."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _not_whole(option, value, low, high)
    return value


def check_int(option: str, value, low: int, high: int, hex_ok: bool = False, leading_zeros: bool = False) -> int:
    """An int or its text from ``low`` to ``high``, as a number."""
    # In base 0: 0x is hex, and a decimal with a leading zero is refused (ip would read it as octal).
    # ``leading_zeros``: decimal text, leading zeros read as such (as libpq reads a port).
    if leading_zeros:
        number = _whole_number(value, _DECIMAL_TEXT, 10)
    else:
        number = _whole_number(value, _NUMBER_TEXT if hex_ok else _DECIMAL_TEXT, 0)
    if number is None or not low <= number <= high:
        raise _not_whole(option, value, low, high)
    return number


def check_positive(option: str, value, high: float, integer: bool = False) -> float | int:
    """A positive number (a whole one when ``integer``) up to ``high``; bool, text, nan and inf refused."""
    # An int is compared as it is: math.isfinite() and float() raise OverflowError past 1e308 ("1e400" as text).
    ok = not isinstance(value, bool) and (isinstance(value, int) or (
        isinstance(value, float) and math.isfinite(value) and (not integer or value.is_integer()))) \
        and 0 < value <= high
    if not ok:
        kind = "a whole number" if integer else "a number"
        raise WgValueError(f"{option}: {shown(value)} is not {kind} greater than 0 and at most {high:g}")
    return int(value) if integer else float(value)


def check_port(option: str, value) -> int:
    """A port number; as text, ASCII decimal, leading zeros too (wg reads it with getaddrinfo(), in base 10)."""
    port = _whole_number(value, _DECIMAL_TEXT, 10)
    if port is None or not 0 <= port <= 65535:
        raise WgValueError(f"{option}: {shown(value)} is not a port number (0-65535)")
    return port


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


def normalize_free_text(option: str, value, limit: int, comment_ok: bool) -> str | None:
    """A hook or a label: one line of at most ``limit`` characters, spaces at either end dropped."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    text = check_text(option, value, comment_ok=comment_ok).strip(" \t")
    if len(text) > limit:
        raise WgValueError(f"{option}: {shown(value)} is longer than {limit} characters")
    return text or None


# --- the settings' own checks (the model's registry names one per setting) ---------------------------------

# Longest label and hook accepted: a file line, not a document.
MAX_LABEL = 256
MAX_HOOK = 4096


def normalize_label(option: str, value) -> str | None:
    """A peer's label: a comment line of its own, so '#' is fine there, a line break never."""
    return None if value is None else normalize_free_text(option, value, MAX_LABEL, comment_ok=True)


def normalize_commands(option: str, value) -> tuple[str, ...]:
    """A hook: commands, one a line (no '#': wg-quick would cut the command there)."""
    if value is None:
        value = ()
    elif isinstance(value, str):
        value = (value,)
    elif not isinstance(value, (list, tuple)):
        raise WgValueError(f"{option}: {shown(value)} is not a list of commands")
    cmds = (normalize_free_text(option, cmd, MAX_HOOK, comment_ok=False) for cmd in value)
    return tuple(c for c in cmds if c)


# A setting's word for off (the registry's explicit_off) the model reads as nothing before its check.
def normalize_keepalive(option: str, value) -> int:
    """Seconds between keepalives; 0 or nothing means off."""
    return check_int(option, 0 if value is None else value, 0, 65535)


# 0/auto mean the same as leaving the key out; normalizing them to None keeps comparisons honest.
def normalize_listen_port(option: str, value) -> int | None:
    return None if value is None else (check_port(option, value) or None)


def normalize_fwmark(option: str, value) -> int | None:
    """A firewall mark; 0 or nothing means none."""
    return None if value is None else (check_int(option, value, 0, 0xFFFFFFFF, hex_ok=True) or None)


def normalize_mtu(option: str, value) -> int | None:
    return None if value in (None, 0, "0") else check_int(option, value, 576, 65535, hex_ok=True)


def normalize_table(option: str, value) -> str | None:
    """off, auto (None), a routing table number or name."""
    if value is None:
        return None
    table = value if isinstance(value, str) else str(check_int(option, value, 0, 0xFFFFFFFF))
    table = check_text(option, table).strip(" \t")
    if table and not _TABLE.match(table):
        raise WgValueError(f"{option}: {shown(value)} is not off, auto, a number or a table name")
    if table.isascii() and table.isdigit() and int(table) > 0xFFFFFFFF:
        # A number given as text (the option is a str: Ansible makes any number text) is in range too; ip refuses
        # a larger table id when wg-quick brings the interface up.
        raise WgValueError(f"{option}: {shown(value)} is not a table number from 0 to 4294967295")
    return None if table in ("", "auto") else table


def check_bool(option: str, value) -> bool:
    if not isinstance(value, bool):
        raise WgValueError(f"{option}: {shown(value)} is not true or false")
    return value


def parse_bool(option: str, text: str) -> bool:
    """A boolean as a wg-quick file writes it."""
    lowered = text.lower()
    if lowered in ("true", "yes", "on", "1"):
        return True
    if lowered in ("false", "no", "off", "0"):
        return False
    raise WgValueError(f"{option}: {shown(text)} is not true or false")
