# Private to the wgfleet.wireguard collection: not a public API.
"""The store's schema as data: its version, the migrations that make it (tables, indexes, row-level security)
and the advisory-lock namespaces every writer of the store shares (_store.py runs them, _rekey.py and
_retention.py take the save lock). Pure: no database.
"""
from __future__ import annotations

SCHEMA_VERSION = 4
# pg_advisory_xact_lock(int, int) namespaces: one for migrations, one per server for saves.
LOCK_CLASS = 0x5767  # "Wg"
MIGRATION_LOCK = 1

MIGRATIONS: dict[int, tuple[str, str]] = {
    1: ("versioned interfaces, server keys and peers; snapshots; sync status", """
CREATE TABLE snapshots (
    id bigserial PRIMARY KEY,
    server_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    source text NOT NULL,
    key_id bytea,
    interface_count integer NOT NULL,
    peer_count integer NOT NULL,
    peer_rows_written integer NOT NULL
);
CREATE INDEX snapshots_by_server_time ON snapshots (server_id, created_at);
CREATE INDEX snapshots_by_server_id ON snapshots (server_id, id);
CREATE TABLE interfaces (
    server_id text NOT NULL,
    name text NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint,
    settings jsonb NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (server_id, name, valid_from)
);
CREATE TABLE server_keys (
    server_id text NOT NULL,
    interface text NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint,
    public_key text NOT NULL,
    private_key bytea NOT NULL,
    digest bytea NOT NULL,
    PRIMARY KEY (server_id, interface, valid_from)
);
CREATE TABLE peers (
    server_id text NOT NULL,
    interface text NOT NULL,
    public_key text NOT NULL,
    valid_from bigint NOT NULL,
    valid_to bigint,
    position bigint NOT NULL,
    allowed_ips text[] NOT NULL,
    endpoint text,
    persistent_keepalive integer NOT NULL,
    name text,
    preshared_key bytea,
    digest bytea NOT NULL,
    PRIMARY KEY (server_id, interface, public_key, valid_from)
);
CREATE INDEX peers_current ON peers (server_id, interface) WHERE valid_to IS NULL;
CREATE TABLE sync_status (
    server_id text PRIMARY KEY,
    last_attempt_at timestamptz NOT NULL,
    last_success_at timestamptz,
    ok boolean NOT NULL,
    error text,
    consecutive_failures integer NOT NULL DEFAULT 0,
    counts jsonb NOT NULL DEFAULT '{}',
    duration_seconds double precision NOT NULL
);
"""),
}
MIGRATIONS[2] = ("snapshots sealed: digest format, per-interface state digests, seal", """
ALTER TABLE snapshots
    ADD COLUMN format smallint NOT NULL DEFAULT 1,
    ADD COLUMN interface_digests jsonb,
    ADD COLUMN seal bytea;
""")
# Row-level security: a login sees and writes only the rows of the server id the database maps it to
# (wgfleet_logins, which only the owner reads and writes); a monitor login also reads every server's snapshots
# and sync status. The owner bypasses it (migrations, rekeys, retention). The functions read session_user: inside
# a SECURITY DEFINER function current_user is the function's owner, session_user is the login that connected.
_RLS_TABLES = ("snapshots", "interfaces", "server_keys", "peers", "sync_status")
_OWN = "server_id = (SELECT wgfleet_login_server())"
MIGRATIONS[3] = ("per-server logins: wgfleet_logins, row-level security on every server's rows", """
CREATE TABLE wgfleet_logins (
    login name PRIMARY KEY,
    server_id text,
    monitor boolean NOT NULL DEFAULT false,
    CHECK (monitor = (server_id IS NULL))
);
REVOKE ALL ON wgfleet_logins FROM PUBLIC;
CREATE FUNCTION wgfleet_login_server() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT server_id FROM public.wgfleet_logins WHERE login = session_user $$;
CREATE FUNCTION wgfleet_login_monitor() RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT coalesce((SELECT monitor FROM public.wgfleet_logins WHERE login = session_user), false) $$;
""" + "".join(f"""
ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_select ON {table} FOR SELECT TO PUBLIC USING ({_OWN});
CREATE POLICY own_insert ON {table} FOR INSERT TO PUBLIC WITH CHECK ({_OWN});
CREATE POLICY own_update ON {table} FOR UPDATE TO PUBLIC USING ({_OWN}) WITH CHECK ({_OWN});
""" for table in _RLS_TABLES) + "".join(f"""
CREATE POLICY monitor_select ON {table} FOR SELECT TO PUBLIC USING ((SELECT wgfleet_login_monitor()));
""" for table in ("snapshots", "sync_status")))
# A setting the registry stores since this schema (Setting.stored = 4): its column; rows before it hold NULL,
# which the codec leaves out of their digest input, so every stored digest still proves its row.
MIGRATIONS[4] = ("peer expiries stored", """
ALTER TABLE peers ADD COLUMN expires text;
""")
