# Private to the wgfleet.wireguard collection: not a public API.
"""Retention of the store's history: which snapshots a fleet keeps, and the pruning of the rest (wg_retention).

A policy keeps, per server, every snapshot newer than ``keep_days`` days, at least the latest ``keep_latest``
(never fewer than one: the latest state is never pruned), and optionally the last snapshot of each UTC day for
``daily_days`` days. Pruning deletes the other snapshots, then every closed history row (``valid_to`` set) of
``interfaces``, ``server_keys`` and ``peers`` that no kept snapshot needs, i.e. whose validity
``[valid_from, valid_to)`` holds no kept snapshot's id. A current row (``valid_to`` NULL) is never deleted.

Order and bounds: per server, snapshots go first, then rows, each in transactions of at most ``batch_size``
rows that hold the server's advisory lock (the one a save takes, ``_store_schema.LOCK_CLASS`` and
``hashtext(server_id)``), so a save waits at most one batch and never meets a snapshot whose rows are half gone;
a run cut short leaves only rows no snapshot needs, which the next run deletes. Check mode counts the same in
one read-only transaction and deletes nothing.

It runs with the schema owner's login from the controller (the owner bypasses row-level security and has
DELETE, which no server login has): never in the sync service, where a compromised server could erase its own
history. Plain Python (no Ansible).
"""
from __future__ import annotations

import dataclasses
import datetime

from ._fleet import check_servers, login_scope, require_readable_schema
from ._store import Store
from ._store_schema import LOCK_CLASS
from ._store_types import StoreError
from ._values import check_whole

MAX_DAYS = 36500  # a hundred years
MAX_KEEP_LATEST = 1_000_000
MAX_BATCH = 1_000_000
DEFAULT_BATCH = 5000
HISTORY_TABLES = ("interfaces", "server_keys", "peers")


@dataclasses.dataclass(frozen=True)
class Policy:
    """What a fleet keeps; every value checked on construction (an error names the option)."""

    keep_days: int
    keep_latest: int = 1
    daily_days: int = 0

    def __post_init__(self):
        check_whole("keep_days", self.keep_days, 0, MAX_DAYS)
        check_whole("keep_latest", self.keep_latest, 1, MAX_KEEP_LATEST)
        check_whole("daily_days", self.daily_days, 0, MAX_DAYS)

    def keep(self, snapshots: list[tuple[int, datetime.datetime]], now: datetime.datetime) -> set[int]:
        """The ids kept of one server's ``(id, created_at)`` snapshots (pure)."""
        ordered = sorted(snapshots)
        kept = {sid for sid, _t in ordered[-self.keep_latest:]}
        recent = now - datetime.timedelta(days=self.keep_days)
        kept.update(sid for sid, created in ordered if created >= recent)
        if self.daily_days:
            since = now - datetime.timedelta(days=self.daily_days)
            last_of_day: dict[datetime.date, int] = {}
            for sid, created in ordered:
                if created >= since:
                    last_of_day[created.astimezone(datetime.timezone.utc).date()] = sid
            kept.update(last_of_day.values())
        return kept


@dataclasses.dataclass
class ServerPrune:
    server_id: str
    snapshots: int
    kept: int
    deleted_snapshots: list[int]
    deleted_rows: dict[str, int]

    def report(self) -> dict:
        return {"snapshots": self.snapshots, "kept": self.kept, "deleted_snapshots": len(self.deleted_snapshots),
                "deleted_snapshot_ids": self.deleted_snapshots[:1000], "deleted_rows": dict(self.deleted_rows)}


# A closed row that no snapshot left in the table needs (with ``excluded``: none but those about to go).
_UNNEEDED = ("p.server_id = %(sid)s AND p.valid_to IS NOT NULL AND NOT EXISTS (SELECT 1 FROM snapshots s"
             " WHERE s.server_id = p.server_id AND s.id >= p.valid_from AND s.id < p.valid_to"
             " AND s.id <> ALL(%(excluded)s::bigint[]))")


def prune(store: Store, policy: Policy, servers=None, batch_size: int = DEFAULT_BATCH,
          check_mode: bool = False, now: datetime.datetime | None = None) -> list[ServerPrune]:
    """Apply ``policy`` to every server (or ``servers``); in check mode only count what would go.

    ``now``: the time the policy counts back from, the database's clock when not given (a simulation's own)."""
    servers = check_servers(servers)
    batch_size = check_whole("batch_size", batch_size, 1, MAX_BATCH)

    def plan(cur):
        version = require_readable_schema(cur, store.where())
        active, login, server, monitor = login_scope(cur, version)
        if active:  # a server's or the monitor's login: its plan would count only the rows it can see
            whose = f"the login of server {server!r}" if server is not None else \
                "the monitor login" if monitor else "mapped to no server"
            raise StoreError(f"wg_retention: login {login!r} in {store.where()} is {whose} and is bound by "
                             "row-level security; pruning every server's history needs the database owner's login")
        cur.execute("SELECT now()")
        when = now or cur.fetchone()[0]
        cur.execute("SELECT server_id, id, created_at FROM snapshots WHERE %(ids)s::text[] IS NULL"
                    " OR server_id = ANY(%(ids)s) ORDER BY server_id, id", {"ids": servers})
        by_server: dict[str, list] = {}
        for sid, snap_id, created in cur.fetchall():
            by_server.setdefault(sid, []).append((snap_id, created))
        out = []
        for sid, snaps in sorted(by_server.items()):
            kept = policy.keep(snaps, when)
            gone = [snap_id for snap_id, _c in snaps if snap_id not in kept]
            rows = dict.fromkeys(HISTORY_TABLES, 0)
            for table in HISTORY_TABLES if check_mode else ():  # a run counts what it deletes, under the lock
                cur.execute(f"SELECT count(*) FROM {table} p WHERE {_UNNEEDED}", {"sid": sid, "excluded": gone})
                rows[table] = cur.fetchone()[0]
            out.append(ServerPrune(sid, len(snaps), len(kept), gone, rows))
        return out

    planned = store._transaction(plan, readonly=True)
    if check_mode:
        return planned
    return [_prune_server(store, policy, p.server_id, batch_size, now) for p in planned]


def _lock(cur, server_id: str) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, server_id))


def _prune_server(store: Store, policy: Policy, server_id: str, batch_size: int, now) -> ServerPrune:
    """Snapshots first (decided again under the lock: a save may have added one), then rows, batch by batch."""

    def snapshots_batch(cur):
        _lock(cur, server_id)
        cur.execute("SELECT now()")
        when = now or cur.fetchone()[0]
        cur.execute("SELECT id, created_at FROM snapshots WHERE server_id = %s ORDER BY id", (server_id,))
        snaps = cur.fetchall()
        kept = policy.keep(snaps, when)
        gone = [snap_id for snap_id, _c in snaps if snap_id not in kept][:batch_size]
        if gone:
            cur.execute("DELETE FROM snapshots WHERE server_id = %s AND id = ANY(%s)", (server_id, gone))
        return len(snaps), len(kept), gone

    total, kept, deleted = None, 0, []
    while True:
        count, kept_now, gone = store._transaction(snapshots_batch)
        total = count if total is None else total
        kept = kept_now
        deleted.extend(gone)
        if len(gone) < batch_size:
            break
    rows = {}
    for table in HISTORY_TABLES:
        rows[table] = 0

        def rows_batch(cur, table=table):
            _lock(cur, server_id)
            cur.execute(f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT p.ctid FROM {table} p WHERE {_UNNEEDED}"
                        " LIMIT %(limit)s))", {"sid": server_id, "excluded": [], "limit": batch_size})
            return cur.rowcount

        while True:
            done = store._transaction(rows_batch)
            rows[table] += done
            if done < batch_size:
                break
    return ServerPrune(server_id, total, kept, deleted, rows)
