"""A streaming standby of a test PostgreSQL (``tests.helpers.postgres.PostgresServer``) on this machine.

``Standby(primary)``: a replication login on the primary, ``pg_basebackup -R`` (which writes standby.signal and
primary_conninfo) into a directory of its own, started on another port of 127.0.0.1. ``kill(server)``: the
server dies as with its host (SIGKILL to the postmaster and every backend at once). Both are removed with
``destroy()``; nothing outlives the test.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from tests.helpers.postgres import PG_BIN, PostgresServer

REPLICATION_USER = "wgfleet_replication"
REPLICATION_PASSWORD = "repl-" + uuid.uuid4().hex[:12]


def _as_postgres(argv, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [str(a) for a in argv]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.strip()[-800:]}")
    return proc


class Standby(PostgresServer):
    """A hot standby of ``primary``, streaming asynchronously (the default: no synchronous_standby_names)."""

    def __init__(self, primary: PostgresServer, user: str = REPLICATION_USER, password: str = REPLICATION_PASSWORD,
                 slot: str | None = None, create_login: bool = True):  # no initdb: the data comes from the primary
        self.primary, self.durable = primary, False
        self._make_base("wgfleet-pg-standby-")
        if create_login:
            primary.admin(f"CREATE ROLE {user} REPLICATION LOGIN PASSWORD '{password}'")
        # initdb's pg_hba.conf already has "host replication all 127.0.0.1/32 scram-sha-256".
        _as_postgres([PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", primary.port, "-U", user,
                      "-D", self.data, "-R", "-X", "stream", "-c", "fast", "--no-sync", *(["-S", slot] if slot else [])],
                     env={"PGPASSWORD": password})
        self.running = False
        self.start()

    def replay_lsn(self) -> str:
        return self.admin("SELECT pg_last_wal_replay_lsn()")[0][0]

    def caught_up(self, timeout: float = 30) -> None:
        """Wait until everything the primary wrote so far has been replayed here."""
        target = self.primary.admin("SELECT pg_current_wal_lsn()")[0][0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.admin("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", params=(target,))[0][0]:
                return
            time.sleep(0.05)
        raise AssertionError(f"the standby did not replay up to {target} within {timeout} s")

    def detach(self) -> None:
        """Stop receiving WAL (primary_conninfo emptied and reloaded): what the primary commits now is
        what an asynchronous failover loses."""
        self.admin("ALTER SYSTEM SET primary_conninfo = ''")
        self.admin("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 15
        while self.admin("SELECT count(*) FROM pg_stat_wal_receiver")[0][0]:
            if time.monotonic() > deadline:
                raise AssertionError("the standby's WAL receiver did not stop")
            time.sleep(0.05)

    def promote(self) -> None:
        _as_postgres([PG_BIN / "pg_ctl", "-D", self.data, "-w", "-t", "60", "promote"])

    def in_recovery(self) -> bool:
        return self.admin("SELECT pg_is_in_recovery()")[0][0]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
    return out


def kill(server: PostgresServer) -> float:
    """SIGKILL the server's postmaster and every backend at once (no shutdown, no last WAL sent: its host died).
    Returns the monotonic time of the kill. Its System V shared memory id is removed too."""
    lines = (server.data / "postmaster.pid").read_text().splitlines()
    postmaster = int(lines[0])
    group = [postmaster, *_children(postmaster)]
    for pid in group:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)  # frozen at once, all of them: none gets to send or write anything more
    killed = time.monotonic()
    for pid in group:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in group):
        if time.monotonic() > deadline:
            raise AssertionError("the killed server's processes are still there")
        time.sleep(0.02)
    server.running = False
    if len(lines) >= 7 and len(lines[6].split()) == 2:
        subprocess.run(["ipcrm", "-m", lines[6].split()[1]], capture_output=True, check=False)
    return killed


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "zombie"
