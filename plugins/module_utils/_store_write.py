# Private to the wgfleet.wireguard collection: not a public API.
"""The SQL that writes a planned save (_store_plan.SavePlan) as a new snapshot: the rows it replaces closed, its
new rows in (peers by COPY, or under row-level security the INSERT that stands for it), the snapshot row last.

Run by _store.py inside its save transaction; the row formats are the codec's (_store_codec.py).
"""
from __future__ import annotations

import json

try:
    import psycopg2
    import psycopg2.extras
except ImportError:  # _store.py reports it: Store refuses to start, so nothing here runs
    psycopg2 = None

from . import _secrets
from ._store_codec import (
    BYTEA_PREFIX,
    FORMAT,
    NULL,
    PEER_COLUMNS,
    PEER_VALUES_TEMPLATE,
    _context,
    _copy_text,
    _StreamedLines,
    peer_copy_values,
    peer_values,
    snapshot_seal,
)
from ._store_plan import SavePlan
from ._wgconf import Peer

# Under row-level security, up to this many new peer rows go in one INSERT ... VALUES, more through a temporary table.
RLS_VALUES_MAX = 200


def copy_peers(cursor, server_id: str, snap_id: int, rows, seal) -> None:
    """COPY of peer rows ``(interface, peer, position, digest)``, sealing preshared keys with ``seal`` on the way.

    Columns in PEER_COLUMNS order. The model already rules out anything needing an escape in keys and
    interface names; the peer's stored values go through _copy_text.
    """
    prefix = f"{_copy_text(server_id)}\t"

    def lines():
        for iface, peer, pos, dig in rows:
            psk = seal(iface, peer) if peer.preshared_key else None
            yield (f"{prefix}{iface}\t{peer.public_key}\t{snap_id}\t{pos}\t{peer_copy_values(peer)}\t"
                   f"{BYTEA_PREFIX + psk.hex() if psk is not None else NULL}\t{BYTEA_PREFIX}{dig.hex()}\n")

    columns = ", ".join(PEER_COLUMNS)
    cursor.execute("SELECT row_security_active('peers')")
    if not cursor.fetchone()[0]:
        cursor.copy_expert(f"COPY peers ({columns}) FROM STDIN", _StreamedLines(lines()), size=1 << 16)
        return
    # PostgreSQL refuses COPY FROM into a table under row-level security (a server's own login); the policies
    # check every row of an INSERT instead. A few rows (a minute's changes): one multi-row INSERT. Many (a first
    # save): COPY into a temporary table, then one INSERT from it, several times faster than VALUES lists.
    if len(rows) <= RLS_VALUES_MAX:
        binary = psycopg2.Binary
        psycopg2.extras.execute_values(
            cursor, f"INSERT INTO peers ({columns}) VALUES %s",
            [(server_id, iface, peer.public_key, snap_id, pos,
              *(list(value) if isinstance(value, tuple) else value for value in peer_values(peer)),
              binary(seal(iface, peer)) if peer.preshared_key else None, binary(dig)) for iface, peer, pos, dig in rows],
            template=f"(%s, %s, %s, %s, %s, {PEER_VALUES_TEMPLATE}, %s, %s)", page_size=RLS_VALUES_MAX)
        return
    cursor.execute(f"CREATE TEMPORARY TABLE wgfleet_peer_rows ON COMMIT DROP AS SELECT {columns} FROM peers"
                   " WITH NO DATA")
    cursor.copy_expert(f"COPY pg_temp.wgfleet_peer_rows ({columns}) FROM STDIN", _StreamedLines(lines()), size=1 << 16)
    cursor.execute(f"INSERT INTO peers ({columns}) SELECT {columns} FROM pg_temp.wgfleet_peer_rows")
    cursor.execute("DROP TABLE pg_temp.wgfleet_peer_rows")


def write_save(cur, cipher, allow_plain: bool, server_id: str, source: str, key_id: bytes | None, plan: SavePlan,
               state_map: dict[str, str]) -> int:
    """Write ``plan`` as the server's new snapshot (its id): the rows it replaces closed, its new rows in, and
    the snapshot row, whose interface digests are ``state_map``, last."""
    iface_rows, key_rows, peer_rows, counts = plan.iface_rows, plan.key_rows, plan.peer_rows, plan.counts
    close_ifaces, close_keys, close_peers, close_all_peers = plan.close_ifaces, plan.close_keys, \
        plan.close_peers, plan.close_all_peers
    cur.execute("SELECT nextval(pg_get_serial_sequence('snapshots', 'id'))")
    snap_id = cur.fetchone()[0]
    if close_ifaces:
        cur.execute("UPDATE interfaces SET valid_to = %s WHERE server_id = %s AND valid_to IS NULL AND name = ANY(%s)",
                    (snap_id, server_id, close_ifaces))
    if close_keys:
        cur.execute("UPDATE server_keys SET valid_to = %s WHERE server_id = %s AND valid_to IS NULL"
                    " AND interface = ANY(%s)", (snap_id, server_id, close_keys))
    if close_all_peers:
        cur.execute("UPDATE peers SET valid_to = %s WHERE server_id = %s AND valid_to IS NULL AND interface = ANY(%s)",
                    (snap_id, server_id, close_all_peers))
    for name, keys in close_peers:
        cur.execute("UPDATE peers SET valid_to = %s WHERE server_id = %s AND interface = %s AND valid_to IS NULL"
                    " AND public_key = ANY(%s)", (snap_id, server_id, name, keys))
    if iface_rows:
        psycopg2.extras.execute_values(
            cur, "INSERT INTO interfaces (server_id, name, valid_from, settings, digest) VALUES %s",
            [(server_id, n, snap_id, s, d) for n, s, d in iface_rows])
    if key_rows:
        psycopg2.extras.execute_values(
            cur, "INSERT INTO server_keys (server_id, interface, valid_from, public_key, private_key, digest) VALUES %s",
            [(server_id, n, snap_id, pub, psycopg2.Binary(sealed), d) for n, pub, sealed, d in key_rows])
    if peer_rows:

        def seal_psk(iface: str, peer: Peer) -> bytes:
            return _secrets.seal(cipher, peer.preshared_key, _context("preshared_key", server_id, iface, peer.public_key),
                                 allow_plain)

        copy_peers(cur, server_id, snap_id, peer_rows, seal_psk)
    # The snapshot row goes in last: until the commit, no reader can see a snapshot with missing rows.
    cur.execute(
        "INSERT INTO snapshots (id, server_id, source, key_id, interface_count, peer_count, peer_rows_written,"
        " format, interface_digests, seal) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (snap_id, server_id, source, psycopg2.Binary(key_id) if key_id else None, counts["interfaces"],
         counts["peers"], counts["peer_rows_written"], FORMAT, json.dumps(state_map, sort_keys=True),
         psycopg2.Binary(snapshot_seal(cipher, server_id, snap_id, key_id, state_map))),
    )
    return snap_id
