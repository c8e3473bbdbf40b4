"""A store written by the format-1 code (tests/fixtures/store_v1, made by that code) read by this one."""
from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import KeyCipher
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store import Store
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import parse, render
from tests.helpers.postgres import needs_postgres

pytestmark = [needs_postgres]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "store_v1"


@pytest.fixture
def legacy(pg_server, pg_db):
    conn = psycopg2.connect(**pg_server.params(pg_db))
    try:
        with conn.cursor() as cur:
            cur.execute((FIXTURE / "dump.sql").read_text())
        conn.commit()
    finally:
        conn.close()
    return json.loads((FIXTURE / "expected.json").read_text())


def test_format_1_snapshots_load_after_the_upgrade(pg_server, pg_db, legacy):
    cipher = KeyCipher.from_base64(legacy["encryption_key"])
    with Store(pg_server.params(pg_db), cipher) as store:
        store.migrate()
        for snap in legacy["snapshots"]:
            if not snap["encrypted"]:
                continue
            snap_id, state = store.load_state(snap["server_id"], snap["id"])
            assert snap_id == snap["id"]
            assert {n: render(i) for n, i in state.items()} == snap["state"]
    plain = next(s for s in legacy["snapshots"] if not s["encrypted"])
    with Store(pg_server.params(pg_db), None) as keyless:
        _snap_id, state = keyless.load_state(plain["server_id"])
        assert {n: render(i) for n, i in state.items()} == plain["state"]


def test_an_unchanged_format_1_state_is_sealed_once_and_rewrites_no_row(pg_server, pg_db, legacy):
    history = [s for s in legacy["snapshots"] if s["server_id"] == "legacy-srv"]
    state = {n: parse(text) for n, text in history[-1]["state"].items()}
    rows = {t: pg_server.admin(f"SELECT count(*) FROM {t}", dbname=pg_db)[0][0]
            for t in ("peers", "interfaces", "server_keys")}
    with Store(pg_server.params(pg_db), KeyCipher.from_base64(legacy["encryption_key"])) as store:
        store.migrate()
        sealed = store.save_state("legacy-srv", state)
        # The first save after the upgrade adds a sealed snapshot of the same rows, and writes none.
        assert sealed.changed and sealed.snapshot_id > history[-1]["id"]
        assert sealed.counts["peer_rows_written"] == 0
        again = store.save_state("legacy-srv", state)
        assert not again.changed and again.snapshot_id == sealed.snapshot_id
        assert {n: render(i) for n, i in store.load_state("legacy-srv")[1].items()} == history[-1]["state"]
        # The format-1 snapshots from before it still load.
        assert store.load_state("legacy-srv", history[0]["id"])[0] == history[0]["id"]
    assert {t: pg_server.admin(f"SELECT count(*) FROM {t}", dbname=pg_db)[0][0] for t in rows} == rows
    assert pg_server.admin("SELECT format FROM snapshots WHERE id = %s", dbname=pg_db,
                           params=(sealed.snapshot_id,)) == [(2,)]
