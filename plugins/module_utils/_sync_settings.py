# Private to the wgfleet.wireguard collection: not a public API.
"""wgrest-sync's settings: one table of every setting's kind and default, read from the environment
(``WGSYNC_<NAME>``) over a TOML file over the defaults, checked, and made into a :class:`SyncConfig`.

A setting is declared once, in ``SETTINGS``; ``SyncConfig`` takes its defaults from there, and
``load_config`` fills every field that has a setting of its name. Plain Python (no Ansible).
"""
from __future__ import annotations

import dataclasses
import os
import re

try:
    import tomllib
except ImportError:  # Python 3.10: TOML files need tomli there; env configuration still works
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ImportError:
        tomllib = None

from . import _metrics, _secrets
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
from ._errors import WgValueError, shown
from ._secrets import SecretError
from ._values import check_ifname
from ._wgrest import DEFAULT_API_URL, WgrestClient

ENV_PREFIX = "WGSYNC_"
MAX_SECONDS = 7 * 86400


class ConfigError(WgValueError):
    """A setting is missing or wrong; the service exits at start with this message."""


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


def health_max_age(setting: float | None, interval: float) -> float:
    """How old the last success may be for --health to answer healthy: the setting, else three intervals and 30 s."""
    return setting if setting else 3 * interval + 30


def _default(name: str):
    """A setting's default, as SETTINGS declares it (SyncConfig's defaults come from there)."""
    return SETTINGS[name][1]


@dataclasses.dataclass
class SyncConfig:
    server_id: str
    db: DatabaseSettings | dict  # dict: psycopg2.connect keyword arguments (tests, benchmarks)
    interval: float = _default("interval")
    wgrest_url: str = _default("wgrest_url")
    wgrest_token: str | None = dataclasses.field(default=None, repr=False)
    wgrest_validate_certs: bool = _default("wgrest_validate_certs")
    wgrest_timeout: float = _default("wgrest_timeout")
    config_dir: str = _default("config_dir")
    interfaces: tuple = _default("interfaces")
    encryption_key_file: str | None = _default("encryption_key_file")
    encryption_key: str | None = dataclasses.field(default=None, repr=False)
    allow_plaintext_keys: bool = _default("allow_plaintext_keys")
    status_file: str = _default("status_file")
    health_max_age: float | None = _default("health_max_age")
    backoff_base: float = _default("backoff_base")
    migrate: bool = _default("migrate")
    metrics_listen: tuple | None = None  # (address, port) of the Prometheus endpoint; None: no metrics
    metrics_per_peer: bool = _default("metrics_per_peer")
    metrics_recent_handshake: float = _default("metrics_recent_handshake")

    @property
    def max_age(self) -> float:
        return health_max_age(self.health_max_age, self.interval)

    def connect_kwargs(self) -> dict:
        return self.db.connect_kwargs() if isinstance(self.db, DatabaseSettings) else dict(self.db)

    def secrets(self) -> list[str]:
        """Every secret of the configuration, to keep them out of any message."""
        password = self.connect_kwargs().get("password")
        return [v for v in (self.wgrest_token, self.encryption_key, password) if v]


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
        quoted = "(hidden)" if kind == "secret" else shown(original)
        raise ConfigError(f"{name}: {quoted} is not {_EXPECTED[kind]}")
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
            raise ConfigError(f"config file {path}: unknown setting {shown(unknown[0])}")
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
    # Every field that has a setting of its name takes it; the rest are what the checks above made.
    named = {f.name: values[f.name] for f in dataclasses.fields(SyncConfig) if f.name in values}
    config = SyncConfig(**{**named, "server_id": server_id, "db": db, "wgrest_token": token, "encryption_key": key,
                           "metrics_listen": metrics_listen})
    make_cipher(config)  # a bad key file fails here, at start
    return config


def make_cipher(config: SyncConfig):
    try:
        return _secrets.make_cipher(config.encryption_key, config.encryption_key_file)
    except SecretError as exc:
        raise ConfigError(str(exc)) from None
