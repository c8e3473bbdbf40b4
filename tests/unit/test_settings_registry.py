"""The settings' registry: every setting the model declares is read, written, stored, proved and offered.

A new setting that lacks one of these (a sample here, a file key, a digest input, a module option) fails here
instead of silently not being kept somewhere.
"""
from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys, _store_codec
from ansible_collections.wgfleet.wireguard.plugins.module_utils._store_codec import _peer_digest_input, settings_text
from ansible_collections.wgfleet.wireguard.plugins.module_utils._wgconf import (
    INTERFACE_SETTINGS,
    PEER_SETTINGS,
    Interface,
    Peer,
    parse,
    render,
)

PEER_SAMPLES = {
    "public_key": _keys.public_key(_keys.generate_private_key()),
    "preshared_key": _keys.generate_private_key(),
    "allowed_ips": ("10.3.0.2/32", "fd03::2/128"),
    "endpoint": "198.51.100.7:51820",
    "persistent_keepalive": 25,
    "name": "laptop # of ann",
    "expires": "2031-01-01T00:00:00Z",
}
INTERFACE_SAMPLES = {
    "address": ("10.3.0.1/24", "fd03::1/64"),
    "listen_port": 51820,
    "fwmark": 0x51,
    "private_key": _keys.generate_private_key(),
    "dns": ("10.3.0.53", "example.internal"),
    "mtu": 1380,
    "table": "1234",
    "pre_up": ("true pre-up",),
    "post_up": ("true post-up one", "true post-up two"),
    "pre_down": ("true pre-down",),
    "post_down": ("true post-down",),
    "save_config": True,
}
# Another value of each setting, to see what notices a change.
PEER_OTHER = {"public_key": _keys.public_key(_keys.generate_private_key()), "preshared_key": None,
              "allowed_ips": ("10.3.0.3/32",), "endpoint": None, "persistent_keepalive": 0, "name": None,
              "expires": "2032-01-01T00:00:00Z"}
INTERFACE_OTHER = {"address": ("10.4.0.1/24",), "listen_port": 51821, "fwmark": None, "private_key": None,
                   "dns": (), "mtu": None, "table": "off", "pre_up": (), "post_up": (), "pre_down": (),
                   "post_down": (), "save_config": False}


def test_every_setting_has_a_sample_here():
    assert set(PEER_SAMPLES) == set(PEER_SETTINGS) == set(PEER_OTHER)
    assert set(INTERFACE_SAMPLES) == set(INTERFACE_SETTINGS) == set(INTERFACE_OTHER)


def full_interface() -> Interface:
    return Interface(**INTERFACE_SAMPLES, peers=(Peer(**PEER_SAMPLES),))


def test_every_setting_is_written_on_its_line_and_read_back():
    iface = full_interface()
    text = render(iface)
    lines = text.splitlines()
    for settings in (INTERFACE_SETTINGS, PEER_SETTINGS):
        for name, meta in settings.items():
            start = meta.comment or f"{meta.key} = "
            assert any(line.startswith(start) for line in lines), f"{name} has no line in the file"
    assert parse(text) == iface


@pytest.mark.skipif(shutil.which("wg-quick") is None, reason="wg-quick not installed")
def test_what_wg_is_given_is_what_wg_quick_strip_keeps(tmp_path):
    """The settings only wg-quick reads are the ones `wg-quick strip` takes out (it keeps comment lines, which wg
    ignores; wg_only leaves them out too)."""
    path = tmp_path / "wg9.conf"
    path.write_text(render(full_interface()))
    path.chmod(0o600)
    stripped = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, check=True).stdout
    kept = parse(stripped)
    kept = kept.replace(peers=tuple(p.replace(name=None, expires=None) for p in kept.peers))
    assert kept == parse(render(full_interface(), wg_only=True))


def test_every_stored_peer_setting_is_proved_by_the_row_digest():
    peer = Peer(**PEER_SAMPLES)
    before = _peer_digest_input("srv", "wg0", peer)
    stored = [n for n, s in PEER_SETTINGS.items() if s.stored]
    assert set(stored) == {"public_key", *_store_codec.PEER_VALUES, "preshared_key"}
    for name in stored:
        changed = peer.replace(**{name: PEER_OTHER[name]})
        assert _peer_digest_input("srv", "wg0", changed) != before, f"{name} is stored but not in the digest"


def test_a_setting_stored_after_format_2_leaves_old_digests_alone():
    """A peer without the later settings has format 2's input exactly: rows stored before the column existed
    prove the same."""
    peer = Peer(**{**PEER_SAMPLES, **{n: None for n in _store_codec.LATE_PEER}})
    late = _store_codec.LATE_PEER
    assert late and all(PEER_SETTINGS[n].stored > _store_codec.FORMAT_2_SCHEMA for n in late)
    assert all(PEER_SETTINGS[n].stored <= _store_codec.FORMAT_2_SCHEMA for n in _store_codec.DIGEST_V2)
    assert _peer_digest_input("srv", "wg0", peer) == "\n".join((
        "peer/2", "srv", "wg0", peer.public_key, ",".join(peer.allowed_ips), peer.endpoint,
        str(peer.persistent_keepalive), peer.name, peer.preshared_key)).encode()


def test_every_stored_interface_setting_is_in_its_settings_row():
    iface = full_interface()
    for name, meta in INTERFACE_SETTINGS.items():
        if meta.stored and not meta.secret:
            changed = iface.replace(**{name: INTERFACE_OTHER[name]})
            assert settings_text(changed) != settings_text(iface), f"{name} is stored but not in the settings row"


def test_module_options_are_the_registry_settings():
    """What wg_interface and wg_peer accept is what the model holds (with its type), and no secret without no_log."""
    from ansible_collections.wgfleet.wireguard.plugins.modules import wg_interface, wg_peer

    peer_spec = wg_peer.PEER_SPEC
    assert set(peer_spec) == {"public_key", "state", *(n for n, s in PEER_SETTINGS.items() if s.option)}
    assert set(wg_interface.SETTING_OPTIONS) == {n for n, s in INTERFACE_SETTINGS.items() if s.option}
    for spec, settings in ((peer_spec, PEER_SETTINGS), (wg_interface.SETTING_OPTIONS, INTERFACE_SETTINGS)):
        for name, meta in settings.items():
            if name in spec and meta.secret:
                assert spec[name].get("no_log") is True, f"{name} is a secret without no_log"
