# Private to the wgfleet.wireguard collection: not a public API.
"""What wg_backup captures from a host and how wg_restore puts a stored state back.

Capture reads the wg-quick files (every setting, key and peer label) and adds
the live peers the files do not know yet (added with ``wg set`` or by an API).
Restore checks every interface first (nothing is written if one is refused),
then writes each file atomically and, with ``apply``, brings the device in
line: up when it is down, a restart when a start-only setting differs, or live
``wg`` changes otherwise. Peers not in the snapshot are removed live.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from . import _device, _files, _peers
from ._errors import WgError, WgValueError
from ._interface import plan_device
from ._keys import public_key
from ._wgconf import IFNAME_RE, Interface, check_ifname, render


def discover(config_dir: str) -> list[str]:
    """Interfaces of this host: every ``NAME.conf`` in ``config_dir`` and every running WireGuard device."""
    names = set()
    try:
        entries = os.listdir(config_dir)
    except FileNotFoundError:
        entries = []
    except OSError as exc:
        raise WgError(f"config_dir: cannot list {config_dir}: {exc.strerror}") from None
    for entry in entries:
        if entry.endswith(".conf") and IFNAME_RE.match(entry[:-5]):
            names.add(entry[:-5])
    proc = _device.run(["wg", "show", "interfaces"], check=False)
    if proc.returncode == 0:
        # wireguard-go's sockets are machine-wide: a name counts only when its link is in this namespace.
        names.update(n for n in proc.stdout.split() if _device.link_exists(n))
    return sorted(names)


def merge_live(from_file: Interface | None, live: Interface | None, name: str) -> Interface:
    """The file's interface plus the live peers it lacks; a device without a file is taken as it runs."""
    if from_file is None:
        if live is None:
            raise WgValueError(f"interfaces: {name!r} has no configuration file and is not running")
        addresses, mtu = _device.addresses_and_mtu(name)
        return live.replace(address=addresses, mtu=mtu)
    if live is None:
        return from_file
    known = from_file.peer_map()
    # For peers in the file the file wins: a live endpoint moves with the client (roaming).
    extra = tuple(p for p in live.peers if p.public_key not in known)
    return from_file.replace(peers=from_file.peers + extra) if extra else from_file


def capture(config_dir: str, names: list[str] | None = None) -> tuple[dict[str, Interface], dict[str, int]]:
    """The state of this host's interfaces, and per interface how many peers were found only live."""
    chosen = [check_ifname("interfaces", n) for n in names] if names else discover(config_dir)
    state, live_only = {}, {}
    for name in chosen:
        path = _files.config_path(config_dir, name)
        with _files.locked(config_dir, name):
            from_file = _files.read_config(path)
            live = _device.read_dump(name)
        iface = merge_live(from_file, live, name)
        state[name] = iface
        live_only[name] = len(iface.peers) - (len(from_file.peers) if from_file else 0)
    return state, live_only


@dataclass
class RestorePlan:
    name: str
    path: str
    desired: Interface
    existing: Interface | None
    live: Interface | None
    file_changed: bool
    action: str = "none"  # none, up, restart, live
    upsert: list = field(default_factory=list)
    remove: list = field(default_factory=list)
    live_settings: bool = False

    @property
    def changed(self) -> bool:
        return self.file_changed or self.action != "none"

    def report(self) -> dict:
        return {
            "public_key": public_key(self.desired.private_key) if self.desired.private_key else None,
            "peers": len(self.desired.peers),
            "file": "unchanged" if not self.file_changed else ("created" if self.existing is None else "updated"),
            "applied": self.action,
            "peers_added_live": [p.public_key for p in self.upsert if self.live and p.public_key not in self.live.peer_map()],
            "peers_removed_live": list(self.remove),
        }

    def diff(self) -> dict:
        return {
            "before": render(self.existing, redact=True) if self.existing else "",
            "after": render(self.desired, redact=True),
            "before_header": self.path,
            "after_header": self.path,
        }


def plan_restore(state: dict[str, Interface], config_dir: str, apply: bool, force: bool) -> list[RestorePlan]:
    """Plan every interface, refusing before anything is written."""
    plans = []
    for name, desired in sorted(state.items()):
        path = _files.config_path(config_dir, name)
        try:
            existing = _files.read_config(path)
        except WgValueError:
            if not force:
                raise WgError(f"{path} exists but cannot be parsed; set force: true to overwrite it") from None
            existing = None
        live = _device.read_dump(name)
        current_key = (existing.private_key if existing else None) or (live.private_key if live else None)
        if current_key and desired.private_key and current_key != desired.private_key and not force:
            raise WgError(
                f"interface {name}: the host's interface has another private key (public key "
                f"{public_key(current_key)}) than the snapshot ({public_key(desired.private_key)}); "
                "set force: true to overwrite it"
            )
        plan = RestorePlan(name, path, desired, existing, live, file_changed=existing != desired)
        if apply:
            _plan_live(plan)
        plans.append(plan)
    return plans


def _plan_live(plan: RestorePlan) -> None:
    desired, live = plan.desired, plan.live
    plan.action = plan_device(plan.existing or Interface(), desired, live).action
    if plan.action not in ("none", "live"):
        return
    plan.live_settings = plan.action == "live"
    # The snapshot is the whole truth: peers it does not have go.
    plan.upsert, plan.remove = _peers.live_drift(list(desired.peers), live, True, set())
    if plan.live_settings or plan.upsert or plan.remove:
        plan.action = "live"


def apply_restore(plans: list[RestorePlan], implementation: str = "auto") -> None:
    """Carry out the plans; on a failure the files written are put back, and interfaces restarted come back."""
    done: list[RestorePlan] = []
    try:
        for plan in plans:
            if not plan.changed:
                continue
            config_dir = os.path.dirname(plan.path)
            _files.ensure_dir(config_dir)
            with _files.locked(config_dir, plan.name):
                if plan.action == "restart":
                    _device.down(plan.path, plan.name)  # with the old file, so its PreDown/PostDown run
                if plan.file_changed:
                    _files.write_config(plan.path, plan.desired)
                done.append(plan)
                if plan.action in ("up", "restart"):
                    _device.up(plan.path, implementation)
                elif plan.action == "live":
                    if plan.live_settings:
                        _device.set_interface(plan.name, plan.desired.private_key, plan.desired.listen_port,
                                              plan.desired.fwmark)
                    if plan.upsert or plan.remove:
                        _device.apply_peers(plan.name, plan.upsert, plan.remove, plan.live.peer_map())
                        _device.add_routes(plan.name, plan.desired, plan.upsert)
    except WgError:
        # Put the host back as far as files and interface starts go; live peer changes already
        # made to an earlier interface stay (they match the snapshot, which was the goal).
        for plan in reversed(done):
            if plan.action == "up" and _device.link_exists(plan.name):
                with contextlib.suppress(WgError):
                    _device.down(plan.path, plan.name)
            if plan.file_changed:
                if plan.existing is None:
                    _files.remove(plan.path)
                else:
                    _files.write_config(plan.path, plan.existing)
            if plan.action == "restart" and plan.existing is not None and not _device.link_exists(plan.name):
                with contextlib.suppress(WgError):
                    _device.up(plan.path, implementation)
        raise
