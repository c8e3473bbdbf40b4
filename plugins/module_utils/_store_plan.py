# Private to the wgfleet.wireguard collection: not a public API.
"""The pure planning of a save: which rows to write and which to close, the peers' positions, the guard.

No database: _store.py reads the current rows (digests, positions, public keys), asks this module what to
write, and writes it in the same transaction.
"""
from __future__ import annotations

import dataclasses

from . import _secrets
from ._keys import public_key
from ._store_codec import FORMAT, _context, _key_input, _peer_digest_input, _same_row, _settings_input, _stored
from ._store_types import SaveRefused, StoreError

# Gaps between stored peer positions, so a peer inserted between two others takes the middle.
POSITION_STEP = 1 << 20


def _longest_increasing(values: list) -> set[int]:
    """Indices of a longest strictly increasing run (not necessarily contiguous) of the non-None ``values``."""
    import bisect

    tails: list[int] = []  # tails[k]: index ending the best run of length k+1
    tail_values: list[int] = []
    before: dict[int, int | None] = {}
    for index, value in enumerate(values):
        if value is None:
            continue
        k = bisect.bisect_left(tail_values, value)
        before[index] = tails[k - 1] if k else None
        if k == len(tails):
            tails.append(index)
            tail_values.append(value)
        else:
            tails[k] = index
            tail_values[k] = value
    keep = set()
    index = tails[-1] if tails else None
    while index is not None:
        keep.add(index)
        index = before[index]
    return keep


def assign_positions(peers, stored: dict[str, int]) -> list[int]:
    """Positions for ``peers`` (in order) that keep as many stored positions as the order allows.

    The peers whose stored positions are already in order (a longest increasing
    run) keep them, hence their rows; the others (new, moved) take numbers in
    the gaps between those. Appending, removing or editing a peer rewrites no
    other peer's row.
    """
    olds = [stored.get(p.public_key) for p in peers]
    keep = _longest_increasing(olds)
    count = len(olds)
    out: list[int] = [0] * count
    prev = -1
    i = 0
    while i < count:
        if i in keep:
            out[i] = prev = olds[i]
            i += 1
            continue
        j = i
        while j < count and j not in keep:
            j += 1
        # Too little room before the next kept peer: that one moves too.
        while j < count and olds[j] - prev - 1 < j - i:
            keep.discard(j)
            while j < count and j not in keep:
                j += 1
        step = POSITION_STEP if j >= count else (olds[j] - prev) // (j - i + 1)
        for m in range(i, j):
            out[m] = prev = prev + step
        i = j
    return out


@dataclasses.dataclass
class SavePlan:
    """What a save writes over the current rows; ``changed`` False: nothing (no snapshot is added)."""

    iface_rows: list  # (name, settings text, stored digest)
    key_rows: list  # (name, public key, sealed private key, stored digest)
    peer_rows: list  # (interface, peer, position, stored digest)
    close_ifaces: list  # names
    close_keys: list  # names
    close_peers: list  # (interface, [public keys])
    close_all_peers: list  # names
    kept: list  # the interfaces a partial save carries over
    counts: dict
    changed: bool


def plan_save(cipher, server_id: str, interfaces: dict, digests: dict, latest, stored_ifaces: dict,
              stored_keys: dict, stored_peers: dict, partial: bool, rotating: bool,
              allow_plaintext_keys: bool) -> SavePlan:
    """The rows that make ``interfaces`` (with their ``digests``) the new state over the current rows:
    ``stored_ifaces`` name -> digest, ``stored_keys`` name -> (digest, public key), ``stored_peers``
    name -> public key -> (position, digest); ``latest`` the latest snapshot (None: a first save). StoreError when a partial
    save would carry rows over into a rotated or newly encrypted history."""
    iface_rows, key_rows, peer_rows = [], [], []
    close_ifaces, close_keys, close_peers = [], [], []  # names; names; (interface, [public keys])
    close_all_peers = []
    for name, iface in sorted(interfaces.items()):
        dig = digests[name]
        stored = stored_ifaces.get(name)
        if stored is None or not _same_row(cipher, stored, lambda f, n=name, t=dig.settings_text:
                                           _settings_input(f, server_id, n, t)):
            if stored is not None:
                close_ifaces.append(name)
            iface_rows.append((name, dig.settings_text, bytes([FORMAT]) + dig.settings))
        if iface.private_key:
            stored_key = stored_keys.get(name)
            if stored_key is None or not _same_row(cipher, stored_key[0], lambda f, n=name, k=iface.private_key:
                                                   _key_input(f, server_id, n, k)):
                if stored_key is not None:
                    close_keys.append(name)
                sealed = _secrets.seal(cipher, iface.private_key, _context("server_key", server_id, name),
                                       allow_plaintext_keys)
                key_rows.append((name, public_key(iface.private_key), sealed, bytes([FORMAT]) + dig.key))
        elif name in stored_keys:
            close_keys.append(name)
        old = stored_peers.get(name, {})
        positions = assign_positions(iface.peers, {k: v[0] for k, v in old.items()})
        changed_keys = []
        for index, peer in enumerate(iface.peers):
            pos, stored_digest = positions[index], _stored(cipher, dig.peer_inputs[index])
            before = old.get(peer.public_key)
            if before is not None and before[0] == pos and (
                    before[1] == stored_digest
                    or _same_row(cipher, before[1],
                                 lambda f, n=name, p=peer: _peer_digest_input(server_id, n, p, f))):
                continue
            if before is not None:
                changed_keys.append(peer.public_key)
            peer_rows.append((name, peer, pos, stored_digest))
        wanted = {p.public_key for p in iface.peers}
        changed_keys.extend(k for k in old if k not in wanted)
        if changed_keys:
            close_peers.append((name, changed_keys))
    if not partial:
        for name in sorted(set(stored_ifaces) - set(interfaces)):
            close_ifaces.append(name)
            if name in stored_keys:
                close_keys.append(name)
            if name in stored_peers:
                close_all_peers.append(name)

    kept = sorted(set(stored_ifaces) - set(interfaces)) if partial else []
    if kept and rotating:
        raise StoreError(
            f"snapshot {latest.id} of server {server_id!r} is encrypted with the previous key: the backup that "
            f"moves it to the new encryption_key must cover every interface (it leaves out {', '.join(kept)})")
    if kept and latest is not None and latest.key_id is None and cipher is not None:
        # Rows carried over would stay plain and digested without the key, in a snapshot marked encrypted.
        raise StoreError(
            f"snapshot {latest.id} of server {server_id!r} holds keys in plain text: the first backup with "
            f"encryption_key must cover every interface (it leaves out {', '.join(kept)})"
        )
    counts = {
        "interfaces": len(interfaces) + len(kept),
        "peers": sum(len(i.peers) for i in interfaces.values()) + sum(len(stored_peers.get(n, {})) for n in kept),
        "peer_rows_written": len(peer_rows),
    }
    changed = bool(iface_rows or key_rows or peer_rows or close_ifaces or close_keys or close_peers
                   or close_all_peers) or latest is None or latest.format != FORMAT
    return SavePlan(iface_rows, key_rows, peer_rows, close_ifaces, close_keys, close_peers, close_all_peers,
                    kept, counts, changed)


def check_guard(cipher, server_id: str, interfaces: dict, partial: bool, stored_ifaces: dict,
                stored_keys: dict) -> None:
    """The sync service's guard: SaveRefused when the state drops a stored interface (unless ``partial``) or
    replaces a stored private key."""
    if not partial:
        dropped = sorted(set(stored_ifaces) - set(interfaces))
        if dropped:
            raise SaveRefused(
                f"refused to save server {server_id!r}: the host has no interface {', '.join(dropped)}, which the "
                "stored state has (a half-built host or a missing mount?); the stored state is kept. If it is "
                "really gone, store the new state once with wg_backup")
    for name, iface in sorted(interfaces.items()):
        stored = stored_keys.get(name)
        if stored is None:
            continue
        same = iface.private_key and _same_row(cipher, stored[0],
                                               lambda f, n=name, k=iface.private_key: _key_input(f, server_id, n, k))
        if not same:
            # Public keys shortened: the service scrubs anything shaped like a key from its messages.
            now = f"public key {public_key(iface.private_key)[:12]}..." if iface.private_key else "no private key"
            raise SaveRefused(
                f"refused to save server {server_id!r}: interface {name} has {now}, the stored state has public "
                f"key {stored[1][:12]}... (a new host not restored yet?); the stored state is kept. If the key "
                "really changed, store the new state once with wg_backup")
