# Private to the wgfleet.wireguard collection: not a public API.
"""One interface's own settings: plan the change once, then carry it out.

The interface owns its [Interface] section; its peers are kept as they are
(wg_peer owns them). Settings that only wg-quick applies at start (addresses,
MTU, DNS, Table, hooks) restart that interface alone; the device's own
settings (private key, port, fwmark) change live.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from . import _device, _files
from ._errors import WgError
from ._keys import generate_private_key, public_key
from ._wgconf import HOOKS, Interface, check_ifname, render

# Settings wg-quick applies only when it brings the interface up.
RESTART_SETTINGS = ("address", "dns", "mtu", "table", *HOOKS)
LIVE_SETTINGS = ("private_key", "listen_port", "fwmark")
SETTINGS = (*LIVE_SETTINGS, *RESTART_SETTINGS, "save_config")


@dataclass
class InterfaceRequest:
    """What the user asked for. A setting left as None keeps the value the file has."""

    name: str
    state: str = "present"
    config_dir: str = "/etc/wireguard"
    up: bool = True
    implementation: str = "auto"
    backup: bool = False
    settings: dict = field(default_factory=dict)

    def __post_init__(self):
        check_ifname("name", self.name)
        if self.implementation not in _device.IMPLEMENTATIONS:
            raise WgError(f"implementation: {self.implementation!r} is not one of {', '.join(_device.IMPLEMENTATIONS)}")


def _same(setting: str, a, b) -> bool:
    # Addresses compare as sets: the order in the file is kept, but reordering is no change.
    if setting == "address":
        return sorted(a) == sorted(b)
    return a == b


@dataclass
class DevicePlan:
    action: str  # none, up, down, restart or live
    drift: list = field(default_factory=list)  # live settings that differed from the file as it was


def plan_device(name: str, before: Interface, desired: Interface, live: Interface | None, up: bool = True) -> DevicePlan:
    """How the running device gets from its state to ``desired`` (the file ``before`` had the old settings).

    Shared by wg_interface and wg_restore, so that both restart for the same reasons.
    """
    if live is None:
        return DevicePlan("up" if up else "none")
    if not up:
        return DevicePlan("down")
    addresses, mtu = _device.addresses_and_mtu(name)

    def differs(setting, wanted) -> bool:
        if setting == "address":
            return not _same("address", addresses, wanted)
        if setting == "mtu":
            return wanted is not None and mtu != wanted
        if setting == "listen_port":
            # No ListenPort in the file means any port: the one the device picked is no drift.
            return wanted is not None and live.listen_port != wanted
        return getattr(live, setting) != wanted

    checked = ("address", "mtu", *LIVE_SETTINGS)
    drift = [s for s in checked if differs(s, getattr(before, s))]
    if (any(not _same(s, getattr(before, s), getattr(desired, s)) for s in RESTART_SETTINGS)
            or differs("address", desired.address) or differs("mtu", desired.mtu)):
        return DevicePlan("restart", drift)
    if any(differs(s, getattr(desired, s)) for s in LIVE_SETTINGS):
        return DevicePlan("live", drift)
    return DevicePlan("none", drift)


def ensure(req: InterfaceRequest, check_mode: bool) -> dict:
    path = _files.config_path(req.config_dir, req.name)
    with _files.locked(req.config_dir, req.name):
        existing = _files.read_config(path)
        live = _device.read_dump(req.name)
        if req.state == "absent":
            return _absent(req, path, existing, live, check_mode)
        return _present(req, path, existing, live, check_mode)


def _absent(req, path, existing, live, check_mode) -> dict:
    result = {"changed": existing is not None or live is not None, "name": req.name, "applied": "none",
              "public_key": None, "changes": [],
              "diff": {"before": render(existing, redact=True) if existing else "", "after": "",
                       "before_header": path, "after_header": path}}
    if check_mode or not result["changed"]:
        return result
    if live is not None:
        _device.down(path, req.name)
        result["applied"] = "down"
    backup_file = _files.remove(path, backup=req.backup)
    if backup_file:
        result["backup_file"] = backup_file
    return result


def _present(req, path, existing, live, check_mode) -> dict:
    base = existing or Interface()
    given = {k: v for k, v in req.settings.items() if v is not None}
    key_source = "given" if given.get("private_key") else None
    if not key_source:
        if base.private_key:
            key_source = "file"
        elif live is not None and live.private_key:
            given["private_key"], key_source = live.private_key, "device"
        else:
            key_source = "generated"
            # A key is made only when it will be written: check mode reports it and makes none.
            if not check_mode:
                given["private_key"] = generate_private_key()
    desired = base.replace(**given)
    changes = [s for s in SETTINGS if not _same(s, getattr(base, s), getattr(desired, s))]
    if existing is None:
        changes = sorted(set(changes) | {"file"}, key=lambda s: (s != "file", s))
    if key_source == "generated":
        changes = sorted(set(changes) | {"private_key"})

    device = plan_device(req.name, base, desired, live, req.up)
    action, drift = device.action, device.drift
    live_only = []
    if action == "restart":
        known = {p.public_key for p in base.peers}
        live_only = [p for p in live.peers if p.public_key not in known]
    if live_only:
        # A restart reloads peers from the file: keep the ones that exist only live.
        desired = desired.replace(peers=base.peers + tuple(live_only))

    file_changed = existing is None or desired != existing
    result = {
        "changed": file_changed or action != "none",
        "name": req.name,
        "public_key": public_key(desired.private_key) if desired.private_key else None,
        "private_key_source": key_source,
        "changes": changes,
        "drift": sorted(set(drift)),
        "applied": action,
        "preserved_peers": [p.public_key for p in live_only],
        "diff": {"before": render(existing, redact=True) if existing else "",
                 "after": render(desired, redact=True), "before_header": path, "after_header": path},
    }
    if check_mode or not result["changed"]:
        return result

    if action in ("down", "restart"):
        _device.down(path, req.name)
    if file_changed:
        backup_file = _files.write_config(path, desired, backup=req.backup)
        if backup_file:
            result["backup_file"] = backup_file
    try:
        if action in ("up", "restart"):
            _device.up(path, req.implementation)
        elif action == "live":
            _device.set_interface(req.name, desired.private_key, desired.listen_port, desired.fwmark)
    except WgError:
        # Leave the host as it was: the old file back, the old interface up again.
        if file_changed:
            if existing is None:
                _files.remove(path)
            else:
                _files.write_config(path, existing)
        if action == "restart" and existing is not None:
            with contextlib.suppress(WgError):
                _device.up(path, req.implementation)
        raise
    if action in ("up", "restart"):
        result["implementation"] = _device.running_implementation(req.name)
    return result
