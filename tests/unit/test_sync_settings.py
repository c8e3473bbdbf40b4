"""wgrest-sync's settings (WGSYNC_* and the TOML file) given careless values: each is refused by a
ConfigError naming the setting, or read as the one obvious value; never a bare Python error."""
from __future__ import annotations

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils._sync import main
from ansible_collections.wgfleet.wireguard.plugins.module_utils._sync_settings import ConfigError, load_config
from tests.helpers.keys import SERVER_KEY

TOKEN = "tok-attack-SECRET-7d1f"
BASE = {"WGSYNC_SERVER_ID": "srv1", "WGSYNC_DB_HOST": "/tmp", "WGSYNC_WGREST_TOKEN": TOKEN,
        "WGSYNC_ALLOW_PLAINTEXT_KEYS": "true", "WGSYNC_ENCRYPTION_KEY_FILE": "/nonexistent/wgsync-attack-key"}


def load(**env):
    return load_config(environ={**BASE, **{f"WGSYNC_{k.upper()}": v for k, v in env.items()}})


@pytest.mark.parametrize("setting", ["db_port", "db_connect_timeout"])
@pytest.mark.parametrize("value", ["+-5", "--5", "-+5", "5-", "²", "٣", "\uff15", "1_0", "0x10", "5.0", "", " "])
def test_a_number_that_is_not_plain_ascii_digits_is_refused_naming_the_setting(setting, value):
    with pytest.raises(ConfigError, match=rf"^{setting}: .* is not a whole number"):
        load(**{setting: value})


@pytest.mark.parametrize("setting", ["interval", "wgrest_timeout", "health_max_age", "backoff_base"])
@pytest.mark.parametrize("value", ["٣", "\uff11", "1_0", "²", "0x10", "nan", "inf", "-1", "0", ""])
def test_seconds_are_ascii_numbers(setting, value):
    with pytest.raises(ConfigError, match=rf"^{setting}: .* is not a positive number of seconds"):
        load(**{setting: value})


@pytest.mark.parametrize(("value", "seconds"), [("30", 30.0), (" 2.5 ", 2.5), ("1e2", 100.0), ("+7", 7.0)])
def test_seconds_that_are_fine(value, seconds):
    assert load(interval=value).interval == seconds


@pytest.mark.parametrize("brk", ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00"])
def test_a_control_character_in_the_interface_list_is_refused_not_stripped(brk):
    with pytest.raises(ConfigError, match=r"^interfaces: .*(line break or control character)"):
        load(interfaces=f"wg0{brk}")


@pytest.mark.parametrize("setting", ["status_file", "config_dir"])
def test_an_empty_path_is_refused(setting):
    with pytest.raises(ConfigError, match=rf"^{setting}: must not be empty"):
        load(**{setting: ""})


def test_main_reports_a_bad_number_as_a_configuration_error(monkeypatch, capsys):
    for name, value in {**BASE, "WGSYNC_DB_PORT": "+-5"}.items():
        monkeypatch.setenv(name, value)
    assert main(["--check-config"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: db_port: '+-5' is not a whole number" in err
    assert TOKEN not in err


@pytest.mark.parametrize(("setting", "given"), [
    ("metrics_listen", lambda key: f'"{key}"'),  # text, but no address
    ("wgrest_url", lambda key: f'["{key}"]'),  # a list where text belongs
    ("db_name", lambda key: f'{{ id = "{key}" }}'),
])
def test_a_key_given_in_the_wrong_setting_is_refused_without_quoting_it(tmp_path, setting, given):
    """A private key pasted into the wrong line of the settings file: the start-up error names the setting, not
    the key (the service's log and its status file keep that message)."""
    toml = tmp_path / "sync.toml"
    toml.write_text(f"{setting} = {given(SERVER_KEY)}\n")
    with pytest.raises(ConfigError, match=rf"^{setting}: ") as caught:
        load_config(str(toml), environ=BASE)
    assert SERVER_KEY[:20] not in str(caught.value), str(caught.value).replace(SERVER_KEY, "<the key>")
