# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest-sync: keep a server's complete WireGuard state in the PostgreSQL store.

Every interval it reads the wgrest API (live peers, device keys) and the
wg-quick files (interface settings, peer labels; read-only), builds the shared
model and hands it to ``Store.save_state``, which writes only what changed.
A failed read saves nothing, so stored peers are never dropped because wgrest
or a file could not be read; database and API outages are retried with
backoff and the next good cycle catches up. Each attempt is recorded in the
``sync_status`` row and in a local status file, which ``--health`` reads.

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

try:
    import tomllib
except ImportError:  # Python 3.10: TOML files need tomli there; env configuration still works
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        tomllib = None

from . import _files
from ._errors import WgError, WgValueError
from ._wgconf import IFNAME_RE, Interface
from ._wgrest import DEFAULT_API_URL, WgrestClient, WgrestError, peer_from_api

log = logging.getLogger("wgrest-sync")
ENV_PREFIX = "WGSYNC_"
SOURCE = "wgrest_sync"
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class ConfigError(WgValueError):
    """A setting is missing or wrong; the service exits at start with this message."""


@dataclasses.dataclass
class SyncConfig:
    server_id: str
    db: dict  # psycopg2.connect keyword arguments
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

    @property
    def max_age(self) -> float:
        """How old the last success may be for --health to answer healthy."""
        return self.health_max_age if self.health_max_age else 3 * self.interval + 30


# Setting name -> (kind, default). Env: WGSYNC_<NAME>; file: TOML with the same names in lower case.
SETTINGS = {
    "server_id": ("str", None),
    "db_host": ("str", None), "db_port": ("int", 5432), "db_name": ("str", "wgfleet"), "db_user": ("str", None),
    "db_password": ("secret", None), "db_password_file": ("str", None),
    "db_sslmode": ("str", "prefer"), "db_sslrootcert": ("str", None), "db_sslcert": ("str", None),
    "db_sslkey": ("str", None), "db_connect_timeout": ("int", 10),
    "wgrest_url": ("str", DEFAULT_API_URL), "wgrest_token": ("secret", None), "wgrest_token_file": ("str", None),
    "wgrest_validate_certs": ("bool", True), "wgrest_timeout": ("float", 10.0), "allow_no_token": ("bool", False),
    "interval": ("float", 60.0), "config_dir": ("str", "/etc/wireguard"), "interfaces": ("list", ()),
    "encryption_key_file": ("str", "/run/secrets/wgsync_encryption_key"),
    "encryption_key_from_env": ("bool", False), "allow_plaintext_keys": ("bool", False),
    "status_file": ("str", "/tmp/wgrest-sync/status.json"), "health_max_age": ("float", None),
    "backoff_base": ("float", 2.0), "migrate": ("bool", True),
}


def _convert(name: str, kind: str, value):
    if value is None:
        return None
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            number = float(value)
            if number <= 0:
                raise ValueError
            return number
        if kind == "bool":
            if isinstance(value, bool):
                return value
            lowered = str(value).strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError
        if kind == "list":
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError):
        shown = "(hidden)" if kind == "secret" else repr(value)
        expected = {"int": "a whole number", "float": "a positive number of seconds", "bool": "true or false",
                    "list": "a list"}[kind]
        raise ConfigError(f"{name}: {shown} is not {expected}") from None
    return str(value)


def _read_secret_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read().strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise ConfigError(f"{name}: {path} is empty")
    return text


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
        except OSError as exc:
            raise ConfigError(f"config file {path}: cannot read it: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: not valid TOML: {exc}") from None
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
    return values


def load_config(config_file: str | None = None, environ: dict | None = None) -> SyncConfig:
    """The service's configuration, checked; a ConfigError names the setting that is wrong."""
    env = dict(os.environ if environ is None else environ)
    values = raw_settings(config_file, env)
    if not values["server_id"]:
        raise ConfigError(f"server_id: required ({ENV_PREFIX}SERVER_ID or server_id in the config file)")
    if not values["db_host"]:
        raise ConfigError(f"db_host: required ({ENV_PREFIX}DB_HOST; a directory for a Unix socket)")
    if values["db_sslmode"] not in SSL_MODES:
        raise ConfigError(f"db_sslmode: {values['db_sslmode']!r} is not one of {', '.join(SSL_MODES)}")
    for name in ("db_sslrootcert", "db_sslcert", "db_sslkey"):
        if values[name] and not os.access(values[name], os.R_OK):
            raise ConfigError(f"{name}: {values[name]} cannot be read")
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
        key = env_key
    elif values["allow_plaintext_keys"] and not os.path.exists(values["encryption_key_file"] or ""):
        values["encryption_key_file"] = None
    elif not values["encryption_key_file"]:
        raise ConfigError("encryption_key_file: required (or allow_plaintext_keys: true)")
    for name in values["interfaces"]:
        if not IFNAME_RE.match(name):
            raise ConfigError(f"interfaces: {name!r} is not an interface name")
    try:
        WgrestClient(values["wgrest_url"], token)
    except WgValueError as exc:
        raise ConfigError(str(exc).replace("api_url", "wgrest_url")) from None
    db = {"host": values["db_host"], "port": values["db_port"], "dbname": values["db_name"],
          "user": values["db_user"], "password": password, "sslmode": values["db_sslmode"],
          "sslrootcert": values["db_sslrootcert"], "sslcert": values["db_sslcert"], "sslkey": values["db_sslkey"],
          "connect_timeout": values["db_connect_timeout"], "application_name": "wgrest-sync"}
    config = SyncConfig(
        server_id=values["server_id"], db={k: v for k, v in db.items() if v not in (None, "")},
        interval=values["interval"], wgrest_url=values["wgrest_url"], wgrest_token=token,
        wgrest_validate_certs=values["wgrest_validate_certs"], wgrest_timeout=values["wgrest_timeout"],
        config_dir=values["config_dir"], interfaces=values["interfaces"],
        encryption_key_file=values["encryption_key_file"], encryption_key=key,
        allow_plaintext_keys=values["allow_plaintext_keys"], status_file=values["status_file"],
        health_max_age=values["health_max_age"], backoff_base=values["backoff_base"], migrate=values["migrate"],
    )
    make_cipher(config)  # a bad key file fails here, at start
    return config


def make_cipher(config: SyncConfig):
    from ._secrets import KeyCipher, SecretError

    try:
        if config.encryption_key:
            return KeyCipher.from_base64(config.encryption_key)
        if config.encryption_key_file:
            return KeyCipher.from_file(config.encryption_key_file)
    except SecretError as exc:
        raise ConfigError(str(exc)) from None
    return None


# --- reading the server's state ------------------------------------------------------------


def read_state(client: WgrestClient, config_dir: str, only: tuple = ()) -> dict[str, Interface]:
    """The server's state: settings and labels from the wg-quick files, peers and keys from wgrest.

    Any failure raises (WgError): the caller then saves nothing, so a read that
    failed half-way can never look like peers that were removed.
    """
    devices = {d["name"]: d for d in client.devices()}
    try:
        entries = sorted(os.listdir(config_dir))
    except FileNotFoundError:
        entries = []
    except OSError as exc:
        raise WgError(f"cannot list {config_dir}: {exc.strerror}") from None
    files = {e[:-5] for e in entries if e.endswith(".conf") and IFNAME_RE.match(e[:-5]) and not e.startswith(".")}
    names = sorted((set(devices) | files) & set(only) if only else set(devices) | files)
    state = {}
    for name in names:
        from_file = _files.read_config(_files.config_path(config_dir, name)) if name in files else None
        if name not in devices:
            if from_file is not None:
                state[name] = from_file
            continue
        api_peers = {p.public_key: p for p in (peer_from_api(d, name) for d in client.peers(name))}
        base = from_file or Interface()
        # File order first, then peers only the API knows (by key): a stable order writes no rows.
        ordered = [api_peers.pop(p.public_key).replace(name=p.name) for p in base.peers if p.public_key in api_peers]
        ordered += [api_peers[k] for k in sorted(api_peers)]
        device = devices[name]
        if from_file is None:
            base = Interface(private_key=device.get("private_key") or None,
                             listen_port=device.get("listen_port") or None,
                             fwmark=device.get("firewall_mark") or None)
        elif not base.private_key and device.get("private_key"):
            base = base.replace(private_key=device["private_key"])
        state[name] = base.replace(peers=tuple(ordered))
    return state


# --- the service -----------------------------------------------------------------------------------


@dataclasses.dataclass
class CycleResult:
    ok: bool
    error: str | None = None
    changed: bool = False
    counts: dict = dataclasses.field(default_factory=dict)
    duration: float = 0.0


class SyncService:
    def __init__(self, config: SyncConfig):
        self.config = config
        self.cipher = make_cipher(config)
        self.client = WgrestClient(config.wgrest_url, config.wgrest_token, config.wgrest_validate_certs,
                                   timeout=config.wgrest_timeout, retries=1)
        self.store = None
        self.failures = 0
        self.last_success: str | None = _read_status(config.status_file).get("last_success")

    def _store(self):
        if self.store is None:
            from ._store import Store

            store = Store(self.config.db, self.cipher, self.config.allow_plaintext_keys)
            try:
                if self.config.migrate:
                    store.migrate()
            except BaseException:
                store.close()
                raise
            self.store = store
        return self.store

    def _drop_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:
                log.debug("closing the database connection failed", exc_info=True)
            self.store = None

    def run_once(self) -> CycleResult:
        started = time.monotonic()
        try:
            state = read_state(self.client, self.config.config_dir, self.config.interfaces)
            if not state:
                # A server with no interface at all is far likelier a missing mount or a fresh wgrest
                # than the truth; storing it would empty the current state.
                raise WgError(f"found no interface in wgrest nor in {self.config.config_dir}")
        except WgError as exc:
            where = "wgrest" if isinstance(exc, WgrestError) else "files"
            return self._finish(CycleResult(False, f"read failed ({where}), nothing saved: {exc}"), started)
        try:
            saved = self._store().save_state(self.config.server_id, state, source=SOURCE,
                                             partial=bool(self.config.interfaces))
        except WgError as exc:
            self._drop_store()  # reconnect next time: the server may have restarted
            return self._finish(CycleResult(False, f"save failed: {exc}"), started)
        counts = dict(saved.counts, snapshot_id=saved.snapshot_id)
        return self._finish(CycleResult(True, None, saved.changed, counts), started)

    def _finish(self, result: CycleResult, started: float) -> CycleResult:
        result.duration = time.monotonic() - started
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        self.failures = 0 if result.ok else self.failures + 1
        if result.ok:
            self.last_success = now
        try:
            self._store().record_sync(self.config.server_id, result.ok, result.error, result.counts, result.duration)
        except WgError as exc:
            self._drop_store()
            log.warning("could not record the sync status in the database: %s", exc)
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
        return min(self.config.interval, self.config.backoff_base * 2 ** (self.failures - 1))

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.run_once()
            stop.wait(self.next_delay())
        self._drop_store()


def _write_status(path: str, data: dict) -> None:
    """Temp file + rename, so --health never reads half a file. The directory's mode is left alone
    (the status file may sit in a shared /tmp or /run)."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o755, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".status.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o644)
                json.dump(data, handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        log.warning("cannot write the status file %s: %s", path, exc.strerror)


def _read_status(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def health(status_file: str, max_age: float, now: dt.datetime | None = None) -> tuple[bool, str]:
    """Healthy when the last successful cycle is at most ``max_age`` seconds old."""
    status = _read_status(status_file)
    if not status:
        return False, f"no status in {status_file} yet"
    last = status.get("last_success")
    if not last:
        return False, f"no successful sync yet; last error: {status.get('error')}"
    age = ((now or dt.datetime.now(dt.timezone.utc)) - dt.datetime.fromisoformat(last)).total_seconds()
    if age > max_age:
        return False, f"last successful sync {age:.0f}s ago (limit {max_age:.0f}s); last error: {status.get('error')}"
    return True, f"last successful sync {age:.0f}s ago"


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
    service.run_forever(stop)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
