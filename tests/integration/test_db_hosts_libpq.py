"""The host list with the libpq of each managed host's psycopg2 (Debian 12's python3-psycopg2 2.9.5 with
libpq 15; psycopg2 2.8.6 with libpq 11 in .venv-py39, older than the libpq 13 of Debian 11 and RHEL 9), against
a real primary and its streaming standby, the standby listed first: a writer reaches the primary, a restore the
first host that answers, a report the standby where libpq has prefer-standby, and where it does not (libpq
before 14, which refuses that value) the fallback connects and says why. Each interpreter runs a short script
in its own process; the server it reached is read with SQL there (pg_is_in_recovery, its port)."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.playbook import COLLECTIONS
from tests.helpers.postgres import PostgresServer, needs_postgres
from tests.helpers.replication import Standby
from tests.integration.test_managed_hosts import interpreter

pytestmark = [needs_postgres]

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
import psycopg2, psycopg2.extensions
from ansible_collections.wgfleet.wireguard.plugins.module_utils._dbconfig import DatabaseSettings
ports, password = json.loads(sys.argv[2]), sys.argv[3]
out = {"libpq": psycopg2.extensions.libpq_version()}
for use in ("write", "restore", "report"):
    settings = DatabaseSettings(host=["127.0.0.1", "127.0.0.1"], port=ports, user="postgres", password=password,
                                dbname="postgres", sslmode="disable", use=use)
    conn = psycopg2.connect(**settings.connect_kwargs())
    cur = conn.cursor()
    cur.execute("SELECT pg_is_in_recovery(), current_setting('port')::int")
    out[use] = [settings.connect_kwargs()["target_session_attrs"], settings.session()[1], *cur.fetchone()]
    conn.close()
try:
    psycopg2.connect(host="127.0.0.1", port=ports[1], user="postgres", password=password, dbname="postgres",
                     target_session_attrs="prefer-standby").close()
    out["prefer-standby"] = "accepted"
except psycopg2.Error as exc:
    out["prefer-standby"] = str(exc).strip().splitlines()[0]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def pair():
    primary = PostgresServer()
    standby = None
    try:
        standby = Standby(primary)
        yield primary, standby
    finally:
        if standby is not None:
            standby.destroy()
        primary.destroy()


@pytest.mark.parametrize("label", ["debian", "py39"])
def test_each_use_reaches_the_host_it_should_with_the_hosts_libpq(label, pair):
    primary, standby = pair
    python = interpreter(label)
    proc = subprocess.run([python, "-c", SCRIPT, str(COLLECTIONS), json.dumps([standby.port, primary.port]),
                           primary.params()["password"]], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr[-1500:]
    got = json.loads(proc.stdout)
    assert got["write"] == ["read-write", None, False, primary.port], "a writer must reach the primary only"
    assert got["restore"] == ["any", None, True, standby.port], "a restore takes the first host that answers"
    if got["libpq"] >= 140000:
        assert got["report"] == ["prefer-standby", None, True, standby.port]
        assert got["prefer-standby"] == "accepted"
    else:
        attrs, note, in_recovery, port = got["report"]
        assert (attrs, in_recovery, port) == ("any", True, standby.port)
        assert note.startswith(f"libpq {got['libpq'] // 10000} has no target_session_attrs=prefer-standby")
        assert "invalid target_session_attrs value" in got["prefer-standby"], "this libpq should refuse it"
