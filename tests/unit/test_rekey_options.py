"""wg_rekey's options given careless values: refused before any connection, by a short message naming the option
and never echoing a key."""
from __future__ import annotations

import contextlib
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgfleet.wireguard.plugins.modules import wg_rekey

OLD = "MAbm+0LTuHL2v8mKU4qYGw1RnbmHfZI4Rj+hCNEl7FY="
NEW = "3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def call(args) -> tuple[dict, str]:
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        wg_rekey.main()
    text = out.getvalue()
    return json.loads(text[text.index("{"):]), text


def args(tmp_path, **extra) -> dict:
    # No database here: anything that got as far as connecting would fail with a connection error instead.
    return {"login_unix_socket": str(tmp_path / "no-database-here"), "server_id": "vpn-1",
            "previous_encryption_key": OLD, "encryption_key": NEW, **extra}


@pytest.mark.parametrize(("extra", "message"), [
    ({"encryption_key": OLD}, "previous_encryption_key: is the same key as encryption_key"),
    ({"encryption_key": OLD[:-4] + "\n" + OLD[-4:]}, "encryption_key: is not 32 bytes encoded in base64"),
    ({"previous_encryption_key": "x" * 1_000_000}, "previous_encryption_key: is not 32 bytes encoded in base64"),
    ({"server_id": ""}, "server_id: must not be empty"),
    ({"server_id": "vpn\r1"}, "server_id:"),
    ({"server_id": "vpn\x851"}, "server_id:"),
    ({"server_id": " vpn-1"}, "server_id:"),
    ({"previous_encryption_key": None, "previous_encryption_key_file": "/tmp/" + "k" * 1_000_000},
     "previous_encryption_key_file: "),
    ({"encryption_key": None, "encryption_key_file": "/nonexistent/wgfleet/key"}, "encryption_key_file: cannot read"),
])
def test_refused_naming_the_option(tmp_path, extra, message):
    result, text = call({k: v for k, v in args(tmp_path, **extra).items() if v is not None})
    assert result.get("failed"), result
    assert result["msg"].startswith(message), result["msg"][:300]
    assert len(result["msg"]) < 300
    assert OLD not in text and NEW not in text


def test_a_key_file_holding_something_else_is_named(tmp_path):
    path = tmp_path / "key"
    path.write_text("not a key\n")
    result, _text = call({k: v for k, v in args(tmp_path, encryption_key=None, encryption_key_file=str(path)).items()
                          if v is not None})
    assert result["msg"].startswith("encryption_key_file: ") and "does not hold 32 bytes" in result["msg"]


def test_both_keys_are_required(tmp_path):
    result, _text = call({k: v for k, v in args(tmp_path, previous_encryption_key=None).items() if v is not None})
    assert result.get("failed") and "previous_encryption_key" in result["msg"]
