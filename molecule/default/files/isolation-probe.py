# Run inside a server's wgrest-sync container (docker exec -i ... python3 - OTHER_ID < this file), with nothing
# but what an attacker who took that server finds there: the container's WGSYNC_DB_* settings and its secret
# files. It tries to reach another server's state (OTHER_ID) and prints what happened as JSON, never a secret:
# - rows of OTHER_ID seen through this server's login, per table (SQL with psycopg2, not the collection's store),
#   and this server's own rows (so that a query that sees nothing at all cannot pass for isolation);
# - an INSERT of a snapshot and of a sync_status row for OTHER_ID (refused?), the same INSERT for this server's
#   own id inside a savepoint (accepted, then rolled back: the statement itself is valid);
# - UPDATEs that would close OTHER_ID's current rows and change its sync_status (rows touched);
# - OTHER_ID's sealed private keys (the second argument: "SERVER INTERFACE HEX" each, read by the database's
#   administrator) opened with this server's key by AES-GCM directly, and this server's own as a control;
# - the collection's Store.load_state(OTHER_ID) with this server's key.
import base64
import json
import os
import sys

import psycopg2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

other, blobs = sys.argv[1], json.loads(sys.argv[2])
env = os.environ
own = env["WGSYNC_SERVER_ID"]
with open(env["WGSYNC_DB_PASSWORD_FILE"], encoding="utf-8") as f:
    password = f.read().strip()
with open(env["WGSYNC_ENCRYPTION_KEY_FILE"], encoding="utf-8") as f:
    key = f.read().strip()
params = {"host": env["WGSYNC_DB_HOST"], "port": int(env.get("WGSYNC_DB_PORT") or 5432),
          "dbname": env["WGSYNC_DB_NAME"], "user": env["WGSYNC_DB_USER"], "password": password,
          "sslmode": env.get("WGSYNC_DB_SSLMODE") or "prefer", "connect_timeout": 10}
if env.get("WGSYNC_DB_SSLROOTCERT"):
    params["sslrootcert"] = env["WGSYNC_DB_SSLROOTCERT"]
out = {"login": params["user"], "own": own, "other": other, "seen": {}, "own_rows": {}, "writes": {}}


def refused(cur, sql, args):
    """None when the statement went through (rolled back after), else the error's SQLSTATE and first line."""
    cur.execute("SAVEPOINT probe")
    try:
        cur.execute(sql, args)
        return None if cur.rowcount else "0 rows"
    except psycopg2.Error as exc:
        return f"{exc.pgcode}: {str(exc).splitlines()[0]}"
    finally:
        cur.execute("ROLLBACK TO SAVEPOINT probe")


conn = psycopg2.connect(**params)
try:
    with conn.cursor() as cur:
        for table in ("snapshots", "interfaces", "server_keys", "peers", "sync_status"):
            for server, into in ((other, "seen"), (own, "own_rows")):
                cur.execute(f"SELECT count(*) FROM {table} WHERE server_id = %s", (server,))
                out[into][table] = cur.fetchone()[0]
        cur.execute("SELECT count(DISTINCT server_id) FROM snapshots")
        out["servers_seen"] = cur.fetchone()[0]
        snapshot = ("INSERT INTO snapshots (server_id, source, interface_count, peer_count, peer_rows_written)"
                    " VALUES (%s, 'probe', 0, 0, 0)")
        status = ("INSERT INTO sync_status (server_id, last_attempt_at, ok, duration_seconds) VALUES (%s, now(), true, 0)"
                  " ON CONFLICT (server_id) DO UPDATE SET ok = true")
        out["writes"] = {
            "own_snapshot": refused(cur, snapshot, (own,)),
            "other_snapshot": refused(cur, snapshot, (other,)),
            "own_sync_status": refused(cur, status, (own,)),
            "other_sync_status": refused(cur, status, (other,)),
            "other_close_peers": refused(cur, "UPDATE peers SET valid_to = 1 WHERE server_id = %s AND valid_to IS NULL",
                                         (other,)),
            "other_close_keys": refused(cur, "UPDATE server_keys SET valid_to = 1 WHERE server_id = %s"
                                        " AND valid_to IS NULL", (other,)),
            "other_sync_status_update": refused(cur, "UPDATE sync_status SET ok = false WHERE server_id = %s", (other,)),
        }
    conn.rollback()
finally:
    conn.close()


def opens(server, interface, blob_hex):
    """AES-GCM of the documented layout: 0x01 | key id (8) | nonce (12) | ciphertext+tag, bound to its row."""
    blob = bytes.fromhex(blob_hex)
    context = f"server_key\x1f{server}\x1f{interface}".encode()
    try:
        AESGCM(base64.b64decode(key)).decrypt(blob[9:21], blob[21:], blob[:9] + context)
        return True
    except Exception:  # any failure: not this key
        return False


out["opens"] = {f"{s} {i}": opens(s, i, h) for s, i, h in (b.split() for b in blobs)}

sys.path.insert(0, "/opt/wgfleet")
from wgfleet_wireguard._secrets import KeyCipher  # noqa: E402
from wgfleet_wireguard._store import Store  # noqa: E402

try:
    with Store(params, KeyCipher.from_base64(key)) as store:
        snapshot_id, state = store.load_state(other)
    out["load_other"] = {"loaded": True, "snapshot": snapshot_id, "interfaces": sorted(state)}
except Exception as exc:  # the failure the attacker sees, scrubbed of anything secret
    text = str(exc).replace(password, "***").replace(key, "***")
    out["load_other"] = {"loaded": False, "error": f"{type(exc).__name__}: {text.splitlines()[0][:300]}"}
print(json.dumps(out))
