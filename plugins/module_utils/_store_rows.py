# Private to the wgfleet.wireguard collection: not a public API.
"""Peer rows as the model: the sink a restore's ``COPY ... TO STDOUT`` writes its rows into, with the general path
(every row opened, checked and validated on its own) and the fast path for rows a sealed snapshot proves.

Pure (no database, no Ansible): _store_load.py runs the COPY and checks the state digest that proves the rows.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import io
import itertools
import operator

from . import _secrets
from ._errors import WgError
from ._secrets import HEADER_LEN, TAG_LEN, DamagedSecretError, KeyMismatchError
from ._store_codec import (
    _FRAME,
    BYTEA_PREFIX,
    FORMAT,
    LATE_PEER,
    NULL,
    PEER_VALUES,
    CopySink,
    _context,
    _same_row,
    framed,
    row_input,
    row_values,
)
from ._wgconf import Peer, trusted_peers

# Rows of a sealed snapshot (format 2, under the user's key) are what a save of this format wrote from a
# validated model, and the snapshot's state digest proves every one of them: they are built without validating
# again (it is most of a restore's time otherwise). The fast path reads these columns; only while the registry
# stores exactly these (and the peer has no other field) is it used, otherwise every row takes the general path.
_FAST_VALUES = ("allowed_ips", "endpoint", "persistent_keepalive", "name", "expires")
_TRUSTED_BUILD = PEER_VALUES == _FAST_VALUES and LATE_PEER == ("expires",) and \
    {f.name for f in dataclasses.fields(Peer)} == {"public_key", *_FAST_VALUES, "preshared_key"}
_FIELDS = 10  # of a row, as _copy_peers_out selects them
# The length of a format-2 row digest (its format byte and 32 bytes), as a sealed read fetches it.
_FORMAT_2_LENGTH = "33"
# A preshared key (44 characters of base64) sealed, as COPY writes a bytea: "\\x" and its hex.
_KEY_TEXT_LEN = 44
_SEALED_KEY_TEXT = len(BYTEA_PREFIX) + 2 * (HEADER_LEN + _KEY_TEXT_LEN + TAG_LEN)
_EXPIRES = f"\n{LATE_PEER[0]}=" if LATE_PEER else ""  # the digest input's tail (late_text) before an expiry
NUL = "\0"  # a name that is not set, in a digest input
# The fast path's batch: COPY writes rows into an io.BufferedWriter of this size (a C call per row), which hands
# them on once it is full, about 1,000 rows at a time, decoded together by C loops over their columns while
# PostgreSQL goes on sending the next ones (on the other core, into the socket's buffer).
_CHUNK = 256 * 1024
_BUFFER = io.BufferedWriter  # (it hands on whole rows, but a chunk cut anywhere is read as well)
_ascii = operator.methodcaller("decode", "ascii")
_pack = _FRAME.pack  # a digest input's length, before it (framed)
_HEX = operator.itemgetter(slice(len(BYTEA_PREFIX), None))  # COPY's text of a bytea without its "\\x"


class _PeerRows(CopySink):
    """What COPY TO writes peer rows into (``target()``), made into peers and their digest inputs as they arrive,
    so Python works while PostgreSQL is still sending. Rows come in no order (a sort on
    the server costs it more than the whole read costs it otherwise); ``result()`` puts them in position order.

    Fields (see _copy_peers_out): interface, position, public key, allowed IPs, endpoint, keepalive, name,
    expiry, preshared key, and the row digest when rows are checked one by one, or only its length when the
    snapshot is sealed (the interface's state digest then proves every row; the length tells a format-2 row).

    The general path (``_row``) opens each row's preshared key (its tag checked), checks the row's digest unless
    the snapshot is sealed, and validates the peer. The fast path, for a sealed snapshot under the user's key,
    takes rows in batches: every preshared key decrypted at once without its tag, the peers built without their
    constructor. It proves nothing itself: ``unproved()`` says which interfaces it decoded, whose state digest the
    caller must check before using them, and ``checked()`` decodes them again through the general path, to say
    which row is wrong when that digest does not match. A failure is kept and raised after the COPY (an
    exception inside it would leave the connection mid-COPY).
    """

    def __init__(self, store, server_id: str, row_cipher, sealed: bool, damaged, mismatch, fast: bool = True):
        self.server_id, self.row_cipher, self.sealed = server_id, row_cipher, sealed
        self.damaged, self.mismatch = damaged, mismatch
        self.store = store
        user_cipher = store.cipher
        self.open_psk = user_cipher.opener() if user_cipher is not None else \
            (lambda blob, context: _secrets.unseal(None, blob, context))
        # interface -> (positions as COPY gave them, peers, their digest inputs framed), in the order the rows came
        self.rows: dict[str, tuple[list, list, list]] = {}
        self.error: BaseException | None = None
        self._iface, self._contexts = None, {}
        # For checked(): interface -> the batches the fast path took (text), and the lines the general path took.
        self._texts: dict[str, list] = {}
        self._lines: dict[str, list] = {}
        self.fast = fast and _TRUSTED_BUILD and sealed and row_cipher is not None and user_cipher is row_cipher
        self._writer, self._partial = None, b""
        super().__init__()

    def target(self, encoding: str):
        """The file object to give ``copy_expert``: this text sink (a row per ``write``), or on the fast path a
        binary buffer in front of it (rows as bytes in ``encoding``, handed on a chunk at a time)."""
        if not self.fast:
            return self
        self._encoding = encoding
        self._writer = _BUFFER(_Chunks(self._chunk), _CHUNK)
        return self._writer

    def _chunk(self, data) -> None:
        """Bytes COPY wrote, cut anywhere: its whole lines go to the fast path, the rest waits for the next."""
        if self.error is not None:
            return
        try:
            data = self._partial + bytes(data)
            end = data.rfind(b"\n") + 1
            self._partial = data[end:]
            if end:
                self._batch(self._text(data[:end - 1]))
        except Exception as exc:  # kept, raised after the COPY
            self.error = exc

    def _text(self, data: bytes) -> str:
        try:
            return data.decode(self._encoding)
        except UnicodeDecodeError:  # a byte the database's encoding (SQL_ASCII) let in
            text = None
        if text is None:
            raise self.damaged("the peer rows", f"they are not text in the connection's encoding ({self._encoding})")
        return text

    def write(self, line: str) -> int:
        """A row, on the general path (text, with its newline)."""
        if self.error is None:
            try:
                self._one_by_one([line[:-1]])
            except Exception as exc:  # kept, raised after the COPY
                self.error = exc
        return len(line)

    def _start(self, iface: str) -> tuple:
        """A row of ``iface`` comes (after one of another interface, or first)."""
        found = self._contexts.get(iface)
        if found is None:
            psk_context = _context("preshared_key", self.server_id, iface, "")
            positions, peers, inputs = self.rows.setdefault(iface, ([], [], []))
            found = self._contexts[iface] = (psk_context, f"peer/{FORMAT}\n{self.server_id}\n{iface}\n",
                                             positions.append, peers.append, inputs.append)
        self._iface, self._now = iface, found
        return found

    def _batch(self, text: str) -> None:
        """The fast path for a batch of rows (whole lines, the last without its newline); a row it does not take
        (escaped text, format 1, a preshared key that is not this key's, another field count) goes through the
        general path."""
        count = text.count("\n") + 1
        fields = text.replace("\n", "\t").split("\t")
        if len(fields) != _FIELDS * count:
            return self._one_by_one(text.split("\n"))
        ifaces, positions, keys, allowed, endpoints, keepalives, labels, expiries, psks, digests = \
            (fields[k::_FIELDS] for k in range(_FIELDS))
        if ifaces.count(ifaces[0]) != count:  # rows of several interfaces: each on its own
            groups: dict[str, list] = {}
            for iface, line in zip(ifaces, text.split("\n")):
                groups.setdefault(iface, []).append(line)
            for group in groups.values():
                self._batch("\n".join(group))
            return None
        # Anything escaped (the general path unescapes it) or not a format-2 row sealed as a save seals it.
        if digests.count(_FORMAT_2_LENGTH) != count or "\\" in "\t".join(labels + expiries).replace(NULL, "") \
                or not set(map(len, psks)) <= {len(NULL), _SEALED_KEY_TEXT}:
            fast = [d == _FORMAT_2_LENGTH and "\\" not in (n + x).replace(NULL, "") and len(p) in (len(NULL), _SEALED_KEY_TEXT)
                    for n, x, p, d in zip(labels, expiries, psks, digests)]
            lines = text.split("\n")
            self._one_by_one([line for line, ok in zip(lines, fast) if not ok])
            return self._batch("\n".join(line for line, ok in zip(lines, fast) if ok)) if any(fast) else None
        iface = ifaces[0]
        try:
            values, inputs = self._decode(self._start(iface)[1], keys, allowed, endpoints, keepalives, labels,
                                          expiries, psks)
        except ValueError:  # not hex, not a number, not opened by this key: the general path says which
            values = None
        if values is None:
            # Outside the except block: the general path's refusal must not carry, as its context, an error
            # holding an unproved plaintext (a UnicodeDecodeError keeps the bytes it could not decode).
            return self._one_by_one(text.split("\n"))
        kept_positions, kept_peers, kept_inputs = self.rows[iface]
        kept_positions.extend(positions)
        kept_peers.extend(trusted_peers(values))
        kept_inputs.extend(inputs)
        self._texts.setdefault(iface, []).append(text)
        return None

    def _decode(self, prefix: str, keys, allowed, endpoints, keepalives, labels, expiries, psks) -> tuple[list, list]:
        """The model's values and framed digest inputs of a batch's columns (one interface, nothing escaped)."""
        # Each "\\x<hex>" without its "\\x" (by a C loop when every row has a preshared key).
        sealed = list(map(_HEX, psks)) if NULL not in psks else [_HEX(p) for p in psks if p != NULL]
        opened = self.row_cipher.decrypt_unproved(bytes.fromhex("".join(sealed)), _KEY_TEXT_LEN) if sealed else []
        if opened is None:
            raise ValueError("not this key's")
        opened = list(map(_ascii, opened))  # UnicodeDecodeError (not what a save sealed) is a ValueError
        if len(opened) != len(psks):
            opened = iter(opened)
            opened = [None if p == NULL else next(opened) for p in psks]
        allowed = [a[1:-1] for a in allowed]
        numbers = {text: int(text) for text in set(keepalives)}  # a few distinct values: looked up, not parsed
        # The digest input as _peer_input makes it (PostgreSQL writes an integer as str() does, so the
        # keepalive's text is the digest's). An empty endpoint proves as no endpoint does: it is None, as the
        # constructor makes it.
        values = [{"public_key": k, "preshared_key": p, "allowed_ips": tuple(a.split(",")) if a else (),
                   "endpoint": e if e and e != NULL else None, "persistent_keepalive": numbers[ka],
                   "name": None if n == NULL else n, "expires": None if x == NULL else x}
                  for k, a, e, ka, n, x, p in zip(keys, allowed, endpoints, keepalives, labels, expiries, opened)]
        inputs = [_pack(len(data := (f"{prefix}{k}\n{a}\n{'' if e == NULL else e}\n{ka}\n{NUL if n == NULL else n}"
                                     f"\n{p or ''}{'' if x == NULL else _EXPIRES + x}").encode())) + data
                  for k, a, e, ka, n, x, p in zip(keys, allowed, endpoints, keepalives, labels, expiries, opened)]
        return values, inputs

    def _one_by_one(self, lines: list) -> None:
        for line in lines:
            if self.fast:  # kept for checked()
                self._lines.setdefault(line[:line.find("\t")], []).append(line)
            self._row(line.split("\t"))

    def _row(self, fields: list, _fromhex=bytes.fromhex) -> None:
        """The general path: any row, checked by its own digest unless the snapshot is sealed, then validated."""
        iface, pos, key, *columns, psk_hex, dig = fields
        psk_context, _prefix, add_position, add_peer, add_input = \
            self._now if iface == self._iface else self._start(iface)
        try:
            values = row_values(columns)
        except ValueError:  # a column's type changed by hand
            raise self.damaged(f"peer {key} of interface {iface}", "a value is not of its column's type") from None
        # One try per row (free in Python 3.11 unless raised); the message is built only on failure.
        try:
            psk = None if psk_hex == NULL else self.open_psk(_fromhex(psk_hex[3:]), psk_context + key.encode())
        except KeyMismatchError:
            raise self.mismatch(f"peer {key} of interface {iface}") from None
        except DamagedSecretError as exc:
            raise self.damaged(f"peer {key} of interface {iface}", str(exc)) from None
        except ValueError:  # not COPY's text of a bytea (the column's type changed by hand)
            raise self.damaged(f"peer {key} of interface {iface}", "its preshared key is not stored bytes") from None
        server_id = self.server_id
        data = row_input(FORMAT, server_id, iface, key, values, psk)
        try:
            stored = b"" if self.sealed else _fromhex(dig[3:])
        except ValueError:
            raise self.damaged(f"peer {key} of interface {iface}", "its digest is not stored bytes") from None
        if not self.sealed and not _same_row(self.row_cipher, stored, lambda f: data if f == FORMAT else
                                             row_input(f, server_id, iface, key, values, psk)):
            raise self.damaged(f"peer {key} of interface {iface}", "it does not match its digest")
        try:
            peer = Peer(public_key=key, preshared_key=psk, **values)
        except WgError as exc:
            raise self.damaged(f"peer {key} of interface {iface}", str(exc)) from None
        add_position(pos)
        add_peer(peer)
        add_input(framed(data))

    def unproved(self, iface: str) -> bool:
        """Whether the fast path decoded rows of ``iface``: its state digest is then their only proof."""
        return iface in self._texts

    def checked(self, iface: str) -> tuple[list, list]:
        """(peers, framed digest inputs) of ``iface`` decoded again through the general path: every preshared key's tag
        checked and every peer validated, raising for the first row that is not what a save wrote."""
        again = _PeerRows(self.store, self.server_id, self.row_cipher, self.sealed, self.damaged, self.mismatch,
                          fast=False)
        again._one_by_one([line for text in self._texts.get(iface, ()) for line in text.split("\n")])
        again._one_by_one(self._lines.get(iface, ()))
        return again.result(iface)

    def result(self, iface: str) -> tuple[list, list]:
        """(peers, their digest inputs framed as the state digest takes them), of ``iface`` in position order."""
        if self._writer is not None:
            self._writer.flush()  # the last chunk
            self._writer = None
            if self._partial and self.error is None:
                self.error = self.damaged("the peer rows", "the COPY of them ended in the middle of a row")
        if self.error is not None:
            raise self.error
        positions, peers, inputs = self.rows.get(iface, ([], [], []))
        if len(peers) < 2:
            return peers, inputs
        # Sorted and reordered by C loops (map, sorted, itemgetter): positions are unique within an interface.
        try:
            numbers = list(map(int, positions))
        except ValueError:  # the column's type changed by hand
            raise self.damaged(f"the peers of interface {iface}", "a position is not a whole number") from None
        if all(map(operator.lt, numbers, itertools.islice(numbers, 1, None))):  # as they came (the usual case)
            return peers, inputs
        order = sorted(range(len(peers)), key=numbers.__getitem__)
        pick = operator.itemgetter(*order)
        return list(pick(peers)), list(pick(inputs))


@contextlib.contextmanager
def _long_lived():
    """For building a state: tens of thousands of new objects, none of them garbage, which the young
    generations' collections would walk again and again. Without a pass while they are made, then moved
    to the oldest generation at once (gc.freeze() then gc.unfreeze() does that, walking nothing): only a
    full collection looks at them, as it looks at every long-lived object. Not when the program froze
    objects of its own (unfreeze would release them too): then the collector is only paused."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            if not gc.get_freeze_count():
                gc.freeze()
                gc.unfreeze()
            gc.enable()


class _Chunks(io.RawIOBase):
    """The raw file under the fast path's io.BufferedWriter: each chunk it flushes goes to ``take``."""

    def __init__(self, take):
        super().__init__()
        self._take = take

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._take(data)
        return len(data)
