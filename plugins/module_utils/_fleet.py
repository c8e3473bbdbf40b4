# Private to the wgfleet.wireguard collection: not a public API.
"""The fleet as the database sees it: each server's snapshots and its sync health (read only).

What wg_snapshot_info, wg_fleet_info and the fleet report read. Every query
touches only ``schema_version``, ``snapshots`` and ``sync_status``, so the
monitor login of the isolation design (SELECT on those three tables, every
server's rows under row-level security) is enough; a server's own login sees
its own rows only. Nothing read here holds a key: snapshots carry counts, a
key id and digests (the digests and seals are not returned), sync_status a
scrubbed error. Ages are computed by the database's clock, so a controller
whose clock is off does not call a fresh server stale.

Plain Python (no Ansible).
"""
from __future__ import annotations

import datetime

from ._dbconfig import check_server_id
from ._errors import WgValueError, scrub_keys, shown
from ._store import Store
from ._store_schema import SCHEMA_VERSION
from ._store_types import StoreError, parse_timestamp
from ._values import check_positive

# A bound on list sizes and intervals that any fleet stays far under (a week of seconds, a million rows).
MAX_LIMIT = 1_000_000
MAX_INTERVAL = 7 * 86400
MAX_STALE_INTERVALS = 10_000


def check_time(option: str, value) -> datetime.datetime | None:
    """An ISO 8601 time (no offset means UTC), or None when not given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64 or not value.isprintable():
        raise WgValueError(f"{option}: {shown(value)} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)")
    try:
        return parse_timestamp(value)
    except WgValueError:
        raise WgValueError(f"{option}: {shown(value)} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)") from None


def check_servers(servers) -> list[str] | None:
    """The ``servers`` option: a list of server ids, or None for every server."""
    if servers is None:
        return None
    if not isinstance(servers, (list, tuple)):
        raise WgValueError(f"servers: {shown(servers)} is not a list of server ids")
    return [check_server_id("servers", s) for s in servers]


def require_readable_schema(cur, where: str) -> int:
    """Any schema this code can read (1 up to its own version); the reads use only columns of version 1."""
    version = Store._version(cur)
    if version == 0:
        raise StoreError(f"database {where} holds no wgfleet state yet (no schema; run wg_backup first)")
    if version > SCHEMA_VERSION:
        raise StoreError(f"database {where} has schema version {version}, newer than this collection knows "
                         f"({SCHEMA_VERSION}); upgrade the collection")
    return version


def login_scope(cur, version: int) -> tuple[bool, str, str | None, bool]:
    """(row-level security applies, the login, the server id it is mapped to, it is the monitor login).

    Before schema 3 there are no per-server logins: every login sees every row."""
    if version < 3:
        return False, "", None, False
    cur.execute("SELECT row_security_active('snapshots'), session_user, wgfleet_login_server(),"
                " wgfleet_login_monitor()")
    active, login, server, monitor = cur.fetchone()
    return bool(active), login, server, bool(monitor)


def _whose(login: str, server: str | None) -> str:
    return (f"login {login!r} is the login of server {server!r} and sees only that server's rows" if server is not None
            else f"login {login!r} is mapped to no server and sees no rows (no wgfleet_logins row, or revoked)")


def require_fleet_reader(cur, where: str, module: str, server_id: str | None = None) -> int:
    """The schema's version, once this login may read every server's snapshots and sync status (the monitor,
    the owner), or ``server_id``'s when one is given (its own login too). A server's login would otherwise
    see its own rows only and report a fleet of one, or no snapshot of another server, as if that were all."""
    version = require_readable_schema(cur, where)
    active, login, server, monitor = login_scope(cur, version)
    if active and not monitor and (server_id is None or server != server_id):
        asked = f"server {server_id!r}" if server_id is not None else "every server"
        raise StoreError(f"{module}: {_whose(login, server)} in {where}; reading {asked} needs the monitor login "
                         "(database_monitor_user) or the database owner")
    return version


def _iso(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def snapshot_info(store: Store, server_id: str, since=None, until=None, limit=None) -> list[dict]:
    """A server's snapshots, oldest first: id, time, source, counts and whether it is encrypted.

    ``since``/``until`` (ISO 8601, inclusive) bound the time; ``limit`` keeps the newest that many.
    """
    check_server_id("server_id", server_id)
    start, end = check_time("since", since), check_time("until", until)
    if start and end and start > end:
        raise WgValueError(f"since: {since!r} is after until ({until!r})")
    if limit is not None:
        limit = check_positive("limit", limit, MAX_LIMIT, integer=True)

    def work(cur):
        require_fleet_reader(cur, store.where(), "wg_snapshot_info", server_id)
        cur.execute(
            "SELECT * FROM (SELECT id, created_at, source, interface_count, peer_count, peer_rows_written,"
            " key_id IS NOT NULL FROM snapshots WHERE server_id = %(sid)s"
            " AND (%(start)s::timestamptz IS NULL OR created_at >= %(start)s)"
            " AND (%(end)s::timestamptz IS NULL OR created_at <= %(end)s)"
            " ORDER BY id DESC LIMIT %(limit)s) AS newest ORDER BY id",
            {"sid": server_id, "start": start, "end": end, "limit": limit})
        return [{"id": row[0], "created_at": _iso(row[1]), "source": row[2], "interfaces": row[3], "peers": row[4],
                 "peer_rows_written": row[5], "encrypted": row[6]} for row in cur.fetchall()]

    return store._transaction(work, readonly=True)


def fleet_info(store: Store, interval: float = 60.0, stale_intervals: float = 3, servers=None) -> dict:
    """Every server the database knows (from ``sync_status`` and ``snapshots``), with its sync health.

    A server is ``stale`` when its last successful sync is older than ``stale_intervals`` times ``interval``
    seconds, or it never had one; ``failing`` when its last attempt failed. ``servers`` limits the list (a
    server named there but unknown to the database is listed as stale, with ``known: false``).
    """
    interval = check_positive("interval", interval, MAX_INTERVAL)
    stale_intervals = check_positive("stale_intervals", stale_intervals, MAX_STALE_INTERVALS)
    servers = check_servers(servers)
    limit = interval * stale_intervals

    def work(cur):
        require_fleet_reader(cur, store.where(), "wg_fleet_info")
        cur.execute("SELECT now()")
        now = cur.fetchone()[0]
        cur.execute(
            "SELECT server_id, last_attempt_at, last_success_at, ok, error, consecutive_failures, counts,"
            " duration_seconds, extract(epoch FROM now() - last_attempt_at)::float8,"
            " extract(epoch FROM now() - last_success_at)::float8 FROM sync_status"
            " WHERE %(ids)s::text[] IS NULL OR server_id = ANY(%(ids)s)", {"ids": servers})
        status = {row[0]: row[1:] for row in cur.fetchall()}
        cur.execute(
            "SELECT DISTINCT ON (server_id) server_id, id, created_at, interface_count, peer_count,"
            " extract(epoch FROM now() - created_at)::float8 FROM snapshots"
            " WHERE %(ids)s::text[] IS NULL OR server_id = ANY(%(ids)s) ORDER BY server_id, id DESC",
            {"ids": servers})
        latest = {row[0]: row[1:] for row in cur.fetchall()}
        return now, status, latest

    now, status, latest = store._transaction(work, readonly=True)
    names = sorted(set(status) | set(latest) | set(servers or ()))
    rows = [_server_row(name, status.get(name), latest.get(name), limit) for name in names]
    return {
        "checked_at": _iso(now),
        "stale_after_seconds": limit,
        "servers": rows,
        "stale": [r["server_id"] for r in rows if r["stale"]],
        "failing": [r["server_id"] for r in rows if r["failing"]],
    }


def _server_row(name: str, status, latest, limit: float) -> dict:
    row = {"server_id": name, "known": status is not None or latest is not None, "sync": status is not None}
    if status is not None:
        attempt, success, ok, error, failures, counts, duration, attempt_age, success_age = status
        row.update(last_attempt_at=_iso(attempt), last_success_at=_iso(success), ok=bool(ok),
                   error=scrub_keys(error) if error else None, consecutive_failures=failures,
                   sync_counts={k: v for k, v in (counts or {}).items() if isinstance(v, (int, float, str))},
                   duration_seconds=duration,
                   attempt_age_seconds=round(attempt_age, 3),
                   success_age_seconds=round(success_age, 3) if success_age is not None else None)
    else:
        row.update(last_attempt_at=None, last_success_at=None, ok=None, error=None, consecutive_failures=None,
                   sync_counts={}, duration_seconds=None, attempt_age_seconds=None, success_age_seconds=None)
    if latest is not None:
        snap_id, created, ifaces, peers, snap_age = latest
        row.update(snapshot_id=snap_id, snapshot_at=_iso(created), interfaces=ifaces, peers=peers,
                   snapshot_age_seconds=round(snap_age, 3))
    else:
        row.update(snapshot_id=None, snapshot_at=None, interfaces=None, peers=None, snapshot_age_seconds=None)
    age = row["success_age_seconds"]
    row["stale"] = age is None or age > limit
    row["failing"] = row["ok"] is False
    return row
