"""A throw-away PostgreSQL 15 server for the test session, run as the ``postgres`` system user.

pytest-postgresql refuses to run initdb as root, so the server is made here
with Debian's binaries under ``runuser``. It listens on 127.0.0.1 (a free
port) and on a Unix socket in its own directory: tests that run Ansible inside
a network namespace reach it through the socket, which namespaces share.
fsync is off: the data is thrown away, and it keeps each test fast.

Fixtures: ``pg_server`` (session: the server, with ``stop()``/``start()`` for
outage tests) and ``pg_db`` (a fresh, empty database per test).
"""
from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("WGFLEET_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
PASSWORD = "test-" + uuid.uuid4().hex[:12]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_postgres(*argv, check=True) -> subprocess.CompletedProcess:
    cmd = list(argv)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def bench_database(dsn: str | None = None, name: str = "bench"):
    """Connection parameters for a benchmark: the server ``dsn`` names, or a durable one (fsync on) started for
    the run and removed after it."""
    if dsn:
        yield {"dsn": dsn}
        return
    server = PostgresServer(durable=True)
    try:
        server.create_database(name)
        yield server.params(name)
    finally:
        server.destroy()


class PostgresServer:
    def __init__(self, durable: bool = False):
        self.durable = durable
        self._make_base("wgfleet-pg-")
        pwfile = self.base / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
        _as_postgres(PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "-A", "scram-sha-256",
                     f"--pwfile={pwfile}", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        self.running = False
        self.start()

    def _make_base(self, prefix: str) -> None:
        """A directory of the server's own (data, socket, log) that the postgres user may use, and a free port."""
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.base / "data"
        self.socket_dir = str(self.base)
        self.port = _free_port()
        self.log = self.base / "server.log"
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o755)

    def start(self) -> None:
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.socket_dir} "
                "-c max_connections=50")
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w", "-t", "60", "start")
        self.running = True

    def stop(self) -> None:
        if self.running:
            _as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)
            self.running = False

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def params(self, dbname: str = "postgres", unix_socket: bool = False) -> dict:
        """psycopg2.connect keyword arguments."""
        return {"host": self.socket_dir if unix_socket else "127.0.0.1", "port": self.port, "user": SUPERUSER,
                "password": PASSWORD, "dbname": dbname}

    def module_params(self, dbname: str, unix_socket: bool = False) -> dict:
        """The same as wg_backup/wg_restore options."""
        p = self.params(dbname, unix_socket)
        return {"login_host": p["host"], "login_port": p["port"], "login_user": p["user"],
                "login_password": p["password"], "db": dbname}

    def admin(self, sql: str, dbname: str = "postgres", params=None):
        import psycopg2

        conn = psycopg2.connect(**self.params(dbname))
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def create_database(self, name: str) -> str:
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with contextlib.suppress(Exception):
            self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _available() -> bool:
    return (PG_BIN / "initdb").exists() and (os.geteuid() != 0 or _has_postgres_user())


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
        return True
    except KeyError:
        return False


needs_postgres = pytest.mark.skipif(not _available(), reason=f"needs PostgreSQL binaries in {PG_BIN}")


@pytest.fixture(scope="session")
def pg_server():
    if not _available():
        pytest.skip(f"needs PostgreSQL binaries in {PG_BIN}")
    server = PostgresServer()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_db(pg_server):
    """A fresh empty database; yields its name."""
    if not pg_server.running:
        pg_server.start()
    name = pg_server.create_database("t_" + uuid.uuid4().hex[:10])
    try:
        yield name
    finally:
        if not pg_server.running:
            pg_server.start()
        pg_server.drop_database(name)


# --- logins with the database role's GRANTs ------------------------------------------------------------------
# The one list of what a server's and the monitor's logins may do is the database role's
# (roles/database/vars/main.yml); the tests grant exactly that and then sync, back up and restore with those
# logins, a unit test holds docs/backup-restore.md to the same list, and tests/integration/test_isolation.py
# runs the role itself and compares what it granted with this list.

SERVER_GROUP, MONITOR_GROUP = "wgfleet_server", "wgfleet_monitor"


def documented_grants() -> str:
    """The SQL between the ``-- grants:`` markers of docs/backup-restore.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "backup-restore.md").read_text()
    return text.split("-- grants: begin\n", 1)[1].split("-- grants: end", 1)[0]


def role_vars() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).resolve().parents[2] / "roles" / "database" / "vars" / "main.yml").read_text())


def role_privileges(db: str = "wgrest_backup") -> set:
    """(group role, kind, object, privilege, column) for every right the database role grants."""
    role = role_vars()
    server, monitor = role["database__server_group"], role["database__monitor_group"]
    out = set()
    for group, privs in ((server, role["database__server_database_privileges"]),
                         (monitor, role["database__monitor_database_privileges"])):
        out |= {(group, "DATABASE", db, priv, None) for priv in privs.split(",")}
        out.add((group, "SCHEMA", "public", "USAGE", None))  # roles/database/tasks/grants.yml
    for item in role["database__server_table_privileges"]:
        for table in item["objs"].split(","):
            out |= {(server, "TABLE", table, priv, None) for priv in item["privs"].split(",")}
    out |= {(server, "TABLE", table, "UPDATE", "valid_to") for table in role["database__server_closed_tables"]}
    out |= {(server, "SEQUENCE", seq, "USAGE", None) for seq in role["database__server_sequences"].split(",")}
    out |= {(monitor, "TABLE", table, "SELECT", None) for table in role["database__monitor_tables"].split(",")}
    return out


def parse_grants(sql: str) -> set:
    """The same tuples from GRANT statements as the docs write them."""
    out = set()
    for statement in re.findall(r"GRANT ([^;]+?) ON (?:(DATABASE|SCHEMA|SEQUENCE) )?([^;]+?) TO (\w+);", sql):
        privs, kind, objects, login = statement
        for obj in (o.strip() for o in objects.split(",")):
            for priv in re.findall(r"(\w+)(?: \((\w+)\))?", privs):
                out.add((login, kind or "TABLE", obj, priv[0], priv[1] or None))
    return out


def grant_sql(privileges: set) -> str:
    lines = []
    for login, kind, obj, priv, column in sorted(privileges, key=lambda p: tuple(str(x) for x in p)):
        what = f"{priv} ({column})" if column else priv
        target = obj if kind == "TABLE" else f"{kind} {obj}"
        lines.append(f'GRANT {what} ON {target} TO "{login}";')
    return "\n".join(lines)


@pytest.fixture
def logins(pg_server, pg_db):
    """Three logins for ``pg_db``: its owner (who will own the schema), a server's login and a monitor login,
    as psycopg2.connect arguments. The server and monitor logins have no right until :func:`grant`."""
    tag = uuid.uuid4().hex[:6]
    roles = {kind: (f"wgfleet_{kind}_{tag}", f"pw-{kind}-{uuid.uuid4().hex[:12]}")
             for kind in ("owner", "server", "monitor")}
    for name, password in roles.values():
        pg_server.admin(f"CREATE ROLE {name} LOGIN PASSWORD %s", params=(password,))
    pg_server.admin(f"ALTER DATABASE {pg_db} OWNER TO {roles['owner'][0]}")
    params = {kind: dict(pg_server.params(pg_db), user=name, password=password)
              for kind, (name, password) in roles.items()}
    try:
        yield params
    finally:
        pg_server.drop_database(pg_db)  # first: the roles own objects in it
        for name, _password in roles.values():
            with contextlib.suppress(Exception):
                pg_server.admin(f"DROP ROLE IF EXISTS {name}")


def ensure_group_roles(pg_server) -> None:
    """The two NOLOGIN group roles (cluster-wide: made once, kept for the session's server)."""
    for group in (SERVER_GROUP, MONITOR_GROUP):
        pg_server.admin(f"DO $$ BEGIN CREATE ROLE {group} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def grant(pg_server, logins: dict, db: str, server_id: str) -> None:
    """What the database role does for ``logins``: the group roles' GRANTs (run by the schema owner), the server
    login in ``wgfleet_server`` mapped to ``server_id`` and the monitor login in ``wgfleet_monitor``
    (wgfleet_logins rows, written by the owner)."""
    import psycopg2

    ensure_group_roles(pg_server)
    pg_server.admin(f'GRANT {SERVER_GROUP} TO "{logins["server"]["user"]}"')
    pg_server.admin(f'GRANT {MONITOR_GROUP} TO "{logins["monitor"]["user"]}"')
    conn = psycopg2.connect(**logins["owner"])
    try:
        with conn.cursor() as cur:
            cur.execute(grant_sql(role_privileges(db)))
            cur.execute("INSERT INTO wgfleet_logins (login, server_id) VALUES (%s, %s)",
                        (logins["server"]["user"], server_id))
            cur.execute("INSERT INTO wgfleet_logins (login, monitor) VALUES (%s, true)", (logins["monitor"]["user"],))
        conn.commit()
    finally:
        conn.close()
