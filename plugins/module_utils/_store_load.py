# Private to the wgfleet.wireguard collection: not a public API.
"""The load path, run by _store.py in its read transaction: whether this key may open a snapshot (its key, its
seal), the COPY of its peer rows out, and its rows made into the model, every row proved before it is returned.
"""
from __future__ import annotations

import json

try:
    import psycopg2
    import psycopg2.extensions
except ImportError:  # _store.py reports it: Store refuses to start, so nothing here runs
    psycopg2 = None

from . import _secrets
from ._errors import WgError
from ._keys import public_key
from ._secrets import DamagedSecretError, KeyMismatchError, key_id_hex
from ._store_codec import (
    FORMAT,
    FRAME_LEN,
    PEER_VALUES,
    _context,
    _key_input,
    _same_row,
    _settings_input,
    framed_state_digest,
    snapshot_seal,
    stored_format,
)
from ._store_rows import _long_lived, _PeerRows
from ._store_types import Snapshot, StoreError
from ._wgconf import Interface, with_proved_peers


def check_key(cipher, snap: Snapshot | None) -> None:
    """Refuse to mix keys: every row of an encrypted snapshot was sealed with its one key.

    Saving over a plain-text snapshot with a key is allowed (it upgrades the history).
    """
    if snap is None or snap.key_id is None:
        return
    if cipher is None:
        raise StoreError(f"snapshot {snap.id} of server {snap.server_id!r} is encrypted: give its encryption_key")
    if snap.key_id != cipher.key_id:
        raise StoreError(
            f"encryption_key does not match the key that encrypted snapshot {snap.id} of server "
            f"{snap.server_id!r} (key id {key_id_hex(snap.key_id)}; the given key has id "
            f"{key_id_hex(cipher.key_id)})"
        )


def check_loadable(cipher, cur, snap: Snapshot) -> None:
    """With an encryption key, only what that key's holder saved is restored; any snapshot matches its seal."""
    check_key(cipher, snap)
    if cipher is not None and snap.key_id is None:
        raise StoreError(
            f"snapshot {snap.id} of server {snap.server_id!r} is not encrypted: with encryption_key given, only "
            "snapshots encrypted and sealed with that key are restored (leave encryption_key out to restore a "
            "plain-text snapshot)")
    if snap.format == 1:
        if cipher is not None:
            # Format 1 had no seal. Such a snapshot is accepted only from before the server's first sealed
            # one: a newer unsealed snapshot is not one this code wrote.
            cur.execute("SELECT min(id) FROM snapshots WHERE server_id = %s AND format >= 2", (snap.server_id,))
            first_sealed = cur.fetchone()[0]
            if first_sealed is not None and snap.id > first_sealed:
                raise StoreError(
                    f"snapshot {snap.id} of server {snap.server_id!r} has no seal but is newer than its first "
                    f"sealed snapshot ({first_sealed}): it was not written by wgfleet.wireguard; refused")
        return
    if snap.format != FORMAT or snap.seal is None or not isinstance(snap.interface_digests, dict):
        raise StoreError(f"snapshot {snap.id} of server {snap.server_id!r} is damaged: it has no valid seal "
                         f"(format {snap.format})")
    row_cipher = cipher if snap.key_id is not None else None
    if snap.seal != snapshot_seal(row_cipher, snap.server_id, snap.id, snap.key_id, snap.interface_digests):
        raise StoreError(f"snapshot {snap.id} of server {snap.server_id!r} is damaged: it does not match its seal "
                         "(altered, or not written with this encryption_key)")


def _peer_rows_valid(latest: bool) -> str:
    return "valid_to IS NULL" if latest else "valid_from <= %(sid)s AND (valid_to IS NULL OR valid_to > %(sid)s)"


def _copy_peers_out(cur, server_id: str, snap_id: int, names: list[str], latest: bool, sink: _PeerRows) -> None:
    """COPY TO of the peer rows valid at ``snap_id`` into ``sink``: several times faster than a cursor's fetch
    (which builds a list for every array and an object for every bytea). Unsorted: a sort doubles the
    server's work, and the sink sorts by C loops.

    ``latest``: the snapshot is the server's latest, whose rows are exactly the current ones (the partial
    index ``peers_current``). Fields: interface, position, public key, the codec's PEER_VALUES, preshared key
    and the row digest (bytea as ``\\\\x<hex>``), or only the digest's length when the sink's snapshot is sealed;
    NULL is ``\\N``.
    """
    query = cur.mogrify(
        f"COPY (SELECT interface, position, public_key, {', '.join(PEER_VALUES)},"
        f" preshared_key, {'octet_length(digest)' if sink.sealed else 'digest'} FROM peers WHERE server_id ="
        f" %(server)s AND {_peer_rows_valid(latest)} AND interface = ANY(%(names)s)) TO STDOUT",
        {"server": server_id, "sid": snap_id, "names": names})
    encoding = psycopg2.extensions.encodings.get(cur.connection.encoding, "utf-8")
    try:
        cur.copy_expert(query.decode(encoding), sink.target(encoding))
        return
    except UnicodeDecodeError:  # psycopg2's, on the general path: a byte the database's encoding let in
        pass
    raise StoreError(f"server {server_id!r}: its peer rows are not text in the connection's encoding ({encoding})")


def _stored_peer_digests(cur, server_id: str, snap_id: int, name: str, latest: bool) -> list[bytes]:
    """The stored digests of one interface's peer rows, in peer order (to name a damaged row)."""
    cur.execute(f"SELECT digest FROM peers WHERE server_id = %(server)s AND {_peer_rows_valid(latest)} AND "
                "interface = %(name)s ORDER BY position", {"server": server_id, "sid": snap_id, "name": name})
    return [bytes(row[0]) for row in cur.fetchall()]


def read_state(store, cur, server_id: str, snap: Snapshot, wanted, current: bool) -> tuple[int, dict[str, Interface]]:
    """(snapshot id, interfaces) of ``snap``, every interface or those ``wanted``, checked before returned.

    ``store``: the Store (its cipher opens the keys); ``current``: ``snap`` is the server's latest, whose rows are
    exactly the current ones (read through their index).
    """
    sid = snap.id
    # Each interface's settings row with its private key's row (one round trip).
    cur.execute("SELECT i.name, i.settings, i.digest, k.public_key, k.private_key, k.digest FROM interfaces i"
                " LEFT JOIN server_keys k ON k.server_id = i.server_id AND k.interface = i.name"
                " AND k.valid_from <= %(sid)s AND (k.valid_to IS NULL OR k.valid_to > %(sid)s)"
                " WHERE i.server_id = %(server)s AND i.valid_from <= %(sid)s"
                " AND (i.valid_to IS NULL OR i.valid_to > %(sid)s)",
                {"server": server_id, "sid": sid})
    rows = cur.fetchall()
    iface_rows = {name: (settings, bytes(d)) for name, settings, d, *_key in rows}
    key_rows = {row[0]: row[3:] for row in rows if row[4] is not None}
    names = sorted(iface_rows)
    if wanted is not None:
        missing = [n for n in wanted if n not in iface_rows]
        if missing:
            raise StoreError(
                f"interfaces: snapshot {sid} of server {server_id!r} has no interface {missing[0]!r} "
                f"(it has: {', '.join(names) or 'none'})"
            )
        names = [n for n in names if n in set(wanted)]
    sealed = snap.format == FORMAT and isinstance(snap.interface_digests, dict)
    if sealed and set(iface_rows) != set(snap.interface_digests):
        raise StoreError(f"snapshot {sid} of server {server_id!r} is damaged: its interfaces "
                         f"({', '.join(sorted(iface_rows)) or 'none'}) are not the ones it was saved with")

    def damaged(what: str, why: str):
        return StoreError(f"snapshot {sid} of server {server_id!r}: {what} is damaged: {why}")

    def mismatch(what: str):
        return StoreError(
            f"encryption_key does not match the key that encrypted snapshot {sid} of server {server_id!r} ({what})"
        )

    def open_secret(blob, context: bytes, what: str) -> str:
        try:
            return _secrets.unseal(store.cipher, blob, context)
        except KeyMismatchError:
            raise mismatch(what) from None
        except DamagedSecretError as exc:
            raise damaged(what, str(exc)) from None

    result = {}
    # Digests follow the snapshot: keyed when it was encrypted, plain SHA-256 when it was not.
    cipher = store.cipher if snap.key_id is not None else None
    digest = _secrets.digest
    peer_rows = _PeerRows(store, server_id, cipher, sealed, damaged, mismatch)
    with _long_lived():
        _copy_peers_out(cur, server_id, sid, names, current, peer_rows)
        for name in names:
            settings_json, iface_digest = iface_rows[name]
            text = json.dumps(settings_json, sort_keys=True, separators=(",", ":"))
            settings_d = digest(cipher, _settings_input(FORMAT, server_id, name, text))
            if not _same_row(cipher, iface_digest, lambda f, n=name, t=text: _settings_input(f, server_id, n, t)):
                raise damaged(f"the settings row of interface {name}", "it does not match its digest")
            private_key, key_d = None, None
            if name in key_rows:
                pub, sealed_key, stored_key_digest = key_rows[name]
                private_key = open_secret(sealed_key, _context("server_key", server_id, name),
                                          f"private key of interface {name}")
                try:
                    derived = public_key(private_key)
                except WgError:
                    raise damaged(f"the private key of interface {name}", "it is not a WireGuard key") from None
                key_d = digest(cipher, _key_input(FORMAT, server_id, name, private_key))
                if derived != pub or not _same_row(cipher, bytes(stored_key_digest),
                                                   lambda f, n=name, k=private_key: _key_input(f, server_id, n, k)):
                    raise damaged(f"the private key of interface {name}", "it does not match its public key or digest")
            peers, inputs = peer_rows.result(name)  # inputs framed
            if sealed:
                state = framed_state_digest(cipher, server_id, name, settings_d, key_d, inputs)
                if state.hex() != snap.interface_digests.get(name) and peer_rows.unproved(name):
                    # The fast path's rows, whose tags it did not check: again one by one, to say which is wrong.
                    peers, inputs = peer_rows.checked(name)
                    state = framed_state_digest(cipher, server_id, name, settings_d, key_d, inputs)
                if state.hex() != snap.interface_digests.get(name):
                    # Say which row, when one row is the cause; else the set or order of rows changed.
                    stored = _stored_peer_digests(cur, server_id, sid, name, current)
                    for index, data in enumerate(inputs):
                        row_digest = stored[index] if index < len(stored) else b""
                        if stored_format(row_digest) == FORMAT and row_digest[1:] != digest(cipher, data[FRAME_LEN:]):
                            raise damaged(f"peer {peers[index].public_key} of interface {name}",
                                          "it does not match its digest")
                    raise damaged(f"interface {name}", "its rows are not the ones the snapshot was saved with "
                                  "(a row added, removed, moved or reordered)")
            try:
                if sealed and cipher is not None:
                    # Proved by the state digest above, peers and all: only the settings go through the constructor.
                    result[name] = with_proved_peers(Interface(private_key=private_key, **settings_json), peers)
                else:
                    result[name] = Interface(private_key=private_key, peers=tuple(peers), **settings_json)
            except (WgError, TypeError) as exc:
                raise damaged(f"interface {name}", str(exc)) from None
    return sid, result
