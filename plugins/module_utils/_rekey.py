# Private to the wgfleet.wireguard collection: not a public API.
"""Re-sealing one server's whole stored history under another encryption key (wg_rekey).

For a server id, in one transaction under the server's save lock: every sealed
secret (``server_keys.private_key``, ``peers.preshared_key``) opened with the
previous key and sealed with the new one in the same context; every row digest
written again (format 2) under the new key; every snapshot's interface digests,
key id and seal made again under the new key. A snapshot under the previous
key is proved first exactly as a load proves it (its interface digests and
seal under the previous key, or for a format-1 snapshot every row's digest),
so nothing is ever sealed under the new key that the previous key's holder did
not save. Format-1 snapshots come out sealed (format 2).

What is left: rows and snapshots already under the new key (a second run
changes nothing), and snapshots stored in plain text (``allow_plaintext_keys``
without a key: they open without a key, as before; counted). A snapshot under
neither key is an error naming it, before anything is written.

Memory: the peer rows are read once, in one COPY sorted by the database, and
each row is turned into its new values as it arrives; those go to a spooled
temporary file and back in with COPY. What stays in memory is one running
digest per (snapshot, interface) and the interface and server key rows.

Plain Python (no Ansible).
"""
from __future__ import annotations

import bisect
import dataclasses
import hmac
import json
import tempfile

from . import _secrets
from ._dbconfig import check_server_id
from ._errors import WgError
from ._keys import public_key
from ._secrets import KeyCipher, key_id_hex
from ._store_codec import (
    _NO_KEY,
    BYTEA_PREFIX,
    FORMAT,
    NULL,
    PEER_VALUES,
    CopySink,
    _context,
    _key_input,
    _same_row,
    _settings_input,
    _StreamedLines,
    row_input,
    row_values,
    snapshot_seal,
)
from ._store_schema import LOCK_CLASS
from ._store_types import StoreError

OLD, NEW, PLAIN = "previous_encryption_key", "encryption_key", "plain text"
# Spooled in memory up to this size, on disk beyond it.
SPOOL_MAX = 8 << 20


@dataclasses.dataclass
class RekeyResult:
    changed: bool
    snapshots: int  # snapshots sealed again under the new key
    rows: dict  # per table, rows written again
    snapshots_total: int
    already_new: int  # snapshots under the new key already, left as they were
    plain: int  # snapshots stored in plain text, left as they were

    def as_dict(self) -> dict:
        return {"changed": self.changed, "snapshots": self.snapshots, "rows": dict(self.rows),
                "snapshots_total": self.snapshots_total, "snapshots_already_rekeyed": self.already_new,
                "plain_snapshots": self.plain}


def check_keys(new: KeyCipher | None, old: KeyCipher | None) -> None:
    if new is None:
        raise WgError("encryption_key: the new key is required (or encryption_key_file)")
    if old is None:
        raise WgError("previous_encryption_key: the key the history is under now is required "
                      "(or previous_encryption_key_file)")
    if hmac.compare_digest(new.key_id, old.key_id):
        raise WgError(f"previous_encryption_key: is the same key as encryption_key (key id {key_id_hex(new.key_id)}); "
                      "a rekey needs two different keys")


class _Rekeyer:
    """One server's rekey inside one transaction (``cur``)."""

    def __init__(self, store, cur, server_id: str, new: KeyCipher, old: KeyCipher, check_mode: bool):
        self.store, self.cur, self.server_id = store, cur, server_id
        self.new, self.old, self.check_mode = new, old, check_mode
        self.ciphers = {OLD: old, NEW: new, PLAIN: None}
        self.rows = {"interfaces": 0, "server_keys": 0, "peers": 0}

    def fail(self, message: str):
        return StoreError(f"server {self.server_id!r}: {message}; nothing was changed")

    # -- snapshots --------------------------------------------------------------------------------------------

    def classify(self) -> None:
        cur, sid = self.cur, self.server_id
        cur.execute("SELECT id, key_id, format, interface_digests, seal FROM snapshots WHERE server_id = %s"
                    " ORDER BY id", (sid,))
        self.targets = []  # (id, format, interface_digests, seal) under the previous key, by id
        self.already_new = self.plain = total = 0
        neither = []
        first_sealed = None
        for snap_id, key_id, fmt, digests, seal in cur.fetchall():
            total += 1
            key_id = bytes(key_id) if key_id is not None else None
            if fmt >= 2 and first_sealed is None:
                first_sealed = snap_id
            if key_id is None:
                self.plain += 1
            elif key_id == self.new.key_id:
                self.already_new += 1
            elif key_id == self.old.key_id:
                self.targets.append((snap_id, fmt, digests, bytes(seal) if seal is not None else None))
            else:
                neither.append((snap_id, key_id))
        self.total = total
        if total == 0:
            raise StoreError(f"server_id: {sid!r} has no snapshot in {self.store.where()}")
        if neither:
            ids = ", ".join(str(i) for i, _k in neither[:10]) + (" ..." if len(neither) > 10 else "")
            many = len(neither) > 1
            raise self.fail(
                f"snapshot{'s' if many else ''} {ids} {'are' if many else 'is'} encrypted with neither "
                f"previous_encryption_key (key id {key_id_hex(self.old.key_id)}) nor encryption_key (key id "
                f"{key_id_hex(self.new.key_id)}) but with key id {key_id_hex(neither[0][1])} (a history under two "
                "keys is re-sealed in two runs: from the older key to the newer one first)")
        for snap_id, fmt, digests, seal in self.targets:
            if fmt == 1:
                if first_sealed is not None and snap_id > first_sealed:
                    raise self.fail(f"snapshot {snap_id} has no seal but is newer than the first sealed snapshot "
                                    f"({first_sealed}): it was not written by wgfleet.wireguard")
            elif fmt != FORMAT or seal is None or not isinstance(digests, dict):
                raise self.fail(f"snapshot {snap_id} is damaged: it has no valid seal (format {fmt})")
        self.ids = [t[0] for t in self.targets]

    def _span(self, valid_from: int, valid_to) -> range:
        """Indices in self.targets of the snapshots a row is valid in."""
        low = bisect.bisect_left(self.ids, valid_from)
        high = len(self.ids) if valid_to is None else bisect.bisect_left(self.ids, valid_to)
        return range(low, high)

    # -- secrets and digests ----------------------------------------------------------------------------------

    def open_secret(self, blob: bytes, context: bytes, what: str) -> tuple[str, str]:
        """(plain text, which key) of a stored secret."""
        blob = bytes(blob)
        if blob[:1] == bytes([_secrets.PLAIN]):
            which, cipher = PLAIN, None
        elif blob[:1] == bytes([_secrets.SEALED]) and blob[1:1 + _secrets.KEY_ID_LEN] == self.old.key_id:
            which, cipher = OLD, self.old
        elif blob[:1] == bytes([_secrets.SEALED]) and blob[1:1 + _secrets.KEY_ID_LEN] == self.new.key_id:
            which, cipher = NEW, self.new
        elif blob[:1] == bytes([_secrets.SEALED]):
            raise self.fail(f"{what} is encrypted with neither previous_encryption_key nor encryption_key (key id "
                            f"{blob[1:1 + _secrets.KEY_ID_LEN].hex()})")
        else:
            raise self.fail(f"{what} is damaged: the stored value is neither an encrypted nor a plain key")
        try:
            return _secrets.unseal(cipher, blob, context), which
        except _secrets.SecretError as exc:
            raise self.fail(f"{what} is damaged: {exc}") from None

    def which_digest(self, stored: bytes, make_input, what: str, secret_key: str | None = None) -> str:
        """The key a row digest is under (the previous key first: a rekey finds mostly those)."""
        for which in (OLD, NEW, PLAIN):
            if secret_key is not None and which != secret_key:
                continue
            if _same_row(self.ciphers[which], stored, make_input):
                return which
        raise self.fail(f"{what} is damaged: it does not match its digest under either key")

    def new_digest(self, data: bytes) -> bytes:
        return bytes([FORMAT]) + self.new.digest(data)

    def reseal(self, plain: str, context: bytes) -> bytes:
        return self.new.seal(plain, context)

    # -- the rows ---------------------------------------------------------------------------------------------

    def interfaces_and_keys(self) -> None:
        """Reads the interface and server key rows, re-seals them, and starts each snapshot's running digests."""
        cur, sid, fmt = self.cur, self.server_id, FORMAT
        # Per target snapshot index: {interface: [settings digest old, new, key digest old, new]}.
        self.parts: list[dict] = [{} for _target in self.targets]
        cur.execute("SELECT name, valid_from, valid_to, settings, digest FROM interfaces WHERE server_id = %s"
                    " ORDER BY name, valid_from", (sid,))
        updates = []
        for name, vfrom, vto, settings, digest in cur.fetchall():
            text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
            what = f"the settings row of interface {name} (from snapshot {vfrom})"
            which = self.which_digest(bytes(digest), lambda f, n=name, t=text: _settings_input(f, sid, n, t), what)
            data = _settings_input(fmt, sid, name, text)
            self._check_span(vfrom, vto, which, what)
            span = self._span(vfrom, vto)
            if len(span):
                old_d, new_d = self.old.digest(data), self.new.digest(data)
                for index in span:
                    self.parts[index][name] = [old_d, new_d, _NO_KEY, _NO_KEY]
            if which == OLD:
                updates.append((name, vfrom, self.new_digest(data)))
        self.rows["interfaces"] = len(updates)
        if updates and not self.check_mode:
            self._update("interfaces", "name", updates, ("digest",))

        cur.execute("SELECT interface, valid_from, valid_to, public_key, private_key, digest FROM server_keys"
                    " WHERE server_id = %s ORDER BY interface, valid_from", (sid,))
        updates = []
        for name, vfrom, vto, pub, blob, digest in cur.fetchall():
            what = f"the private key of interface {name} (from snapshot {vfrom})"
            context = _context("server_key", sid, name)
            private, sealed_by = self.open_secret(blob, context, what)
            try:
                derived = public_key(private)
            except WgError:
                raise self.fail(f"{what} is damaged: it is not a WireGuard key") from None
            if derived != pub:
                raise self.fail(f"{what} is damaged: it does not match its public key")
            which = self.which_digest(bytes(digest), lambda f, n=name, k=private: _key_input(f, sid, n, k), what,
                                      sealed_by)
            self._check_span(vfrom, vto, which, what)
            data = _key_input(fmt, sid, name, private)
            span = self._span(vfrom, vto)
            if len(span):
                old_d, new_d = self.old.digest(data), self.new.digest(data)
                for index in span:
                    found = self.parts[index].get(name)
                    if found is not None:  # a key without its interface row: a load ignores it too
                        found[2], found[3] = old_d, new_d
            if which == OLD:
                updates.append((name, vfrom, self.reseal(private, context), self.new_digest(data)))
        self.rows["server_keys"] = len(updates)
        if updates and not self.check_mode:
            self._update("server_keys", "interface", updates, ("private_key", "digest"))

        # The running digests of every target snapshot's interfaces, their prefix fed (interface_state_digest).
        self.running = []
        for parts in self.parts:
            per = {}
            for name, (old_s, new_s, old_k, new_k) in parts.items():
                head = _context("interface-state", sid, name, "")
                old_run, new_run = self.old.digester(), self.new.digester()
                old_run.update(head + old_s + old_k)
                new_run.update(head + new_s + new_k)
                per[name] = (old_run, new_run)
            self.running.append(per)

    def _check_span(self, vfrom: int, vto, which: str, what: str) -> None:
        """A row of a snapshot under the previous key is under that key too (every save under a new key writes
        every row again); for a format-1 snapshot, which has no seal, this is what a load checks."""
        if which == OLD:
            return
        span = self._span(vfrom, vto)
        if len(span):
            snap_id = self.targets[span[0]][0]
            raise self.fail(f"snapshot {snap_id} is damaged: {what} is not under previous_encryption_key, as the "
                            "snapshot is")

    def _update(self, table: str, name_column: str, rows: list, columns: tuple) -> None:
        import psycopg2.extras

        values = ", ".join(f"{c} = v.{c}" for c in columns)
        template = "(%s, %s" + ", %s" * len(columns) + ")"
        rows = [(r[0], r[1], *(psycopg2.Binary(v) for v in r[2:])) for r in rows]
        psycopg2.extras.execute_values(
            self.cur,
            f"UPDATE {table} AS t SET {values} FROM (VALUES %s) AS v (name, valid_from, {', '.join(columns)})"
            f" WHERE t.server_id = {self._literal()} AND t.{name_column} = v.name AND t.valid_from = v.valid_from",
            rows, template=template, page_size=1000)

    def _literal(self) -> str:
        return self.cur.mogrify("%s", (self.server_id,)).decode()

    def peers(self) -> None:
        """One COPY of every peer row of the server, sorted by (interface, position); new values spooled."""
        import psycopg2.extensions

        cur = self.cur
        query = cur.mogrify(
            f"COPY (SELECT interface, public_key, valid_from, valid_to, {', '.join(PEER_VALUES)}, preshared_key,"
            " digest FROM peers WHERE server_id = %s ORDER BY interface, position, valid_from)"
            " TO STDOUT", (self.server_id,))
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX, mode="w+", encoding="utf-8", newline="") as spool:
            sink = _PeerSink(self, spool)
            cur.copy_expert(query.decode(psycopg2.extensions.encodings.get(cur.connection.encoding, "utf-8")), sink)
            if sink.error is not None:
                raise sink.error
            self.rows["peers"] = sink.written
            if not sink.written or self.check_mode:
                return
            spool.seek(0)
            cur.execute("CREATE TEMPORARY TABLE wgfleet_rekey_peers (interface text, public_key text,"
                        " valid_from bigint, preshared_key bytea, digest bytea) ON COMMIT DROP")
            cur.copy_expert("COPY wgfleet_rekey_peers FROM STDIN", _StreamedLines(spool), size=1 << 16)
            cur.execute(
                "UPDATE peers AS p SET preshared_key = r.preshared_key, digest = r.digest FROM wgfleet_rekey_peers r"
                " WHERE p.server_id = %s AND p.interface = r.interface AND p.public_key = r.public_key"
                " AND p.valid_from = r.valid_from", (self.server_id,))
            if cur.rowcount != sink.written:
                raise self.fail(f"{sink.written} peer rows were to be written again, {cur.rowcount} were")
            cur.execute("DROP TABLE wgfleet_rekey_peers")

    # -- the snapshots' seals ---------------------------------------------------------------------------------

    def seals(self) -> list:
        """Proves every target snapshot under the previous key; its new interface digests and seal."""
        sid, out = self.server_id, []
        for index, (snap_id, fmt, digests, seal) in enumerate(self.targets):
            per = self.running[index]
            old_map = {name: runs[0].digest().hex() for name, runs in per.items()}
            new_map = {name: runs[1].digest().hex() for name, runs in per.items()}
            if fmt == FORMAT:
                if set(old_map) != set(digests):
                    raise self.fail(f"snapshot {snap_id} is damaged: its interfaces ({', '.join(sorted(old_map))}) "
                                    "are not the ones it was saved with")
                for name in sorted(old_map):
                    if old_map[name] != digests[name]:
                        raise self.fail(f"snapshot {snap_id} is damaged: interface {name}'s rows are not the ones it "
                                        "was saved with")
                if seal != snapshot_seal(self.old, sid, snap_id, self.old.key_id, digests):
                    raise self.fail(f"snapshot {snap_id} is damaged: it does not match its seal under "
                                    "previous_encryption_key")
            out.append((snap_id, new_map, snapshot_seal(self.new, sid, snap_id, self.new.key_id, new_map)))
        return out

    def write_seals(self, seals: list) -> None:
        import psycopg2.extras

        rows = [(i, json.dumps(m, sort_keys=True), psycopg2.Binary(s)) for i, m, s in seals]
        key_id = psycopg2.Binary(self.new.key_id)
        psycopg2.extras.execute_values(
            self.cur,
            self.cur.mogrify("UPDATE snapshots AS s SET key_id = %s, format = %s,", (key_id, FORMAT)).decode()
            + " interface_digests = v.digests::jsonb, seal = v.seal FROM (VALUES %s) AS v (id, digests, seal)"
            f" WHERE s.server_id = {self._literal()} AND s.id = v.id",
            rows, page_size=1000)


class _PeerSink(CopySink):
    """COPY TO's file: each peer row checked, re-sealed and its new values spooled as it arrives; the
    snapshots' running digests fed. A failure is kept and raised after the COPY."""

    def __init__(self, rekey: _Rekeyer, spool):
        super().__init__()
        self.rekey, self.spool = rekey, spool
        self.error: BaseException | None = None
        self.written = 0
        self.server = rekey.server_id

    def _row(self, fields: list) -> None:
        rekey, sid = self.rekey, self.server
        iface, key, vfrom, vto, *columns, psk_hex, dig_hex = fields
        vfrom, vto = int(vfrom), (None if vto == NULL else int(vto))
        values = row_values(columns)
        what = f"peer {key} of interface {iface} (from snapshot {vfrom})"
        context = _context("preshared_key", sid, iface, key)
        psk, sealed_by = None, None
        if psk_hex != NULL:
            psk, sealed_by = rekey.open_secret(bytes.fromhex(psk_hex[3:]), context, what)
        which = rekey.which_digest(
            bytes.fromhex(dig_hex[3:]),
            lambda f: row_input(f, sid, iface, key, values, psk), what, sealed_by)
        rekey._check_span(vfrom, vto, which, what)
        data = row_input(FORMAT, sid, iface, key, values, psk)
        piece = len(data).to_bytes(4, "big") + data
        running = rekey.running
        for index in rekey._span(vfrom, vto):
            runs = running[index].get(iface)
            if runs is not None:  # peers of an interface the snapshot lacks: a load ignores them too
                runs[0].update(piece)
                runs[1].update(piece)
        if which == OLD:
            new_psk = rekey.reseal(psk, context) if psk is not None else None
            self.written += 1
            if not rekey.check_mode:
                self.spool.write(
                    f"{iface}\t{key}\t{vfrom}\t{BYTEA_PREFIX + new_psk.hex() if new_psk is not None else NULL}\t"
                    f"{BYTEA_PREFIX}{rekey.new_digest(data).hex()}\n")


def rekey_server(store, server_id: str, new: KeyCipher, old: KeyCipher, check_mode: bool = False) -> RekeyResult:
    """Re-seals every stored secret, digest and snapshot seal of ``server_id`` from ``old`` to ``new``.

    One transaction under the server's save lock: all or nothing. ``check_mode`` does every check and
    count, and writes nothing.
    """
    check_server_id("server_id", server_id)
    check_keys(new, old)

    def work(cur):
        store._require_schema(cur)
        cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, server_id))
        job = _Rekeyer(store, cur, server_id, new, old, check_mode)
        job.classify()
        job.interfaces_and_keys()
        job.peers()
        seals = job.seals()
        if seals and not check_mode:
            job.write_seals(seals)
        changed = bool(seals) or any(job.rows.values())
        return RekeyResult(changed, len(seals), job.rows, job.total, job.already_new, job.plain)

    return store._transaction(work, readonly=check_mode)
