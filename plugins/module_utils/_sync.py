# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest-sync: keep a server's complete WireGuard state in the PostgreSQL store.

A thin program over the shared core: every interval it captures the server with
``_backup.capture`` (the rule wg_backup uses, with the wgrest API as the live
source: settings and labels from the read-only wg-quick files, peers from the
API) and hands the state to ``Store.save_state``, which writes only what
changed and, for this service, refuses a state that drops a stored interface
or replaces a stored key (a half-built host). A failed read saves nothing;
database and API outages are retried with backoff. Each attempt is recorded in
the ``sync_status`` row and in a local status file (0600), which ``--health``
reads; no message anywhere carries a key, the token or the password.

Run: ``python -m <package>._sync [--config FILE] [--once | --health | --check-config]``.
Plain Python (no Ansible); see docs/wgrest-sync.md for every setting.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time

from . import _backup, _metrics
from ._errors import WgError, scrub_keys
from ._sync_settings import ENV_PREFIX, ConfigError, SyncConfig, health_max_age, load_config, make_cipher, raw_settings
from ._wgconf import Interface
from ._wgrest import WgrestClient, WgrestError, WgrestSource

log = logging.getLogger("wgrest-sync")
SOURCE = "wgrest_sync"


# --- the service -----------------------------------------------------------------------------------


class Redactor:
    """Keeps the configuration's secrets, and anything shaped like a WireGuard key, out of every message."""

    def __init__(self, secrets):
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text) -> str:
        text = str(text)
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return scrub_keys(text)


class _RedactingFilter(logging.Filter):
    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), None
        if record.exc_info:  # a traceback quotes values: only its last line, redacted
            record.msg += f" ({self.redact(logging.Formatter().formatException(record.exc_info).splitlines()[-1])})"
            record.exc_info, record.exc_text = None, None
        return True


def _failure(stage: str, exc: BaseException) -> str:
    if isinstance(exc, WgError):
        return f"{stage}: {exc}"
    return f"{stage}: unexpected {type(exc).__name__}: {exc}"


@dataclasses.dataclass
class CycleResult:
    ok: bool
    error: str | None = None
    changed: bool = False
    counts: dict = dataclasses.field(default_factory=dict)
    duration: float = 0.0


class SyncService:
    """A thin loop over the shared core: capture (``_backup.capture`` with the wgrest API as the live
    source), save (``Store.save_state``, guarded), record."""

    def __init__(self, config: SyncConfig):
        self.config = config
        self.redact = Redactor(config.secrets())
        if not any(isinstance(f, _RedactingFilter) for f in log.filters):
            log.addFilter(_RedactingFilter(self.redact))
        self.cipher = make_cipher(config)
        self.client = WgrestClient(config.wgrest_url, config.wgrest_token, config.wgrest_validate_certs,
                                   timeout=config.wgrest_timeout, retries=1, url_option="wgrest_url",
                                   token_option="wgrest_token")
        self.store = None
        self.failures = 0
        self.metrics = None
        if config.metrics_listen:
            self.metrics = _metrics.SyncMetrics(config.server_id, config.interval, config.metrics_per_peer,
                                                config.metrics_recent_handshake)
        self.last_success: str | None = _read_status(config.status_file).get("last_success")

    def _store(self):
        if self.store is None:
            from ._store import Store

            store = Store(self.config.connect_kwargs(), self.cipher, self.config.allow_plaintext_keys)
            try:
                if self.config.migrate:
                    store.migrate()
            except BaseException:
                store.close()
                raise
            self.store = store
            log.info("connected to the database at %s", store.server())  # after a failover: the new primary
        return self.store

    def _drop_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                log.debug("closing the database connection failed")
            self.store = None

    def capture(self) -> dict[str, Interface]:
        """The server's state by the one capture rule (see _backup): settings and labels from the files,
        peers from wgrest. Any failure raises, so a failed read is never saved as removed peers."""
        client = self.metrics.client(self.client) if self.metrics else self.client
        state, _live_only = _backup.capture(self.config.config_dir, WgrestSource(client),
                                            only=self.config.interfaces, lock=False)
        if not state:
            # A server with no interface at all is far likelier a missing mount or a fresh wgrest
            # than the truth; storing it would empty the current state.
            raise WgError(f"found no interface in wgrest nor in {self.config.config_dir}")
        if self.metrics:
            self.metrics.observe_state(state)
        return state

    def run_once(self) -> CycleResult:
        started = time.monotonic()
        try:
            state = self.capture()
        except Exception as exc:  # whatever a read meets, the service records it and goes on
            where = "wgrest" if isinstance(exc, WgrestError) else "files" if isinstance(exc, WgError) else "read"
            return self._finish(CycleResult(False, _failure(f"read failed ({where}), nothing saved", exc)), started)
        from ._store_types import SaveRefused

        try:
            saved = self._store().save_state(self.config.server_id, state, source=SOURCE,
                                             partial=bool(self.config.interfaces), guard=True)
        except SaveRefused as exc:
            return self._finish(CycleResult(False, str(exc)), started)
        except Exception as exc:
            self._drop_store()  # reconnect next time: the server may have restarted
            return self._finish(CycleResult(False, _failure("save failed", exc)), started)
        counts = dict(saved.counts, snapshot_id=saved.snapshot_id)
        return self._finish(CycleResult(True, None, saved.changed, counts), started)

    def _finish(self, result: CycleResult, started: float) -> CycleResult:
        if result.error is not None:
            result.error = self.redact(result.error)  # the one place every message passes: log, file, database
        result.duration = time.monotonic() - started
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.failures = 0 if result.ok else self.failures + 1
        if result.ok:
            self.last_success = now
        if self.metrics:
            self.metrics.observe_cycle(result.ok, result.duration, result.counts, result.changed, self.failures)
        try:
            self._store().record_sync(self.config.server_id, result.ok, result.error, result.counts, result.duration)
        except Exception as exc:
            self._drop_store()
            log.warning("could not record the sync status in the database: %s", _failure("record", exc))
        _write_status(self.config.status_file, {
            "ok": result.ok, "last_attempt": now, "last_success": self.last_success, "error": result.error,
            "consecutive_failures": self.failures, "counts": result.counts, "duration": round(result.duration, 3),
            "changed": result.changed, "interval": self.config.interval, "pid": os.getpid(),
        })
        if result.ok:
            log.info("sync ok: %s interfaces, %s peers, %s peer rows written%s (%.2fs)",
                     result.counts.get("interfaces"), result.counts.get("peers"),
                     result.counts.get("peer_rows_written"),
                     f", snapshot {result.counts.get('snapshot_id')}" if result.changed else ", no change",
                     result.duration)
        else:
            log.error("sync failed (%d in a row): %s", self.failures, result.error)
        return result

    def next_delay(self) -> float:
        """The interval after a success; after failures, 1x, 2x, 4x... the backoff base, capped at the interval."""
        if not self.failures:
            return self.config.interval
        return min(self.config.interval, self.config.backoff_base * 2 ** min(self.failures - 1, 30))

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # a bug of ours: say so, and keep the server's backups going
                self.failures += 1
                log.error("sync cycle failed: %s", _failure("unexpected", exc))
            stop.wait(self.next_delay())
        self._drop_store()


def _write_status(path: str, data: dict) -> None:
    """Temp file + rename, so --health never reads half a file; 0600, as it carries the last error.
    A directory it creates is 0700; an existing one's mode is left alone (it may be a shared /tmp or /run)."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".status.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                json.dump(data, handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except (OSError, ValueError) as exc:
        log.warning("cannot write the status file %s: %s", path, getattr(exc, "strerror", None) or exc)


def _read_status(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def health(status_file: str, max_age: float, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Healthy when the last successful cycle is at most ``max_age`` seconds old."""
    status = _read_status(status_file)
    if not status:
        return False, f"no status in {status_file} yet"
    last = status.get("last_success")
    if not last:
        return False, f"no successful sync yet; last error: {status.get('error')}"
    try:
        when = dt.datetime.fromisoformat(str(last))
        age = ((now or dt.datetime.now(dt.timezone.utc)) - when).total_seconds()
    except (ValueError, TypeError):
        return False, f"the status file {status_file} has no valid time of last success"
    if age > max_age:
        return False, f"last successful sync {age:.0f}s ago (limit {max_age:.0f}s); last error: {status.get('error')}"
    return True, f"last successful sync {age:.0f}s ago"


def serve_metrics(service: SyncService) -> None:
    """Start the metrics endpoint; one that cannot listen is logged, and the syncs go on without it."""
    if service.metrics is None:
        return
    try:
        host, port = service.metrics.serve(*service.config.metrics_listen)
        log.info("metrics on http://%s:%s/metrics", f"[{host}]" if ":" in host else host, port)
    except OSError as exc:
        log.error("metrics_listen: cannot listen on %s:%s: %s (the syncs go on without metrics)",
                  *service.config.metrics_listen, exc.strerror or exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wgrest-sync", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", help=f"TOML file of settings (or {ENV_PREFIX}CONFIG); env vars override it")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="run one cycle; exit 0 when it succeeded, 1 otherwise")
    mode.add_argument("--health", action="store_true", help="exit 0 when the last success is recent, 1 otherwise")
    mode.add_argument("--check-config", action="store_true", help="check the configuration and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s wgrest-sync %(levelname)s %(message)s")

    if args.health:
        try:
            values = raw_settings(args.config, dict(os.environ))
        except ConfigError as exc:
            sys.stderr.write(f"wgrest-sync: configuration error: {exc}" + "\n")
            return 2
        ok, why = health(values["status_file"], health_max_age(values["health_max_age"], values["interval"]))
        sys.stdout.write(("healthy: " if ok else "unhealthy: ") + why + "\n")
        return 0 if ok else 1
    try:
        config = load_config(args.config)
        from ._store import HAS_PSYCOPG2

        if not HAS_PSYCOPG2:
            raise ConfigError("the PostgreSQL store needs the Python library psycopg2, which is not installed")
    except ConfigError as exc:
        sys.stderr.write(f"wgrest-sync: configuration error: {exc}" + "\n")
        return 2
    if args.check_config:
        sys.stdout.write(f"wgrest-sync: configuration ok (server {config.server_id}, every {config.interval:g}s)\n")
        return 0
    service = SyncService(config)
    if args.once:
        result = service.run_once()
        service._drop_store()
        return 0 if result.ok else 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("started: server %s, wgrest %s, files %s, every %gs", config.server_id, config.wgrest_url,
             config.config_dir, config.interval)
    serve_metrics(service)
    service.run_forever(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
