"""wgrest-sync's metrics settings given careless values (a ConfigError naming the setting), and the reading of
wgrest's handshake times."""
from __future__ import annotations

import datetime as dt

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._metrics import parse_handshake
from ansible_collections.wgfleet.wireguard.plugins.module_utils._sync_settings import ConfigError, load_config

BASE = {"WGSYNC_SERVER_ID": "srv1", "WGSYNC_DB_HOST": "/tmp", "WGSYNC_WGREST_TOKEN": "tok-metrics-7d1f",
        "WGSYNC_ALLOW_PLAINTEXT_KEYS": "true", "WGSYNC_ENCRYPTION_KEY_FILE": "/nonexistent/wgsync-metrics-key"}


def load(**env):
    return load_config(environ={**BASE, **{f"WGSYNC_{k.upper()}": v for k, v in env.items()}})


@pytest.mark.parametrize("value", ["9586", "localhost:9586", "127.0.0.1:0", "127.0.0.1:70000", "[::1]9586",
                                   "::1:9586", "127.0.0.1:9586\n", "1.2.3.4.5:1", "127.0.0.1:95 86", "127.0.0.1:\x00",
                                   "256.0.0.1:9586", "[fe80::1%eth0]:9586", "127.0.0.1:9586\u2028", ":9586",
                                   "127.0.0.1:" + "9" * 200])
def test_a_bad_metrics_address_is_refused_naming_the_setting(value):
    with pytest.raises(ConfigError, match=r"^metrics_listen: "):
        load(metrics_listen=value)


@pytest.mark.parametrize(("value", "parsed"), [("127.0.0.1:9586", ("127.0.0.1", 9586)), ("[::1]:9586", ("::1", 9586)),
                                               ("0.0.0.0:1", ("0.0.0.0", 1)), ("", None)])
def test_metrics_addresses_that_are_fine(value, parsed):
    assert load(metrics_listen=value).metrics_listen == parsed


def test_metrics_are_off_unless_asked_for():
    config = load()
    assert config.metrics_listen is None and config.metrics_per_peer is False


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("metrics_per_peer", "maybe", "is not true or false"),
    ("metrics_recent_handshake", "0", "is not a positive number of seconds"),
    ("metrics_recent_handshake", "-180", "is not a positive number of seconds"),
    ("metrics_recent_handshake", "nan", "is not a positive number of seconds"),
    ("metrics_recent_handshake", "1e12", "is not a positive number of seconds"),
])
def test_other_metrics_settings_refuse_bad_values(setting, value, message):
    with pytest.raises(ConfigError, match=rf"^{setting}: .*{message}"):
        load(**{setting: value})


@pytest.mark.parametrize(("text", "expected"), [
    ("0001-01-01T00:00:00Z", 0),
    ("2026-12-02T01:05:07Z", int(dt.datetime(2026, 12, 2, 1, 5, 7, tzinfo=dt.timezone.utc).timestamp())),
    ("2026-12-02T01:05:07.123456789Z", int(dt.datetime(2026, 12, 2, 1, 5, 7, tzinfo=dt.timezone.utc).timestamp())),
    ("2026-12-02T02:05:07+01:00", int(dt.datetime(2026, 12, 2, 1, 5, 7, tzinfo=dt.timezone.utc).timestamp())),
    ("not a time", 0), (None, 0), (17, 0),
])
def test_wgrest_handshake_times(text, expected):
    assert parse_handshake(text) == expected
