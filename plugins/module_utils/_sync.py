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
import re
import signal
import sys
import tempfile
import threading
import time

try:
    import tomllib
except ImportError:  # Python 3.10: TOML files need tomli there; env configuration still works
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        tomllib = None

from . import _backup, _metrics, _secrets
from ._dbconfig import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DB,
    DEFAULT_PORT,
    DEFAULT_SSL_MODE,
    DEFAULT_USER,
    DatabaseSettings,
    check_server_id,
    check_setting,
)
from ._errors import WgError, WgValueError, scrub_keys
from ._secrets import SecretError
from ._wgconf import Interface, check_ifname
from ._wgrest import DEFAULT_API_URL, WgrestClient, WgrestError, WgrestSource

log = logging.getLogger("wgrest-sync")
ENV_PREFIX = "WGSYNC_"
SOURCE = "wgrest_sync"
MAX_SECONDS = 7 * 86400


class ConfigError(WgValueError):
    """A setting is missing or wrong; the service exits at start with this message."""


@dataclasses.dataclass
class SyncConfig:
    server_id: str
    db: DatabaseSettings | dict  # dict: psycopg2.connect keyword arguments (tests, benchmarks)
    interval: float = 60.0
    wgrest_url: str = DEFAULT_API_URL
    wgrest_token: str | None = dataclasses.field(default=None, repr=False)
    wgrest_validate_certs: bool = True
    wgrest_timeout: float = 10.0
    config_dir: str = "/etc/wireguard"
    interfaces: tuple = ()
    encryption_key_file: str | None = "/run/secrets/wgsync_encryption_key"
    encryption_key: str | None = dataclasses.field(default=None, repr=False)
    allow_plaintext_keys: bool = False
    status_file: str = "/tmp/wgrest-sync/status.json"
    health_max_age: float | None = None
    backoff_base: float = 2.0
    migrate: bool = True
    metrics_listen: tuple | None = None  # (address, port) of the Prometheus endpoint; None: no metrics
    metrics_per_peer: bool = False
    metrics_recent_handshake: float = 180.0

    @property
    def max_age(self) -> float:
        """How old the last success may be for --health to answer healthy."""
        return self.health_max_age if self.health_max_age else 3 * self.interval + 30

    def connect_kwargs(self) -> dict:
        return self.db.connect_kwargs() if isinstance(self.db, DatabaseSettings) else dict(self.db)

    def secrets(self) -> list[str]:
        """Every secret of the configuration, to keep them out of any message."""
        password = self.connect_kwargs().get("password")
        return [v for v in (self.wgrest_token, self.encryption_key, password) if v]


# Setting name -> (kind, default). Env: WGSYNC_<NAME>; file: TOML with the same names in lower case.
SETTINGS = {
    "server_id": ("str", None),
    "db_host": ("hosts", None), "db_port": ("hosts", DEFAULT_PORT), "db_name": ("str", DEFAULT_DB),
    "db_user": ("str", DEFAULT_USER), "db_password": ("secret", None), "db_password_file": ("str", None),
    "db_sslmode": ("str", DEFAULT_SSL_MODE), "db_sslrootcert": ("str", None), "db_sslcert": ("str", None),
    "db_sslkey": ("str", None), "db_connect_timeout": ("int", DEFAULT_CONNECT_TIMEOUT),
    "wgrest_url": ("str", DEFAULT_API_URL), "wgrest_token": ("secret", None), "wgrest_token_file": ("str", None),
    "wgrest_validate_certs": ("bool", True), "wgrest_timeout": ("float", 10.0), "allow_no_token": ("bool", False),
    "interval": ("float", 60.0), "config_dir": ("str", "/etc/wireguard"), "interfaces": ("list", ()),
    "encryption_key_file": ("str", "/run/secrets/wgsync_encryption_key"),
    "encryption_key_from_env": ("bool", False), "allow_plaintext_keys": ("bool", False),
    "status_file": ("str", "/tmp/wgrest-sync/status.json"), "health_max_age": ("float", None),
    "backoff_base": ("float", 2.0), "migrate": ("bool", True),
    "metrics_listen": ("str", ""), "metrics_per_peer": ("bool", False), "metrics_recent_handshake": ("float", 180.0),
}
# DatabaseSettings field -> setting name, for error messages.
DB_NAMES = {"host": "db_host", "port": "db_port", "user": "db_user", "password": "db_password", "dbname": "db_name",
            "sslmode": "db_sslmode", "sslrootcert": "db_sslrootcert", "sslcert": "db_sslcert", "sslkey": "db_sslkey",
            "connect_timeout": "db_connect_timeout"}
# Paths the service cannot do without (an empty one would mean the working directory).
_PATHS = ("config_dir", "status_file")
_EXPECTED = {"int": "a whole number", "float": f"a positive number of seconds (at most {MAX_SECONDS})",
             "bool": "true or false", "list": "a list of names", "str": "a string", "secret": "a string"}


# Numbers as text: ASCII only, spaces or tabs around (str.isdigit() and float() also take "²", "٣", fullwidth digits, "1_0").
_INT_TEXT = re.compile(r"^[ \t]*[+-]?[0-9]+[ \t]*\Z")
_FLOAT_TEXT = re.compile(r"^[ \t]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t]*\Z")


def _convert(name: str, kind: str, value):
    """A setting's value as its kind. From the environment every value is text; from TOML it has a type."""
    if value is None:
        return None
    original, ok = value, True
    if kind == "hosts":  # one, a list or comma-separated: DatabaseSettings checks them, naming the setting
        return value
    if kind == "int":
        if isinstance(value, str) and _INT_TEXT.match(value):
            value = int(value)
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        if isinstance(value, str):
            number = float(value) if _FLOAT_TEXT.match(value) else None
        else:
            number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
        ok = number is not None and 0 < number <= MAX_SECONDS  # also refuses nan and inf
        value = number
    elif kind == "bool":
        if isinstance(value, str):
            lowered = value.strip(" \t").lower()
            value = {"1": True, "true": True, "yes": True, "on": True,
                     "0": False, "false": False, "no": False, "off": False, "": False}.get(lowered)
        ok = isinstance(value, bool)
    elif kind == "list":
        items = value.split(",") if isinstance(value, str) else value
        ok = isinstance(items, (list, tuple)) and all(isinstance(i, str) for i in items)
        if ok:
            for item in items:  # the single-line rule before stripping: str.strip() would drop "\x85", "\u2028"...
                _checked(name, item)
            value = tuple(i.strip(" \t") for i in items if i.strip(" \t"))
    else:  # str, secret
        ok = isinstance(value, str)
        if ok and kind == "secret":
            value = value.strip()  # a trailing newline (an env file, echo) is never part of a secret
    if not ok:
        shown = "(hidden)" if kind == "secret" else repr(original)[:60]
        raise ConfigError(f"{name}: {shown} is not {_EXPECTED[kind]}")
    if kind in ("str", "secret"):
        _checked(name, value, secret=kind == "secret")
    return value


def _checked(name: str, value: str, secret: bool = False) -> str:
    try:
        return check_setting(name, value, secret=secret)
    except WgValueError as exc:
        raise ConfigError(str(exc)) from None


def _read_secret_file(name: str, path: str) -> str:
    try:
        # Not blocking on a FIFO, and a regular file only (not /dev/zero): the key files' rule.
        text = _secrets.read_key_file(path).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: cannot read {path}: {getattr(exc, 'strerror', None) or 'not UTF-8 text'}") from None
    except ValueError as exc:
        raise ConfigError(f"{name}: {path} {exc}") from None
    if not text:
        raise ConfigError(f"{name}: {path} is empty")
    try:
        return check_setting(name, text, secret=True)
    except WgValueError:
        raise ConfigError(f"{name}: {path} holds more than one line or a control character") from None


def raw_settings(config_file: str | None, environ: dict) -> dict:
    """Every setting from env (WGSYNC_*) over the TOML file over the defaults, converted to its kind."""
    from_file: dict = {}
    path = config_file or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        if tomllib is None:
            raise ConfigError(f"config file {path}: reading TOML needs Python 3.11 or the tomli library")
        try:
            with open(path, "rb") as handle:
                from_file = tomllib.load(handle)
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or f"not valid TOML: {exc}"
            raise ConfigError(f"config file {path}: cannot read it: {reason}") from None
        unknown = sorted(set(from_file) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"config file {path}: unknown setting {unknown[0]!r}")
    values = {}
    for name, (kind, default) in SETTINGS.items():
        env_name = ENV_PREFIX + name.upper()
        if env_name in environ:
            value = environ[env_name]
        elif name in from_file:
            value = from_file[name]
        else:
            value = default
        values[name] = _convert(name, kind, value)
        if name in _PATHS and not values[name]:
            raise ConfigError(f"{name}: must not be empty")
    return values


def load_config(config_file: str | None = None, environ: dict | None = None) -> SyncConfig:
    """The service's configuration, checked; a ConfigError names the setting that is wrong."""
    env = dict(os.environ if environ is None else environ)
    values = raw_settings(config_file, env)
    if not values["server_id"]:
        raise ConfigError(f"server_id: required ({ENV_PREFIX}SERVER_ID or server_id in the config file)")
    try:
        server_id = check_server_id("server_id", values["server_id"])
    except WgValueError as exc:
        raise ConfigError(str(exc)) from None
    if not values["db_host"]:
        raise ConfigError(f"db_host: required ({ENV_PREFIX}DB_HOST: a host, several comma-separated, or a "
                          "directory for a Unix socket)")
    password = values["db_password"]
    if values["db_password_file"]:
        password = _read_secret_file("db_password_file", values["db_password_file"])
    token = values["wgrest_token"]
    if values["wgrest_token_file"]:
        token = _read_secret_file("wgrest_token_file", values["wgrest_token_file"])
    if not token and not values["allow_no_token"]:
        raise ConfigError("wgrest_token: required (wgrest without a token has authentication off; "
                          "set allow_no_token only for such a server)")
    key = None
    env_key = env.get(ENV_PREFIX + "ENCRYPTION_KEY")
    if env_key and not values["encryption_key_from_env"]:
        raise ConfigError(f"encryption_key: {ENV_PREFIX}ENCRYPTION_KEY is set but keys are read from a file by "
                          f"default (encryption_key_file); set {ENV_PREFIX}ENCRYPTION_KEY_FROM_ENV=true to allow it")
    if env_key:
        key = _convert("encryption_key", "secret", env_key)
    elif values["allow_plaintext_keys"] and not os.path.exists(values["encryption_key_file"] or ""):
        values["encryption_key_file"] = None
    elif not values["encryption_key_file"]:
        raise ConfigError("encryption_key_file: required (or allow_plaintext_keys: true)")
    for name in values["interfaces"]:
        try:
            check_ifname("interfaces", name)
        except WgValueError as exc:
            raise ConfigError(str(exc)) from None
    try:
        metrics_listen = _metrics.parse_listen("metrics_listen", values["metrics_listen"], need_library=True)
        WgrestClient(values["wgrest_url"], token, url_option="wgrest_url", token_option="wgrest_token")
        db = DatabaseSettings(host=values["db_host"], port=values["db_port"], dbname=values["db_name"],
                              user=values["db_user"], password=password, sslmode=values["db_sslmode"],
                              sslrootcert=values["db_sslrootcert"], sslcert=values["db_sslcert"],
                              sslkey=values["db_sslkey"], connect_timeout=values["db_connect_timeout"],
                              application_name="wgrest-sync", names=DB_NAMES)
    except WgValueError as exc:
        raise ConfigError(str(exc)) from None
    config = SyncConfig(
        server_id=server_id, db=db,
        interval=values["interval"], wgrest_url=values["wgrest_url"], wgrest_token=token,
        wgrest_validate_certs=values["wgrest_validate_certs"], wgrest_timeout=values["wgrest_timeout"],
        config_dir=values["config_dir"], interfaces=values["interfaces"],
        encryption_key_file=values["encryption_key_file"], encryption_key=key,
        allow_plaintext_keys=values["allow_plaintext_keys"], status_file=values["status_file"],
        health_max_age=values["health_max_age"], backoff_base=values["backoff_base"], migrate=values["migrate"],
        metrics_listen=metrics_listen, metrics_per_peer=values["metrics_per_peer"],
        metrics_recent_handshake=values["metrics_recent_handshake"],
    )
    make_cipher(config)  # a bad key file fails here, at start
    return config


def make_cipher(config: SyncConfig):
    try:
        return _secrets.make_cipher(config.encryption_key, config.encryption_key_file)
    except SecretError as exc:
        raise ConfigError(str(exc)) from None


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
        from ._store import SaveRefused

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
        max_age = values["health_max_age"] or 3 * values["interval"] + 30
        ok, why = health(values["status_file"], max_age)
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
