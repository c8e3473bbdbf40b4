# Private to the wgfleet.wireguard collection: not a public API.
"""The PostgreSQL store of server state, shared by wg_backup, wg_restore and wgrest-sync.

Layout (see docs/backup-restore.md): ``snapshots`` numbers each stored state of
a server; ``interfaces``, ``server_keys`` and ``peers`` hold versioned rows,
each valid from the snapshot that wrote it until the snapshot that replaced
it (``valid_to``, NULL while current). A snapshot is the set of rows valid at
it, so an unchanged peer is never written again and a one-peer change writes
one row. Keys are sealed by ``_secrets``; a keyed digest of every row tells a
change without decrypting, and proves on load that the row is what was written.

Stored format 2 (this code writes it; format 1 still loads): every row digest
starts with its format byte, and each snapshot carries a digest of every
interface's whole state (settings, key, peers in order) and a seal over those
and its own id, server and key, so that with an encryption key a snapshot
loads only when it is exactly the set of rows that key's holder saved as it.
The same interface digests let an unchanged save stop after one row read.

This file is the ``Store``: connection, transactions, migrations, snapshot lookups, the save's checks and
sync status. Split by job beside it: _store_schema.py (the schema as data), _store_codec.py (the row codec),
_store_plan.py (a save's pure plan), _store_write.py (a planned save's SQL), _store_load.py (a load's checks
and rows made into the model), _store_types.py (errors and records).

Plain Python (no Ansible): the wgrest-sync service uses it directly.
"""
from __future__ import annotations

import json

try:
    import psycopg2

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # the modules report missing_required_lib()
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

from . import _secrets
from ._dbconfig import check_server_id
from ._errors import scrub_keys
from ._secrets import KeyCipher, key_id_hex
from ._store_codec import FORMAT, digest_state
from ._store_load import check_key, check_loadable, read_state
from ._store_plan import check_guard, plan_save
from ._store_schema import LOCK_CLASS, MIGRATION_LOCK, MIGRATIONS, SCHEMA_VERSION
from ._store_types import SaveResult, Snapshot, StoreError, not_a_snapshot, parse_snapshot, parse_timestamp
from ._store_write import write_save
from ._values import check_ifname
from ._wgconf import Interface

# sync_status.error is for people: long enough for any message of ours, short enough for a table row.
ERROR_MAX = 2000
WHERE_MAX = 200  # the server and database a message names
_UNDEFINED_TABLE = "42P01"  # SQLSTATE undefined_table


class Store:
    """One connection to the state database; every call is one transaction."""

    def __init__(self, conn_params: dict, cipher: KeyCipher | None, allow_plaintext_keys: bool = False,
                 connect_now: bool = True):
        """``connect_now``: connect here, or at the first transaction (a module, whose work checks its own
        options first: a bad value is refused before any connection)."""
        if not HAS_PSYCOPG2:
            raise StoreError("the PostgreSQL store needs the Python library psycopg2, which is not installed")
        self.conn_params = {k: v for k, v in conn_params.items() if v not in (None, "")}
        self.cipher = cipher
        self.allow_plaintext_keys = allow_plaintext_keys
        self._conn = None
        if connect_now:
            self._connect()

    # -- connection -------------------------------------------------------------------------------------------

    def where(self) -> str:
        params = self.conn_params
        if "dsn" in params and "host" not in params:
            return "the server named by the dsn"  # a dsn may hold a password: never shown
        # Given by the user: a key given as a host or the database by mistake is not quoted (each part scrubbed
        # alone: a key after a '/' or ':' is one too), nor a 1 MB value.
        hosts = [scrub_keys(h) for h in str(params.get("host") or "the default socket").split(",")]
        ports = str(params.get("port") or 5432).split(",")
        if len(ports) != len(hosts):
            ports = ports[:1] * len(hosts)
        where = ", ".join(f"{h}:{p}" for h, p in zip(hosts, ports))
        dbname = scrub_keys(str(params.get("dbname") or "?"))
        where = f"{where}/{dbname}" if len(hosts) == 1 else f"({where})/{dbname}"
        return where if len(where) <= WHERE_MAX else f"{where[:WHERE_MAX]}... ({len(where)} characters)"

    def server(self) -> str:
        """The host and port this connection took (with several hosts: the one libpq chose)."""
        conn = self._conn
        info = getattr(conn, "info", None) if conn is not None and not conn.closed else None
        if info is None:
            return self.where()
        return f"{info.host}:{info.port}/{self.conn_params.get('dbname') or '?'}"

    def _clean(self, text: str) -> str:
        text = str(text).strip()
        password = self.conn_params.get("password")
        if password:
            text = text.replace(str(password), "********")
        return scrub_keys(text)

    def _connect(self) -> None:
        try:
            self._conn = psycopg2.connect(**self.conn_params)
        except psycopg2.Error as exc:
            # With several hosts libpq says why each one failed, a line each: one line here, for logs and status.
            message = "; ".join(line.strip() for line in self._clean(exc).splitlines() if line.strip())
            if "does not exist" in message and "database" in message:
                message += " (create it first, e.g. with community.postgresql.postgresql_db)"
            raise StoreError(f"cannot connect to PostgreSQL at {self.where()}: {message}") from None
        except (ValueError, TypeError) as exc:  # libpq refuses a value (a NUL, a wrong type)
            raise StoreError(f"cannot connect to PostgreSQL at {self.where()}: {self._clean(exc)}") from None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _transaction(self, work, readonly: bool = False, server_id: str | None = None):
        """Run ``work(cursor)`` in one transaction: committed when it returns, rolled back on any error.

        ``server_id``: the server whose rows ``work`` writes, named when row-level security refuses a row."""
        if self._conn is None or self._conn.closed:
            self._connect()
        conn = self._conn
        try:
            conn.set_session(isolation_level="REPEATABLE READ" if readonly else "READ COMMITTED", readonly=readonly)
            with conn.cursor() as cursor:
                result = work(cursor)
            conn.commit()
            return result
        except psycopg2.Error as exc:
            self._rollback_quietly()
            if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
                self.close()
            # The primary message only: the CONTEXT of a failed COPY quotes row values.
            diag = getattr(exc, "diag", None)
            message = (diag.message_primary if diag is not None else None) or str(exc).strip().splitlines()[0]
            if server_id is not None and "row-level security" in message:
                raise StoreError(
                    f"PostgreSQL at {self.where()}: login {self._login()!r} may not write rows of server "
                    f"{server_id!r} (the database refused them: {self._clean(message)})") from None
            raise StoreError(f"PostgreSQL at {self.where()}: {self._clean(message)}") from None
        except BaseException:
            self._rollback_quietly()
            raise

    def _login(self) -> str:
        return str(self.conn_params.get("user") or "(the default login)")

    @staticmethod
    def _visible_server(cur, table: str = "snapshots") -> tuple[bool, str, str | None]:
        """(row-level security applies to this login, the login, the server id the database maps it to)."""
        cur.execute("SELECT row_security_active(%s), session_user, wgfleet_login_server()", (table,))
        active, login, server = cur.fetchone()
        return bool(active), login, server

    def _not_visible(self, cur, server_id: str) -> str | None:
        """Why ``server_id``'s rows are hidden from this login, or None when row-level security does not apply."""
        active, login, server = self._visible_server(cur)
        if not active or server == server_id:
            return None
        mapped = f"it is the login of server {server!r}" if server is not None else \
            "it is not mapped to any server (no wgfleet_logins row, or revoked)"
        return f"no snapshot of server {server_id!r} is visible to login {login!r} in {self.where()} ({mapped})"

    def _rollback_quietly(self) -> None:
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.rollback()
        except psycopg2.Error:
            self.close()

    # -- schema -----------------------------------------------------------------------------------------------

    @staticmethod
    def _version(cur, one_query: bool = False) -> int:
        """The schema version, 0 when the database has none.

        ``one_query``: for a caller that stops when there is none (or has just made the table): a missing table
        fails the query, which aborts the transaction. Otherwise the table is looked up first and nothing fails.
        """
        if not one_query:
            cur.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
        try:
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        except psycopg2.Error as exc:
            if exc.pgcode != _UNDEFINED_TABLE:
                raise
            return 0
        return cur.fetchone()[0]

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(f"database {self.where()} has schema version {version}, newer than this collection "
                             f"knows ({SCHEMA_VERSION}); upgrade the collection")

    def migrate(self) -> bool:
        """Create or upgrade the schema; True when it did. Concurrent callers wait on an advisory lock.

        A schema that is already current is only read: a login with no CREATE or ALTER right may call this.
        """

        def work(cur):
            found = self._version(cur)
            if found == SCHEMA_VERSION:
                return False
            self._refuse_newer(found)
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, MIGRATION_LOCK))
            # Again, under the lock: another host may have done it meanwhile. (Through the table itself: an
            # advisory lock does not refresh this transaction's view of the catalog, a table access does.)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now(), description text NOT NULL)")
            current = self._version(cur, one_query=True)
            self._refuse_newer(current)
            for version in range(current + 1, SCHEMA_VERSION + 1):
                description, sql = MIGRATIONS[version]
                cur.execute(sql)
                cur.execute("INSERT INTO schema_version (version, description) VALUES (%s, %s)", (version, description))
            return current < SCHEMA_VERSION

        return self._transaction(work)

    def schema_version(self) -> int:
        """The schema version in the database, 0 when it has none."""
        return self._transaction(self._version, readonly=True)

    def _require_schema(self, cur) -> None:
        # One round trip: every load and save asks, and stops when there is no schema.
        version = self._version(cur, one_query=True)
        if version == 0:
            raise StoreError(f"database {self.where()} holds no wgfleet state yet (no schema; run wg_backup first)")
        self._refuse_newer(version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"database {self.where()} has schema version {version}, older than this collection's "
                f"({SCHEMA_VERSION}); upgrade it first with the schema owner's login (wg_backup with schema_only: true)"
            )

    # -- snapshots --------------------------------------------------------------------------------------------

    @staticmethod
    def _snapshot_from_row(row) -> Snapshot:
        return Snapshot(row[0], row[1], row[2], row[3], bytes(row[4]) if row[4] is not None else None, row[5], row[6],
                        row[7], row[8], bytes(row[9]) if row[9] is not None else None)

    _SNAPSHOT_SQL = ("SELECT id, server_id, created_at, source, key_id, interface_count, peer_count, format,"
                     " interface_digests, seal FROM snapshots")

    def _latest(self, cur, server_id: str) -> Snapshot | None:
        cur.execute(self._SNAPSHOT_SQL + " WHERE server_id = %s ORDER BY id DESC LIMIT 1", (server_id,))
        row = cur.fetchone()
        return self._snapshot_from_row(row) if row else None

    def _resolve(self, cur, server_id: str, snapshot) -> Snapshot:
        if snapshot is None:
            found = self._latest(cur, server_id)
            if found is None:
                raise StoreError(self._not_visible(cur, server_id)
                                 or f"server_id: {server_id!r} has no snapshot in {self.where()}")
            return found
        if isinstance(snapshot, int) and not isinstance(snapshot, bool):
            cur.execute(self._SNAPSHOT_SQL + " WHERE server_id = %s AND id = %s", (server_id, snapshot))
            row = cur.fetchone()
            if row is None:
                raise StoreError(self._not_visible(cur, server_id)
                                 or f"snapshot: {snapshot} is not a snapshot of server {server_id!r}")
            return self._snapshot_from_row(row)
        if isinstance(snapshot, str):
            when = parse_timestamp(snapshot)
            cur.execute(
                self._SNAPSHOT_SQL + " WHERE server_id = %s AND created_at <= %s ORDER BY id DESC LIMIT 1",
                (server_id, when),
            )
            row = cur.fetchone()
            if row is None:
                raise StoreError(self._not_visible(cur, server_id)
                                 or f"snapshot: server {server_id!r} has no snapshot taken at or before {snapshot}")
            return self._snapshot_from_row(row)
        raise not_a_snapshot(snapshot)

    def list_snapshots(self, server_id: str) -> list[Snapshot]:
        check_server_id("server_id", server_id)

        def work(cur):
            self._require_schema(cur)
            cur.execute(self._SNAPSHOT_SQL + " WHERE server_id = %s ORDER BY id", (server_id,))
            return [self._snapshot_from_row(row) for row in cur.fetchall()]

        return self._transaction(work, readonly=True)

    def _check_rotation(self, snap: Snapshot | None, previous: KeyCipher | None) -> bool:
        """Whether a save moves the history from ``previous`` to this store's key (a key rotation).

        Only the holder of the key that encrypted the latest snapshot may continue it under another key;
        a history already under the new key is saved as usual (a rotation run twice changes nothing).
        """
        if previous is None or snap is None or self.cipher is None or snap.key_id == self.cipher.key_id:
            return False
        if snap.key_id != previous.key_id:
            raise StoreError(
                f"previous_encryption_key does not match the key that encrypted snapshot {snap.id} of server "
                f"{snap.server_id!r} (key id {key_id_hex(snap.key_id)}; the previous key has id "
                f"{key_id_hex(previous.key_id)}, the new one {key_id_hex(self.cipher.key_id)})")
        return True

    # -- save -------------------------------------------------------------------------------------------------

    def save_state(self, server_id: str, interfaces: dict[str, Interface], source: str = "wg_backup",
                   check_mode: bool = False, partial: bool = False, guard: bool = False,
                   previous_cipher: KeyCipher | None = None) -> SaveResult:
        """Store ``interfaces`` as the new state of ``server_id``, in one transaction.

        Only what differs from the latest snapshot is written; when nothing
        does, no snapshot is added and ``changed`` is False. With ``partial``
        the stored interfaces not in ``interfaces`` stay as they are; without
        it they are gone from the new state (still in older snapshots).
        With ``guard`` (the sync service) a state that drops a stored interface
        or replaces a stored private key is refused (SaveRefused): on a
        half-built host that is a missing mount or a fresh key, not the truth.
        ``check_mode`` computes the same result and rolls back.
        With ``previous_cipher`` (key rotation), a history whose latest snapshot
        was encrypted with that key is continued under this store's key: every
        row is written again, sealed with the new key. Older snapshots stay under
        the previous key (only it opens them); an unchanged history already under
        the new key is left alone.
        """
        check_server_id("server_id", server_id)
        if previous_cipher is not None and self.cipher is None:
            raise StoreError("previous_encryption_key: a key rotation needs the new key in encryption_key")
        for name in interfaces:
            check_ifname("interfaces", name)
        if self.cipher is None and not self.allow_plaintext_keys and _has_secrets(interfaces):
            # Fails before any database work, with the same words as _secrets.seal.
            _secrets.seal(None, "", b"", False)
        digests = digest_state(self.cipher, server_id, interfaces)
        return self._transaction(
            lambda cur: self._save(cur, server_id, interfaces, digests, source, check_mode, partial, guard,
                                   previous_cipher), server_id=server_id)

    def _save(self, cur, server_id, interfaces, digests, source, check_mode, partial, guard,
              previous_cipher=None) -> SaveResult:
        cipher = self.cipher
        key_id = cipher.key_id if cipher else None
        if check_mode and self._version(cur) == 0:
            peers = sum(len(i.peers) for i in interfaces.values())
            return SaveResult(None, True, {"interfaces": len(interfaces), "peers": peers, "peer_rows_written": peers})
        self._require_schema(cur)
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, server_id))
        latest = self._latest(cur, server_id)
        if latest is None:
            # Nothing visible: a first save, or another server's history. The database refuses the rows of
            # another server anyway; this says so before any is sent.
            active, login, server = self._visible_server(cur)
            if active and server != server_id:
                raise StoreError(f"login {login!r} may not write rows of server {server_id!r} in {self.where()} ("
                                 + (f"it is the login of server {server!r})" if server is not None else
                                    "it is not mapped to any server: no wgfleet_logins row, or revoked)"))
        rotating = self._check_rotation(latest, previous_cipher)
        if not rotating:
            check_key(cipher, latest)

        if latest is not None and latest.format == FORMAT and latest.key_id == key_id \
                and isinstance(latest.interface_digests, dict):
            stored_map = latest.interface_digests
            if (partial or set(stored_map) == set(digests)) and \
                    all(stored_map.get(n) == d.state.hex() for n, d in digests.items()):
                # Nothing differs: one row read, nothing written.
                return SaveResult(latest.id, False, {"interfaces": latest.interface_count,
                                                     "peers": latest.peer_count, "peer_rows_written": 0})

        cur.execute("SELECT name, digest FROM interfaces WHERE server_id = %s AND valid_to IS NULL", (server_id,))
        stored_ifaces = {name: bytes(d) for name, d in cur.fetchall()}
        cur.execute("SELECT interface, digest, public_key FROM server_keys WHERE server_id = %s AND valid_to IS NULL",
                    (server_id,))
        stored_keys = {name: (bytes(d), pub) for name, d, pub in cur.fetchall()}
        cur.execute(
            "SELECT interface, public_key, position, digest FROM peers WHERE server_id = %s AND valid_to IS NULL",
            (server_id,),
        )
        stored_peers: dict[str, dict[str, tuple[int, bytes]]] = {}
        for iface, key, pos, dig in cur.fetchall():
            stored_peers.setdefault(iface, {})[key] = (pos, bytes(dig))
        if guard:
            check_guard(cipher, server_id, interfaces, partial, stored_ifaces, stored_keys)

        plan = plan_save(cipher, server_id, interfaces, digests, latest, stored_ifaces, stored_keys, stored_peers,
                         partial, rotating, self.allow_plaintext_keys)
        kept, counts = plan.kept, plan.counts
        if not plan.changed:
            return SaveResult(latest.id, False, counts)
        if check_mode:
            return SaveResult(None, True, counts)

        state_map = {name: d.state.hex() for name, d in digests.items()}
        if kept:
            state_map.update(self._kept_digests(cur, server_id, latest, kept))
        snap_id = write_save(cur, cipher, self.allow_plaintext_keys, server_id, source, key_id, plan, state_map)
        return SaveResult(snap_id, True, counts)

    def _kept_digests(self, cur, server_id: str, latest: Snapshot, kept: list[str]) -> dict[str, str]:
        """The state digests of the interfaces a partial save carries over."""
        if latest.format == FORMAT and isinstance(latest.interface_digests, dict) \
                and all(n in latest.interface_digests for n in kept):
            return {n: latest.interface_digests[n] for n in kept}
        # A format-1 snapshot has none: read those interfaces (checked as a load checks them) to make them.
        _sid, state = read_state(self, cur, server_id, latest, kept, current=True)
        return {n: d.state.hex() for n, d in digest_state(self.cipher, server_id, state).items()}

    # -- load -------------------------------------------------------------------------------------------------

    def load_state(self, server_id: str, snapshot: int | str | None = None,
                   interfaces: list[str] | None = None) -> tuple[int, dict[str, Interface]]:
        """The state of ``server_id`` at ``snapshot`` (None: latest; int: id; str: ISO 8601 time).

        Every key is decrypted and every row checked against its digest, and the
        whole against the snapshot's seal, before anything is returned: a wrong
        key, a damaged or forged row raises StoreError.
        """
        check_server_id("server_id", server_id)
        snapshot = parse_snapshot(snapshot)
        # None or an empty list: every interface (as wg_backup saves every one without a list).
        interfaces = list(interfaces) if interfaces else None
        for name in interfaces or ():
            check_ifname("interfaces", name)

        def work(cur):
            self._require_schema(cur)
            snap = self._resolve(cur, server_id, snapshot)
            check_loadable(self.cipher, cur, snap)
            current = snapshot is None or self._latest(cur, server_id).id == snap.id
            return read_state(self, cur, server_id, snap, interfaces, current)

        return self._transaction(work, readonly=True)

    # -- sync status ------------------------------------------------------------------------------------------

    def record_sync(self, server_id: str, ok: bool, error: str | None, counts: dict, duration: float) -> None:
        """Upsert the server's sync_status row (the wgrest-sync service's health)."""
        check_server_id("server_id", server_id)
        if error is not None:
            error = self._clean(error)[:ERROR_MAX]

        def work(cur):
            self._require_schema(cur)
            cur.execute(
                """
                INSERT INTO sync_status AS s (server_id, last_attempt_at, last_success_at, ok, error,
                                              consecutive_failures, counts, duration_seconds)
                VALUES (%(sid)s, now(), CASE WHEN %(ok)s THEN now() END, %(ok)s, %(error)s,
                        CASE WHEN %(ok)s THEN 0 ELSE 1 END, %(counts)s, %(duration)s)
                ON CONFLICT (server_id) DO UPDATE SET
                    last_attempt_at = excluded.last_attempt_at,
                    last_success_at = coalesce(excluded.last_success_at, s.last_success_at),
                    ok = excluded.ok,
                    error = excluded.error,
                    consecutive_failures = CASE WHEN excluded.ok THEN 0 ELSE s.consecutive_failures + 1 END,
                    counts = excluded.counts,
                    duration_seconds = excluded.duration_seconds
                """,
                {"sid": server_id, "ok": bool(ok), "error": error, "counts": json.dumps(counts or {}),
                 "duration": float(duration)},
            )

        self._transaction(work, server_id=server_id)

    def sync_status(self, server_id: str) -> dict | None:
        def work(cur):
            self._require_schema(cur)
            cur.execute(
                "SELECT server_id, last_attempt_at, last_success_at, ok, error, consecutive_failures, counts,"
                " duration_seconds FROM sync_status WHERE server_id = %s", (server_id,))
            row = cur.fetchone()
            if row is None:
                return None
            keys = ("server_id", "last_attempt_at", "last_success_at", "ok", "error", "consecutive_failures",
                    "counts", "duration_seconds")
            return {key: row[index] for index, key in enumerate(keys)}

        return self._transaction(work, readonly=True)


def _has_secrets(interfaces: dict[str, Interface]) -> bool:
    return any(i.private_key or any(p.preshared_key for p in i.peers) for i in interfaces.values())
