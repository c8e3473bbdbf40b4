# Private to the wgfleet.wireguard collection: not a public API.
"""The store's row codec: one column order, one digest input per row kind, COPY's text format both ways,
the sealing contexts, and the sink a read's COPY writes rows into (see _store.py for the layout;
_store_rows.py makes peer rows into the model).

Pure (no database, no Ansible): _store.py runs the SQL, _store_plan.py plans a save, _rekey.py re-seals rows.
"""
from __future__ import annotations

import dataclasses
import io
import itertools
import json
import operator
import re
import struct

from . import _secrets
from ._secrets import key_id_hex
from ._wgconf import INTERFACE_SETTINGS, PEER_SETTINGS, Interface, Peer

# The digest format this code writes. Format 1: unversioned 32-byte row digests, no snapshot seal.
FORMAT = 2
# The schema of format 2's first rows. A setting the registry stores since a later schema is left out of a row's
# settings and digest input while it is unset: rows stored before it existed read, and prove, the same.
FORMAT_2_SCHEMA = 3

# An interface's settings row (JSON): every stored setting but the private key, which has a table of its own.
SETTING_FIELDS = tuple(n for n, s in INTERFACE_SETTINGS.items() if s.stored and not s.secret)
_LATE_SETTINGS = frozenset(n for n in SETTING_FIELDS if INTERFACE_SETTINGS[n].stored > FORMAT_2_SCHEMA)
# A peer row: its key, then every other stored setting in the registry's order, the sealed preshared key last.
PEER_VALUES = tuple(n for n, s in PEER_SETTINGS.items() if s.stored and not s.secret and n != "public_key")
PEER_COLUMNS = ("server_id", "interface", "public_key", "valid_from", "position", *PEER_VALUES, "preshared_key",
                "digest")
# Format 2's peer digest input, frozen (a stored digest must prove the same row forever): these, in this order.
DIGEST_V2 = ("public_key", "allowed_ips", "endpoint", "persistent_keepalive", "name", "preshared_key")
# Peer settings stored since: appended to the input, each as "\n<field>=<value>", while set.
LATE_PEER = tuple(n for n in PEER_VALUES if n not in DIGEST_V2)

# --- COPY --------------------------------------------------------------------------------------------------

NULL = "\\N"
BYTEA_PREFIX = "\\\\x"


def _copy_text(value) -> str:
    """One field in COPY's text format."""
    if value is None:
        return NULL
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTEA_PREFIX + bytes(value).hex()
    if isinstance(value, (tuple, list)):
        # Only CIDRs go in arrays: no character there needs quoting.
        return "{" + ",".join(value) + "}"
    text = str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


class _StreamedLines:
    """A file for copy_expert that formats rows only when COPY asks for them.

    psycopg2 sends each chunk while the next one is being made, so the server
    stores rows (on the other core) while Python seals and formats the next ones.
    """

    def __init__(self, lines):
        self._lines = iter(lines)

    def read(self, size: int = -1) -> str:
        chunk, length = [], 0
        for line in self._lines:
            chunk.append(line)
            length += len(line)
            if 0 <= size <= length:
                break
        return "".join(chunk)

    readline = read


# --- digests (pure) ----------------------------------------------------------------------------------------
#
# A stored row digest is the 32-byte digest alone (format 1) or its format byte and the digest (format 2 on).
# The digest is HMAC-SHA256 under a key derived from the encryption key, or plain SHA-256 without one.

_NO_KEY = bytes(32)  # stands for "no private key" in an interface's state digest
_FRAME = struct.Struct(">I")  # the length before each peer's input in a state digest


def _context(*parts: str) -> bytes:
    """Associated data / digest prefix binding a value to its row."""
    return "\x1f".join(parts).encode()


def _settings_json(iface: Interface) -> dict:
    data = {}
    for name in SETTING_FIELDS:
        value = getattr(iface, name)
        if name in _LATE_SETTINGS and not value:
            continue
        data[name] = list(value) if isinstance(value, tuple) else value
    return data


def settings_text(iface: Interface) -> str:
    return json.dumps(_settings_json(iface), sort_keys=True, separators=(",", ":"))


def _peer_input(fmt: int, server_id: str, interface: str, key: str, allowed: str, endpoint, keepalive, name,
                psk, late: str = "") -> bytes:
    """A peer row's digest input: DIGEST_V2's values, then ``late`` (:func:`late_text`)."""
    # Newlines cannot occur in any peer field (the model rejects them), so they separate unambiguously.
    return ("\n".join((
        "peer" if fmt == 1 else f"peer/{fmt}", server_id, interface, key, allowed, endpoint or "",
        str(keepalive), name if name is not None else "\0", psk or "",
    )) + late).encode()


def late_text(values) -> str:
    """The digest input's tail: LATE_PEER's values (in order) that are set."""
    return "".join(f"\n{name}={value}" for name, value in zip(LATE_PEER, values) if value is not None)


def _late_of(peer: Peer) -> list:
    return [getattr(peer, name) for name in LATE_PEER]


def _peer_digest_input(server_id: str, interface: str, peer: Peer, fmt: int = FORMAT) -> bytes:
    return _peer_input(fmt, server_id, interface, peer.public_key, ",".join(peer.allowed_ips), peer.endpoint,
                       peer.persistent_keepalive, peer.name, peer.preshared_key, late_text(_late_of(peer)))


# --- peer rows as COPY text ----------------------------------------------------------------------------------------

# A row's PEER_VALUES as the model's values, from COPY TO's text: by the option type the registry gives.
def _column_reader(name: str):
    kind = PEER_SETTINGS[name].option["type"]
    if kind == "list":
        return lambda text: tuple(text[1:-1].split(",")) if text != "{}" else ()
    if kind == "int":
        return int
    return lambda text: None if text == NULL else _copy_field(text)


def row_values(fields) -> dict:
    """PEER_VALUES (by name) from their columns' COPY text, in PEER_VALUES order."""
    return {name: read(text) for name, read, text in zip(PEER_VALUES, _READERS, fields)}


def row_input(fmt: int, server_id: str, interface: str, key: str, values: dict, psk) -> bytes:
    """A row's digest input from its values (:func:`row_values`) and its opened preshared key."""
    return _peer_input(fmt, server_id, interface, key, ",".join(values["allowed_ips"]), values["endpoint"],
                       values["persistent_keepalive"], values["name"], psk,
                       late_text([values[name] for name in LATE_PEER]))


peer_values = operator.attrgetter(*PEER_VALUES)
# The INSERT template of a row's values (under row-level security), arrays typed.
PEER_VALUES_TEMPLATE = ", ".join("%s::text[]" if PEER_SETTINGS[n].option["type"] == "list" else "%s"
                                 for n in PEER_VALUES)


def peer_copy_values(peer: Peer) -> str:
    """A peer's PEER_VALUES as COPY FROM text, tab-separated."""
    return "\t".join(map(_copy_text, peer_values(peer)))


def _settings_input(fmt: int, server_id: str, name: str, text: str) -> bytes:
    return _context("interface" if fmt == 1 else f"interface/{fmt}", server_id, name, text)


def _key_input(fmt: int, server_id: str, name: str, private_key: str) -> bytes:
    return _context("server_key" if fmt == 1 else f"server_key/{fmt}", server_id, name, private_key)


def stored_format(stored: bytes) -> int:
    """The format of a stored row digest; 0 when it is neither format."""
    if len(stored) == 32:
        return 1
    if len(stored) == 33 and stored[0] == FORMAT:
        return FORMAT
    return 0


def _stored(cipher, data: bytes) -> bytes:
    """A row digest as this code stores it."""
    return bytes([FORMAT]) + _secrets.digest(cipher, data)


def _same_row(cipher, stored: bytes, make_input) -> bool:
    """Whether a stored digest (of either format) is the digest of ``make_input(format)``."""
    fmt = stored_format(stored)
    if fmt == 1:
        return stored == _secrets.digest(cipher, make_input(1))
    return fmt == FORMAT and stored[1:] == _secrets.digest(cipher, make_input(FORMAT))


def interface_state_digest(cipher, server_id: str, name: str, settings_digest: bytes, key_digest: bytes | None,
                           peer_inputs) -> bytes:
    """One digest of an interface's whole state: its settings and key digests, then every peer's digest input
    (each after its length), in peer order. One running digest: a load checks 10,000 peers with it at once."""
    # Each input after its 4-byte length, framed by C loops (map, zip, chain) rather than a Python one.
    lengths = map(_FRAME.pack, map(len, peer_inputs))
    return framed_state_digest(cipher, server_id, name, settings_digest, key_digest,
                               itertools.chain.from_iterable(zip(lengths, peer_inputs)))


def framed(data: bytes) -> bytes:
    """A peer's digest input as the state digest takes it: after its 4-byte length."""
    return _FRAME.pack(len(data)) + data


FRAME_LEN = _FRAME.size


def framed_state_digest(cipher, server_id: str, name: str, settings_digest: bytes, key_digest: bytes | None,
                        framed_inputs) -> bytes:
    """:func:`interface_state_digest` of inputs already :func:`framed` (a load frames each as it builds it)."""
    running = _secrets.digester(cipher)
    running.update(b"".join((_context("interface-state", server_id, name, ""), settings_digest,
                             key_digest or _NO_KEY)))
    running.update(b"".join(framed_inputs))
    return running.digest()


def snapshot_seal(cipher, server_id: str, snap_id: int, key_id: bytes | None, digests: dict) -> bytes:
    """Binds a snapshot's interface digests to its id, its server and its key."""
    listing = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    return _secrets.digest(cipher, _context("snapshot", str(FORMAT), server_id, str(snap_id), key_id_hex(key_id),
                                            listing))


@dataclasses.dataclass
class InterfaceDigests:
    """The format-2 digests of one captured interface (peer digests are made only when a save needs them)."""

    settings_text: str
    settings: bytes
    key: bytes | None
    peer_inputs: list  # each peer's digest input, in peer order
    state: bytes


def digest_state(cipher, server_id: str, interfaces: dict[str, Interface]) -> dict[str, InterfaceDigests]:
    """The digests of a state that tell whether it changed (pure: no database)."""
    out = {}
    digest = _secrets.digest
    for name, iface in interfaces.items():
        text = settings_text(iface)
        settings = digest(cipher, _settings_input(FORMAT, server_id, name, text))
        key = digest(cipher, _key_input(FORMAT, server_id, name, iface.private_key)) if iface.private_key else None
        inputs = [_peer_digest_input(server_id, name, p) for p in iface.peers]
        out[name] = InterfaceDigests(text, settings, key, inputs,
                                     interface_state_digest(cipher, server_id, name, settings, key, inputs))
    return out


# --- COPY TO's text -----------------------------------------------------------------------------------------

_COPY_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
_COPY_ESCAPE_RE = re.compile(r"\\(.)")


def _copy_field(text: str):
    """A text field of COPY TO's text format: None for NULL, backslash escapes undone."""
    if text == NULL:
        return None
    if "\\" in text:
        text = _COPY_ESCAPE_RE.sub(lambda m: _COPY_ESCAPES.get(m.group(1), m.group(1)), text)
    return text


_READERS = tuple(_column_reader(name) for name in PEER_VALUES)


class CopySink(io.TextIOBase):
    """The text file object a ``COPY ... TO STDOUT`` writes its rows into, one row per ``write``: each row's fields
    go to ``_row``. A failure is kept in ``error`` and raised by the caller after the COPY (an exception inside
    it would leave the connection mid-COPY)."""

    error: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, line: str) -> int:
        if self.error is None:
            try:
                self._row(line[:-1].split("\t"))
            except Exception as exc:  # kept, raised after the COPY
                self.error = exc
        return len(line)

    def _row(self, fields: list) -> None:
        raise NotImplementedError
