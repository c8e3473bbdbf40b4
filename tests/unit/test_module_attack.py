"""Every option of wg_interface and wg_peer given hostile values, through the modules' own main().

The interface is down (the file is the whole state), so this needs no root. For
each value: no crash past run_core, no "unexpected error", no key in the
output; and in the end the file still reads back (with wg-quick's own
``strip`` too) and no temporary file is left.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import re
import shutil
import subprocess
import traceback
from unittest import mock

import pytest
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins import modules as modules_package
from ansible_collections.wgfleet.wireguard.plugins.module_utils._values import FORBIDDEN
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import (
    INTERFACE_SETTINGS,
    PEER_SETTINGS,
    option_specs,
    parse,
)
from ansible_collections.wgfleet.wireguard.plugins.modules import wg_interface, wg_peer
from tests.helpers.keys import PEER_B as PEER
from tests.helpers.keys import PSK, new_key
from tests.helpers.keys import SERVER_KEY as KEY
from tests.helpers.module_process import module_tracebacks

NAME = "wgattack0"

VALUES = ["x\ny", "x\x1cy", "x\u2028y", "x\x00y", "10.10.0.1\rPreUp = id", "", " ", "a" * 100_000, {"a": 1}, [1, 2],
          ["a\nb"], [None], None, True, 2**70, -1, "#", "../x",
          "x\ry", "x\r\ny", "x\vy", "x\fy", "x\x1dy", "x\x1ey", "x\x85y", "x\u2029y", "x\x07y", 2**63, float("nan"),
          "nan", 0, "1e400", "a" * 1_000_000, {"public_key": PEER}, False]
# The options the settings' registry makes (a new setting's option is attacked without a change here), then the rest.
SETTING_OPTIONS = {wg_interface: list(option_specs(INTERFACE_SETTINGS)), wg_peer: list(option_specs(PEER_SETTINGS))}
OPTIONS = {
    wg_interface: ["name", "state", *SETTING_OPTIONS[wg_interface], "config_dir", "up", "implementation", "backup",
                   "api_peers_dir"],
    wg_peer: ["interface", "public_key", "state", *SETTING_OPTIONS[wg_peer], "peers", "exclusive", "config_dir",
              "backup", "backend", "api_token", "api_timeout", "address_pool"],
}


def crashed(msg: str, data: dict) -> bool:
    """The module failed other than by refusing (its unexpected-error path), or its traceback (Ansible keeps the
    one being handled when a module fails inside an ``except``: shown at -vvv only) quotes a key."""
    return "unexpected" in msg or "Traceback" in msg or any(
        secret in str(data.get("exception", "")) for secret in (KEY, PSK))


def call(module, args) -> tuple[str, dict]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        module.main()
    text = out.getvalue()
    return text, json.loads(text[text.index("{"):])


# Every line the renderer may write, read without the collection's parser.
LINE = re.compile(r"^(|\[Interface\]|\[Peer\]|# Name = [^\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+|"
                  r"# Expires = \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ|"
                  r"(Address|ListenPort|FwMark|PrivateKey|DNS|MTU|Table|PreUp|PostUp|PreDown|PostDown|SaveConfig|"
                  r"PublicKey|PresharedKey|AllowedIPs|Endpoint|PersistentKeepalive) = "
                  r"[^#\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+)\Z")


def odd_lines(conf) -> list:
    return [line for line in conf.read_bytes().decode().split("\n") if not LINE.match(line)]


@pytest.fixture
def config_dir(tmp_path):
    etc = tmp_path / "etc"
    for module, args in ((wg_interface, {"name": NAME, "address": ["10.10.0.1/24"], "private_key": KEY, "up": False}),
                         (wg_peer, {"interface": NAME, "public_key": PEER, "preshared_key": PSK,
                                    "allowed_ips": ["10.10.0.2/32"]})):
        data = call(module, {**args, "config_dir": str(etc)})[1]
        assert not data.get("failed"), data
    return etc


@pytest.mark.parametrize("module", [wg_interface, wg_peer], ids=["wg_interface", "wg_peer"])
def test_hostile_values_in_every_option(module, config_dir, monkeypatch):
    monkeypatch.chdir(config_dir.parent)  # relative paths given as config_dir land in the test's directory
    failures = []
    for option in OPTIONS[module]:
        for value in VALUES:
            if module is wg_interface:
                args = {"name": NAME, "config_dir": str(config_dir), "up": False, option: value}
            else:
                args = {"interface": NAME, "config_dir": str(config_dir), "public_key": PEER, option: value}
                if option == "peers":
                    args.pop("public_key")
                    args["peers"] = [{"public_key": PEER, "name": value}, {"public_key": PEER[:-2] + "A=",
                                                                           "allowed_ips": value}]
            text, data = call(module, args)
            where = f"{option}={value!r:.40}"
            if "unexpected error" in data.get("msg", ""):
                failures.append(f"{where}: {data.get('msg')}")
            if KEY in text or PSK in text:
                failures.append(f"{where}: a key in the output")
            if odd_lines(config_dir / f"{NAME}.conf"):
                failures.append(f"{where}: the file has lines the renderer never writes: "
                                f"{odd_lines(config_dir / f'{NAME}.conf')!r:.200}")
            if not data.get("failed") and data.get("changed") and module is wg_interface and option != "name":
                # A value that was accepted: put the known state back for the next one.
                call(wg_interface, {"name": NAME, "config_dir": str(config_dir), "up": False, "private_key": KEY,
                                    "address": ["10.10.0.1/24"], "dns": [], "mtu": 0, "table": "auto", "fwmark": 0,
                                    "pre_up": [], "post_up": [], "pre_down": [], "post_down": []})
    assert not failures, "\n".join(failures[:20])
    conf = config_dir / f"{NAME}.conf"
    parse(conf.read_text())
    assert [f for f in os.listdir(config_dir) if f.endswith((".tmp", "~"))] == []
    if shutil.which("wg-quick"):
        subprocess.run(["wg-quick", "strip", str(conf)], check=True, capture_output=True)


# --- every option the registry makes, value by value -------------------------------------------------------------

# A value each setting's option accepts: a new setting fails test_every_setting_option_has_a_valid_value until one
# is given here, and is then attacked by the tests below.
VALID = {"address": ["10.10.0.1/24"], "listen_port": 51820, "fwmark": 16, "private_key": KEY, "dns": ["10.0.0.53"],
         "mtu": 1420, "table": "1234", "pre_up": ["echo a"], "post_up": ["echo a"], "pre_down": ["echo a"],
         "post_down": ["echo a"], "preshared_key": PSK, "allowed_ips": ["10.10.0.2/32"],
         "endpoint": "vpn.example.com:51820", "persistent_keepalive": 25, "name": "alice",
         "expires": "2035-01-01T00:00:00Z"}
# Every character that ends a line for someone (bash, str.splitlines(), a Windows editor), NUL, other controls.
LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x9f"]
SETTING_CASES = [(m, o) for m in (wg_interface, wg_peer) for o in SETTING_OPTIONS[m]]
CASE_IDS = [f"{m.__name__.rsplit('.', 1)[-1]}-{o}" for m, o in SETTING_CASES]


def test_every_setting_option_has_a_valid_value():
    assert sorted(VALID) == sorted(o for _m, o in SETTING_CASES)


def setting_args(module, config_dir, option, value) -> dict:
    if module is wg_interface:
        return {"name": NAME, "config_dir": str(config_dir), "up": False, option: value}
    return {"interface": NAME, "config_dir": str(config_dir), "public_key": PEER, option: value}


def names_the_option(msg: str, option: str) -> bool:
    # Ours ("mtu: ...", "peer <key>: name: ..."), or Ansible's own type check ("argument 'mtu' is of type ...").
    return msg.startswith((f"{option}: ", f"peer {PEER}: {option}: ", f"argument '{option}' "))


def text_of(value):
    """The valid value as the text a break is put into (a list: its first item)."""
    return value[0] if isinstance(value, list) else str(value)


def with_text(valid, text):
    return [text] if isinstance(valid, list) else text


def refused_and_untouched(module, config_dir, option, value) -> list[str]:
    """What is wrong when ``value`` is not refused with a short, clear message naming the option, the file left
    byte for byte and mode as it was, no traceback, and no key in the message."""
    conf = config_dir / f"{NAME}.conf"
    before, mode = conf.read_bytes(), os.stat(conf).st_mode
    _text, data = call(module, setting_args(module, config_dir, option, value))
    msg = data.get("msg", "")
    where = f"{option}={value!r:.60}"
    wrong = []
    if not data.get("failed"):
        wrong.append(f"{where}: accepted")
    elif not names_the_option(msg, option):
        wrong.append(f"{where}: the message does not name the option: {msg[:200]!r}")
    if crashed(msg, data):
        wrong.append(f"{where}: a traceback: {msg[:200]!r}")
    if FORBIDDEN.search(msg) or len(msg) > 400:
        wrong.append(f"{where}: the value is not shown safely ({len(msg)} characters): {msg[:200]!r}")
    for secret in (KEY, PSK):
        if secret in msg or secret[:30] in msg:
            wrong.append(f"{where}: a key in the message")
    if conf.read_bytes() != before or os.stat(conf).st_mode != mode:
        wrong.append(f"{where}: the file was changed")
        conf.write_bytes(before)
        os.chmod(conf, mode)
    return wrong


@pytest.mark.parametrize(("module", "option"), SETTING_CASES, ids=CASE_IDS)
def test_every_setting_option_refuses_line_breaks_controls_and_huge_values(module, option, config_dir):
    valid = VALID[option]
    good = text_of(valid)
    values = []
    for char in LINE_BREAKS + CONTROLS:
        # After the value with a key behind it, before it (controls only: int() reads a number with line breaks
        # around it as the number, see below), and inside it.
        values.append(with_text(valid, f"{good}{char}AllowedIPs = 0.0.0.0/0"))
        values.append(with_text(valid, f"{good[:1]}{char}{good[1:]}"))
        if char in CONTROLS:
            values.append(with_text(valid, f"{char}{good}"))
    values += [with_text(valid, "a" * 1_000_000), with_text(valid, good + "a" * 1_000_000),
               with_text(valid, "1" * 1_000_000)]
    wrong = [w for value in values for w in refused_and_untouched(module, config_dir, option, value)]
    assert not wrong, "\n".join(wrong[:15])


@pytest.mark.parametrize(("module", "option"), SETTING_CASES, ids=CASE_IDS)
def test_a_key_given_to_any_setting_option_is_never_quoted(module, config_dir, option):
    """Ansible's own type check quoted a value it could not convert in full: ``mtu`` (or listen_port, fwmark,
    persistent_keepalive) given a private key failed with the key in the message."""
    conf = config_dir / f"{NAME}.conf"
    valid = VALID[option]
    for secret in (KEY, PSK, KEY[:-2] + "!=", f"{PSK} x"):
        before = conf.read_bytes()
        _text, data = call(module, setting_args(module, config_dir, option, with_text(valid, secret)))
        msg = data.get("msg", "")
        assert KEY[:30] not in msg and PSK[:30] not in msg, f"{option}: {msg[:300]}"
        assert "unexpected" not in msg, msg[:300]
        if data.get("failed"):
            assert names_the_option(msg, option) or msg.startswith(f"argument '{option}'"), msg[:300]
            assert conf.read_bytes() == before
        else:  # a label or a hook may hold any text; the file still reads as the renderer writes it
            assert not odd_lines(conf) and parse(conf.read_text())
            conf.write_bytes(before)


@pytest.mark.parametrize(("module", "option"), SETTING_CASES, ids=CASE_IDS)
def test_empty_blank_and_wrong_types_are_refused_or_read_back(module, option, config_dir):
    """'' clears a setting (documented); blanks and other types are Ansible's to convert (a str option takes
    5, True or {'a': 1} as their text). Whatever is accepted is written as a line that reads back; whatever
    is refused names the option and leaves the file alone."""
    conf = config_dir / f"{NAME}.conf"
    wrong = []
    for value in ["", " ", "\t", " \t ", 5, -1, 2**70, 1.5, float("nan"), True, False, None, ["a"], [None], [5],
                  {"a": 1}, [{"a": 1}], [["a"]]]:
        before, mode = conf.read_bytes(), os.stat(conf).st_mode
        text, data = call(module, setting_args(module, config_dir, option, value))
        msg, where = data.get("msg", ""), f"{option}={value!r:.40}"
        if crashed(msg, data):
            wrong.append(f"{where}: a traceback: {msg[:200]!r}")
        if data.get("failed"):
            # Ansible masks a no_log option's value wherever it occurs: ' ' or 'a' cuts every word of the message.
            if not names_the_option(msg, option) and "********" not in msg:
                wrong.append(f"{where}: the message does not name the option: {msg[:200]!r}")
            if conf.read_bytes() != before or os.stat(conf).st_mode != mode:
                wrong.append(f"{where}: refused, yet the file was changed")
        elif odd_lines(conf):
            wrong.append(f"{where}: accepted as lines the renderer never writes: {odd_lines(conf)!r:.200}")
        else:
            parse(conf.read_text())
        if KEY in text or PSK in text:
            wrong.append(f"{where}: a key in the output")
        conf.write_bytes(before)
        os.chmod(conf, mode)
    assert not wrong, "\n".join(wrong[:15])


@pytest.mark.parametrize("option", [o for o in SETTING_OPTIONS[wg_interface] + SETTING_OPTIONS[wg_peer]
                                    if (INTERFACE_SETTINGS.get(o) or PEER_SETTINGS.get(o)).option["type"] == "int"])
def test_line_breaks_around_a_number_leave_the_number_alone(option, config_dir):
    """Chosen behaviour: Ansible converts an int option with int(), which drops whitespace of every kind around the
    digits ('\\u202825' is 25); nothing but the number reaches the file."""
    module = wg_interface if option in INTERFACE_SETTINGS else wg_peer
    conf = config_dir / f"{NAME}.conf"
    for char in LINE_BREAKS:
        _text, data = call(module, setting_args(module, config_dir, option, f"{char}{VALID[option]}{char}"))
        assert not data.get("failed"), data.get("msg")
        assert not odd_lines(conf)
        key = (INTERFACE_SETTINGS.get(option) or PEER_SETTINGS.get(option)).key
        lines = [line for line in conf.read_bytes().decode().split("\n") if line.startswith(f"{key} = ")]
        shown = hex(VALID[option]) if option == "fwmark" else str(VALID[option])
        assert lines == [f"{key} = {shown}"], lines


def test_an_option_of_a_peer_in_peers_given_a_key_or_a_huge_value_names_it(config_dir):
    """The same through ``peers``: Ansible's message about a suboption quoted the key in full."""
    conf = config_dir / f"{NAME}.conf"
    before = conf.read_bytes()
    for option in SETTING_OPTIONS[wg_peer]:
        for value in (KEY, "x" * 1_000_000, f"{text_of(VALID[option])}\nAllowedIPs = 0.0.0.0/0"):
            _text, data = call(wg_peer, {"interface": NAME, "config_dir": str(config_dir),
                                         "peers": [{"public_key": PEER, option: with_text(VALID[option], value)}]})
            msg = data.get("msg", "")
            if option in ("name", "preshared_key") and value == KEY:  # a label may be any text; KEY is a key
                conf.write_bytes(before)
                continue
            assert data.get("failed"), (option, value[:20])
            assert option in msg and KEY[:30] not in msg and len(msg) < 400 and not FORBIDDEN.search(msg), msg[:300]
            assert "unexpected" not in msg and conf.read_bytes() == before, msg[:300]


# --- the server_key filter ---------------------------------------------------------------------------------------

def test_server_key_filter_never_quotes_a_key_given_in_the_wrong_place_and_names_the_option():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.wgfleet.wireguard.plugins.filter.server_key import server_key
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._secrets import generate_key

    master = generate_key()
    cases = [  # (server_id, generation, the option the message must name)
        ("srv-a", master, "generation"),  # the arguments swapped
        ("srv-a", master + "\n", "generation"),
        ("srv-a", "a" * 1_000_000, "generation"),
        ("srv-a", "\u00b2", "generation"),  # str.isdigit() is true of it, int() refuses it
        ("srv-a", "\u0661", "generation"),  # an Arabic-Indic one: not the ASCII digit the docs mean
        (master.encode(), 1, "server_id"),
        ([master], 1, "server_id"),
        ({"id": master}, 1, "server_id"),
    ]
    for server_id, generation, option in cases:
        with pytest.raises(AnsibleFilterError) as caught:
            server_key(master, server_id, generation)
        message = str(caught.value)
        assert message.startswith(f"server_key: {option}: "), message[:300]
        assert master not in message and master.rstrip("=") not in message, option
        assert len(message) < 400, message[:300]


# --- key files that are not key files ----------------------------------------------------------------------------

def test_a_key_file_that_never_ends_or_blocks_is_refused_at_once(tmp_path):
    """/dev/zero (endless NULs, all ASCII) was read to the end of the memory, a FIFO blocked the run for ever,
    a 1 MB file was read whole: each is refused naming the option, within seconds, in each module that reads
    one (run as Ansible runs a module: a process of its own, here with a time limit)."""
    import sys

    from tests.helpers.playbook import ensure_collection_path

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    big.write_text("A" * 1_000_000)
    root = str(ensure_collection_path())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    db = {"login_host": "127.0.0.1", "login_port": 1, "connect_timeout": 1}
    cases = [("wg_backup", "encryption_key_file", {"config_dir": str(tmp_path / "etc"), "server_id": "srv-a"}),
             ("wg_restore", "encryption_key_file", {"config_dir": str(tmp_path / "etc"), "server_id": "srv-a"}),
             ("wg_rekey", "previous_encryption_key_file", {"server_id": "srv-a", "encryption_key": KEY})]
    for module, option, extra in cases:
        for path in ("/dev/zero", str(fifo), str(big), str(tmp_path)):
            args = tmp_path / "args.json"
            args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**db, **extra, option: path}}))
            try:
                proc = subprocess.run([sys.executable, "-m", f"ansible_collections.wgfleet.wireguard.plugins.modules.{module}",
                                       str(args)], capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path,
                                      check=False)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{module} {option}={path}: still reading after 30 s")
            data = json.loads(proc.stdout[proc.stdout.index("{"):])
            assert data.get("failed") and data["msg"].startswith(f"{option}: "), (module, path, data.get("msg"))
            assert "unexpected" not in data["msg"] and len(data["msg"]) < 400, data["msg"][:400]


def test_a_sync_secret_file_that_blocks_or_never_ends_is_refused_at_once(tmp_path):
    """wgrest-sync's db_password_file and wgrest_token_file: a FIFO blocked the start for ever (open() waits for
    a writer); /dev/zero and a directory are refused too, naming the setting."""
    import threading

    from ansible_collections.wgfleet.wireguard.plugins.module_utils._sync_settings import ConfigError, load_config

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    base = {"WGSYNC_SERVER_ID": "srv1", "WGSYNC_DB_HOST": "/tmp", "WGSYNC_WGREST_TOKEN": "tok-attack",
            "WGSYNC_ALLOW_PLAINTEXT_KEYS": "true", "WGSYNC_ENCRYPTION_KEY_FILE": "/nonexistent/wgsync-attack-key"}
    for setting in ("db_password_file", "wgrest_token_file"):
        for path in (str(fifo), "/dev/zero", str(tmp_path)):
            found: list = []

            def start(setting, path, found):
                try:
                    load_config(environ={**base, f"WGSYNC_{setting.upper()}": path})
                except ConfigError as exc:
                    found.append(str(exc))

            worker = threading.Thread(target=start, args=(setting, path, found), daemon=True)
            worker.start()
            worker.join(10)
            assert not worker.is_alive(), f"{setting}={path}: still reading after 10 s"
            assert found and found[0].startswith(f"{setting}: "), (setting, path, found)


# --- wg_peer's expires at the ends of the calendar ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0999-01-01T00:00:00Z",
                                   "0999-01-01"])
def test_an_expiry_at_the_ends_of_the_calendar_is_refused_naming_it(config_dir, value):
    # The first two leave the years 1-9999 once in UTC (OverflowError); the year 999 was written "999-..." by
    # strftime and then failed to read back (ValueError). Each was an unexpected error.
    conf = config_dir / f"{NAME}.conf"
    before = conf.read_bytes()
    # A new peer: an existing one given a past expiry is revoked (removed), as documented.
    _text, data = call(wg_peer, {"interface": NAME, "config_dir": str(config_dir), "public_key": PEER[:-2] + "A=",
                                 "allowed_ips": ["10.10.0.3/32"], "expires": value})
    assert data.get("failed") and data["msg"].startswith("expires: "), data.get("msg")
    assert "unexpected" not in data["msg"]
    assert conf.read_bytes() == before


# --- wg_peer's address_pool when held networks cover it ----------------------------------------------------------

def test_an_ipv6_pool_covered_by_held_networks_is_full_at_once(tmp_path):
    """Two peers holding fd10::/65 and fd10::8000:0:0:0/65 cover the /64 pool: the allocator stepped through its
    2**64 addresses one at a time (for ever). Now: refused naming address_pool, at once, and the file unchanged."""
    import threading

    etc = tmp_path / "etc"
    _t, data = call(wg_interface, {"name": NAME, "address": ["10.10.0.1/24", "fd10::1/64"], "private_key": KEY,
                                   "up": False, "config_dir": str(etc)})
    assert not data.get("failed"), data
    _t, data = call(wg_peer, {"interface": NAME, "config_dir": str(etc), "peers": [
        {"public_key": PEER, "allowed_ips": ["fd10::/65"]},
        {"public_key": PEER[:-2] + "A=", "allowed_ips": ["fd10:0:0:0:8000::/65"]}]})
    assert not data.get("failed"), data
    conf = etc / f"{NAME}.conf"
    before = conf.read_bytes()
    found = []

    def add():
        found.append(call(wg_peer, {"interface": NAME, "config_dir": str(etc), "address_pool": ["fd10::/64"],
                                    "peers": [{"public_key": PEER[:-2] + "E="}], "exclusive": False})[1])

    worker = threading.Thread(target=add, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive(), "still looking for a free address after 20 s"
    assert found[0].get("failed") and found[0]["msg"].startswith("address_pool: no free address left in fd10::/64"), found
    assert conf.read_bytes() == before


# --- every option of every module, the options read from the module's own argument spec --------------------------

MODULE_NAMES = sorted(m.name for m in pkgutil.iter_modules(modules_package.__path__))
PASSWORD = "pw-attack-7Hq2"  # the database password every run is given: it must never come out
STORE_KEYS = (new_key(), new_key())  # wg_rekey's two encryption keys (any 32 bytes): neither may come out either
DB = {"login_host": "127.0.0.1", "login_port": 1, "connect_timeout": 2, "login_password": PASSWORD}


class _Made(Exception):
    """Raised in place of AnsibleModule's work once main() has said how it makes its module."""


def made_with(module) -> dict:
    """The class of module ``module.main()`` makes and the arguments it makes it with (its argument spec...)."""
    seen: dict = {}
    original = AnsibleModule.__init__

    def record(self, *args, **kwargs):
        seen.update(inspect.signature(original).bind(self, *args, **kwargs).arguments, cls=type(self))
        raise _Made

    with mock.patch.object(AnsibleModule, "__init__", record), contextlib.suppress(_Made):
        module.main()
    return seen


def base_args(name: str, config_dir, tmp_path) -> dict:
    """Arguments that pass every check of module ``name`` (a database one then fails at connecting)."""
    spec = made_with(importlib.import_module(f"{modules_package.__name__}.{name}"))["argument_spec"]
    args = dict(DB) if "login_host" in spec else {}
    if "config_dir" in spec:
        args["config_dir"] = str(config_dir)
    if "server_id" in spec:
        args["server_id"] = "srv-attack"
    args.update({
        "wg_interface": {"name": NAME, "up": False},
        "wg_peer": {"interface": NAME, "public_key": PEER},
        "wg_client_config": {"name": "alice", "dest_dir": str(tmp_path / "clients"), "address": ["10.10.0.5/32"],
                             "server_public_key": PEER, "endpoint": "vpn.example.com:51820", "qr_code": False},
        "wg_rekey": {"encryption_key": STORE_KEYS[0], "previous_encryption_key": STORE_KEYS[1]},
        "wg_retention": {"keep_days": 30},
    }.get(name, {}))
    return args


def option_context(name: str, option: str) -> dict:
    """What makes ``option`` count: wg_peer's api_* options are read only with the wgrest backend (at a port
    where nothing listens, unless the URL is the option attacked)."""
    if name == "wg_peer" and option.startswith("api_"):
        return {"backend": "wgrest", "api_url": "http://127.0.0.1:1", "api_token": "t-attack"}
    return {}


def hostile_values(spec: dict) -> list:
    """Every line break, NUL and other controls (inside a value of the option's kind), 1 MB, a private key, empty
    and blank values, and each type the option does not take."""
    kind = spec.get("type", "str")
    good = "1{}2" if kind in ("int", "float") else "a{}b"
    values = [good.format(char) for char in LINE_BREAKS + CONTROLS]
    values += ["a" * 1_000_000, KEY, "", " ", "\t"]
    if kind in ("int", "float", "raw"):
        values.append("1" * 1_000_000)
    if kind == "list":
        values += [[value] for value in values]
    else:
        values.append(["a"])
    values += [v for k, v in (("dict", {"a": 1}), ("bool", True), ("bool", False), ("float", 1.5)) if k != kind]
    return values


def attack_cases():
    for name in MODULE_NAMES:
        spec = made_with(importlib.import_module(f"{modules_package.__name__}.{name}"))["argument_spec"]
        for option, option_spec in spec.items():
            yield name, option, None, option_spec
            for sub, sub_spec in (option_spec.get("options") or {}).items():
                yield name, option, sub, sub_spec


ATTACK_CASES = list(attack_cases())
ATTACK_PARAMS = [pytest.param(n, o, s, spec, id=f"{n}-{o}{'.' + s if s else ''}") for n, o, s, spec in ATTACK_CASES]


def run_main(module, args) -> tuple[str, dict]:
    """``module.main()`` run as Ansible runs it (tracebacks asked for, as at -vvv); a Python exception out of main()
    is Ansible's "MODULE FAILURE"."""
    out = io.StringIO()
    args = {**args, "_ansible_tracebacks_for": ["error", "warning", "deprecated"]}
    try:
        with patch_module_args(args), module_tracebacks(), contextlib.redirect_stdout(out), \
                contextlib.suppress(SystemExit):
            module.main()
    except Exception:
        return traceback.format_exc(), {"failed": True, "msg": "MODULE FAILURE", "exception": traceback.format_exc()}
    text = out.getvalue()
    return text, json.loads(text[text.index("{"):])


def what_is_wrong(name, option, sub, value, text, data) -> list[str]:
    msg = str(data.get("msg", ""))
    where = f"{name} {option}{'.' + sub if sub else ''}={value!r:.40}"
    wrong = []
    if crashed(msg, data) or "MODULE FAILURE" in msg:
        wrong.append(f"{where}: a crash: {msg[:200]!r} {str(data.get('exception'))[-300:]!r}")
    # A refusal quotes no key (the message, ``exception``); an accepted value may come back as given (a path in the
    # result; ``invocation``, Ansible's echo of the arguments). The secrets given as such are masked everywhere.
    told = f"{msg} {data.get('exception', '')}"
    for secret in (KEY, PSK):
        if data.get("failed") and secret[:30] in told:
            wrong.append(f"{where}: a key in the refusal")
    for secret in (PASSWORD, *STORE_KEYS):
        if secret in text:
            wrong.append(f"{where}: a secret given as such in the output")
    if data.get("failed"):
        # An accepted value the module went on with, to a database or wgrest where nothing listens.
        connecting = msg.startswith(("cannot connect to PostgreSQL at ", "wgrest at http://127.0.0.1:1: "))
        # Ansible masks a no_log option's value wherever it occurs: ' ' or 'a' cuts every word of the message.
        masked = "********" in msg
        if not connecting and not masked and not re.search(rf"(^|\W){re.escape(sub or option)}(\W|$)", msg):
            wrong.append(f"{where}: the message does not name the option: {msg[:200]!r}")
        if len(msg) > 400 or FORBIDDEN.search(msg):
            wrong.append(f"{where}: the message is not shown safely ({len(msg)} characters): {msg[:200]!r}")
    return wrong


@pytest.mark.parametrize(("name", "option", "sub", "spec"), ATTACK_PARAMS)
def test_every_option_of_every_module_refuses_hostile_values_cleanly(name, option, sub, spec, config_dir, tmp_path,
                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"{modules_package.__name__}.{name}")
    base = {**base_args(name, config_dir, tmp_path), **option_context(name, option)}
    wrong = []
    for value in hostile_values(spec):
        args = dict(base)
        if sub is None:
            args[option] = value
        else:  # one item of a list of dicts (wg_peer's peers), its required suboptions given
            required = {s: PEER for s, s_spec in spec_of(module)[option]["options"].items() if s_spec.get("required")}
            args.pop("public_key", None)
            args[option] = [{**required, sub: value}]
        text, data = run_main(module, args)
        wrong += what_is_wrong(name, option, sub, value, text, data)
    assert not wrong, "\n".join(wrong[:20])


def spec_of(module) -> dict:
    return made_with(module)["argument_spec"]


def test_a_huge_number_is_refused_at_once(config_dir):
    """Ansible converts an int option's text through Decimal, in time growing with the square of its length: a 1 MB
    string of digits as ``mtu`` (or a peer's ``persistent_keepalive``) kept the CPU for 49 s before the refusal."""
    import threading

    found: list = []
    cases = [(wg_interface, {"name": NAME, "config_dir": str(config_dir), "up": False, "mtu": "1" * 1_000_000}),
             (wg_peer, {"interface": NAME, "config_dir": str(config_dir),
                        "peers": [{"public_key": PEER, "persistent_keepalive": "1" * 1_000_000}]})]
    for module, args in cases:
        worker = threading.Thread(target=lambda m=module, a=args: found.append(call(m, a)[1]), daemon=True)
        worker.start()
        worker.join(10)
        assert not worker.is_alive(), f"{module.__name__}: still converting after 10 s"
    for data, option in zip(found, ("mtu", "persistent_keepalive")):
        assert data.get("failed") and f"'{option}'" in data["msg"] and len(data["msg"]) < 400, data.get("msg", "")[:400]


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_every_module_checks_its_arguments_through_wgmodule(name):
    """WgModule keeps keys and huge values out of Ansible's own argument errors; a module made another way does not."""
    from ansible_collections.wgfleet.wireguard.plugins.module_utils._module import WgModule

    assert issubclass(made_with(importlib.import_module(f"{modules_package.__name__}.{name}"))["cls"], WgModule)


def test_a_key_given_to_an_option_that_holds_none_is_not_echoed_back(config_dir):
    """Ansible returns the arguments as ``invocation`` (and logs them), hiding only no_log options: a private key
    pasted as a peer's label, or into a hook, would come back in the task's result. Public keys stay readable."""
    other = new_key()
    for module, args in ((wg_peer, {"interface": NAME, "public_key": PEER, "name": other}),
                         (wg_interface, {"name": NAME, "address": ["10.10.0.1/24"], "private_key": KEY, "up": False,
                                         "post_up": [f"echo PrivateKey={other}"]})):
        text, data = call(module, {**args, "config_dir": str(config_dir)})
        assert not data.get("failed"), data.get("msg")
        assert other not in text and "invocation" in data, module.__name__
    assert PEER in call(wg_peer, {"interface": NAME, "public_key": PEER, "config_dir": str(config_dir)})[0]
