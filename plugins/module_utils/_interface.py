# Private to the wgfleet.wireguard collection: not a public API.
"""One interface's own settings: plan the change once, then carry it out, or put everything back.

The interface owns its [Interface] section; its peers are kept as they are
(wg_peer owns them). Settings that only wg-quick applies at start (addresses,
MTU, DNS, Table, hooks) restart that interface alone; the device's own
settings (private key, port, fwmark) change live. The plan answers everything
the module reports (``changed``, the list of changes, the diff) from one
comparison, and a failed apply leaves the file (byte for byte) and the device
as they were.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from . import _device, _files
from ._difference import DifferenceTracker, same_value
from ._errors import PutBack, WgError, WgValueError, shown
from ._keys import generate_private_key, public_key
from ._values import check_ifname, check_path
from ._wgconf import INTERFACE_SETTINGS, Interface, parse, render

SETTINGS = tuple(INTERFACE_SETTINGS)
# Settings wg-quick applies only when it brings the interface up: a change restarts the interface.
RESTART_SETTINGS = tuple(n for n, s in INTERFACE_SETTINGS.items() if s.wg_quick == "up")
# Settings wg applies to the running device.
LIVE_SETTINGS = tuple(n for n, s in INTERFACE_SETTINGS.items() if s.wg_quick is None)
# Settings wg-quick applies that the running device shows (through ip): what differs there is drift too.
IP_SETTINGS = tuple(n for n, s in INTERFACE_SETTINGS.items() if s.ip)


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
    # wgrest's dump directory: when set, the PostUp hook that gives a started interface back its API peers.
    api_peers_dir: str | None = None

    def __post_init__(self):
        check_ifname("name", self.name)
        if self.state not in ("present", "absent"):
            raise WgValueError(f"state: {shown(self.state)} is not present or absent")
        if self.implementation not in _device.IMPLEMENTATIONS:
            raise WgValueError(f"implementation: {shown(self.implementation)} is not one of "
                               f"{', '.join(_device.IMPLEMENTATIONS)}")
        check_path("config_dir", self.config_dir)
        unknown = set(self.settings) - set(SETTINGS)
        if unknown:
            raise WgValueError(f"{sorted(unknown)[0]}: not an interface setting")
        if self.api_peers_dir is not None:
            from ._wgrest_dump import check_dump_dir

            # The directory ends up inside a PostUp line: one line, no '#'.
            check_path("api_peers_dir", self.api_peers_dir, comment_ok=False)
            check_dump_dir(self.api_peers_dir, self.config_dir)

    def hook(self) -> str | None:
        if self.api_peers_dir is None:
            return None
        from ._wgrest_dump import restore_hook

        return restore_hook(self.api_peers_dir)


@dataclass
class DevicePlan:
    action: str  # none, up, down, restart or live
    drift: list = field(default_factory=list)  # live settings that differed from the file as it was


def plan_device(before: Interface, desired: Interface, live: Interface | None, up: bool = True) -> DevicePlan:
    """How the running device gets from its state to ``desired`` (the file ``before`` had the old settings).

    Pure: ``live`` is the device as ``_device.read_dump`` reads it, its addresses
    and MTU included. Shared by wg_interface and wg_restore, so that both
    restart for the same reasons.
    """
    if live is None:
        return DevicePlan("up" if up else "none")
    if not up:
        return DevicePlan("down")

    def differs(setting, wanted) -> bool:
        if wanted is None and INTERFACE_SETTINGS[setting].device_picks:
            return False
        return not same_value(setting, getattr(live, setting), wanted)

    checked = (*IP_SETTINGS, *LIVE_SETTINGS)
    drift = [s for s in checked if differs(s, getattr(before, s))]
    if (any(not same_value(s, getattr(before, s), getattr(desired, s)) for s in RESTART_SETTINGS)
            or any(differs(s, getattr(desired, s)) for s in IP_SETTINGS)):
        return DevicePlan("restart", drift)
    if any(differs(s, getattr(desired, s)) for s in LIVE_SETTINGS):
        return DevicePlan("live", drift)
    return DevicePlan("none", drift)


@dataclass
class InterfacePlan:
    """Everything a run of wg_interface would do; ``changed``, ``report()`` and ``diff()`` derive from it."""

    name: str
    path: str
    state: str
    existing: Interface | None
    desired: Interface | None  # None: the file goes (state absent)
    live: Interface | None
    differences: DifferenceTracker
    device: DevicePlan
    key_source: str | None = None
    live_only: list = field(default_factory=list)
    routes_for: list = field(default_factory=list)  # live peers of the file without the routes wg-quick gives them
    live_settings: bool = True  # a live action changes the device's own settings (not only routes)

    @property
    def write_file(self) -> bool:
        return self.desired is not None and any(n != "mode" for n in self.differences.names())

    @property
    def fix_mode(self) -> bool:
        return "mode" in self.differences and not self.write_file

    @property
    def remove_file(self) -> bool:
        return self.desired is None and self.existing is not None

    @property
    def changed(self) -> bool:
        return self.differences.changed or self.device.action != "none"

    def report(self) -> dict:
        result = {
            "changed": self.changed,
            "name": self.name,
            "changes": [n for n in self.differences.names() if n != "removed"],
            "applied": self.device.action,
        }
        if self.state == "absent":
            result["public_key"] = None
            return result
        key = self.desired.private_key
        result.update(
            public_key=public_key(key) if key else None,
            private_key_source=self.key_source,
            drift=sorted(set(self.device.drift)),
            preserved_peers=[p.public_key for p in self.live_only],
        )
        return result

    def diff(self) -> dict:
        return {"before": render(self.existing, redact=True) if self.existing else "",
                "after": render(self.desired, redact=True) if self.desired else "",
                "before_header": self.path, "after_header": self.path}


def ensure(req: InterfaceRequest, check_mode: bool) -> dict:
    path = _files.config_path(req.config_dir, req.name)
    with _files.locked(req.config_dir, req.name):
        original = _files.read_raw(path)
        existing = None if original is None else parse(original, source=path)
        live = _device.read_dump(req.name)
        routes = _device.read_routes(req.name, existing) if live is not None and existing is not None else None
        plan = plan_interface(req, path, existing, live, _files.loose_mode(path), check_mode, routes)
        result = {**plan.report(), "diff": plan.diff()}
        if check_mode or not plan.changed:
            return result
        result.update(apply(plan, req, original))
        return result


def plan_interface(req: InterfaceRequest, path: str, existing: Interface | None, live: Interface | None,
                   loose_mode: int | None, check_mode: bool, routes: _device.Routes | None = None) -> InterfacePlan:
    """The plan of one run. Makes a private key only when one will be written (never in check mode).

    ``routes``: the running interface's, in its file's table (None: not running, or Table = off). A
    start cut short (a run killed during ``wg-quick up``) leaves peers without the routes wg-quick gives
    them: that is drift (``routes``), repaired live.
    """
    diff = DifferenceTracker()
    if req.state == "absent":
        if existing is not None:
            diff.add("removed")
        return InterfacePlan(req.name, path, "absent", existing, None, live, diff,
                             DevicePlan("down" if live is not None else "none"))

    base = existing or Interface()
    if existing is None:
        diff.add("file")
    elif loose_mode is not None:
        # The file holds the private key: group or others must not read it (wg-quick warns, we fix it).
        diff.add("mode", oct(loose_mode), oct(_files.PRIVATE))
    given = {k: v for k, v in req.settings.items() if v is not None}
    hook = req.hook()
    if hook is not None:
        post_up = tuple(given.get("post_up", base.post_up))
        if hook not in post_up:
            given["post_up"] = (*post_up, hook)
    # Normalize what was given through the model, then keep the file's value wherever it means the same.
    wanted = base.replace(**given)
    kept = {s: diff.compare(s, getattr(base, s), getattr(wanted, s)) for s in SETTINGS if s != "private_key"}

    key_source = "given" if given.get("private_key") else None
    private_key = diff.compare("private_key", base.private_key, wanted.private_key)
    if not key_source:
        if base.private_key:
            key_source = "file"
        elif live is not None and live.private_key:
            private_key, key_source = live.private_key, "device"
            diff.add("private_key")
        else:
            key_source = "generated"
            diff.add("private_key")
            # A key is made only when it will be written: check mode reports it and makes none.
            private_key = None if check_mode else generate_private_key()
    desired = base.replace(private_key=private_key, **kept)

    device = plan_device(base, desired, live, req.up)
    live_only = []
    if device.action == "restart":
        known = {p.public_key for p in base.peers}
        live_only = [p for p in live.peers if p.public_key not in known]
    if live_only:
        # A restart reloads peers from the file: keep the ones that exist only live.
        desired = desired.replace(peers=base.peers + tuple(live_only))
        diff.add("peers")
    routes_for, live_settings = [], device.action == "live"
    if routes is not None and live is not None and device.action in ("none", "live"):
        in_file = {p.public_key for p in base.peers}
        routes_for = [p for p in live.peers if p.public_key in in_file
                      and not all(routes.covers(cidr) for cidr in _device.routed_ips(p))]
        if routes_for:
            device.drift.append("routes")
            device.action = "live"
    return InterfacePlan(req.name, path, "present", existing, desired, live, diff, device, key_source, live_only,
                         routes_for, live_settings)


def apply(plan: InterfacePlan, req: InterfaceRequest, original: str | None) -> dict:
    """Carry out ``plan``. On any failure the file (byte for byte) and the device are put back, then the error raised.

    The new file is written first, beside the old one (:func:`_files.stage`): a full disk or a read-only
    directory fails the run there, before the interface is touched. Only then does a restart begin
    (``wg-quick down`` with the old file, the new one renamed into place, ``wg-quick up``).
    """
    action, name, path = plan.device.action, plan.name, plan.path
    out: dict = {}
    done: set = set()
    staged = None
    try:
        if plan.write_file:
            staged = _files.stage(path, render(plan.desired))
            if req.backup:
                backup = _files.backup_copy(path)
                if backup:
                    out["backup_file"] = backup
        if action in ("down", "restart"):
            done.add("down")
            _device.down(path, name)  # with the old file, so that its PreDown/PostDown hooks run
        if staged is not None:
            done.add("file")
            staged.commit()
            staged = None
        elif plan.remove_file:
            done.add("file")
            backup = _files.remove(path, backup=req.backup)
            if backup:
                out["backup_file"] = backup
        elif plan.fix_mode:
            _files.make_private(path)
        if action in ("up", "restart"):
            done.add("up")
            _device.up(path, req.implementation, public_key(plan.desired.private_key))
            out["implementation"] = _device.running_implementation(name)
        elif action == "live":
            done.add("live")
            if plan.live_settings:
                _device.set_interface(name, plan.desired.private_key, plan.desired.listen_port, plan.desired.fwmark)
            if plan.routes_for:
                _device.add_routes(name, plan.desired, plan.routes_for)  # takes its own back if it fails
    except BaseException as exc:
        if staged is not None:
            staged.discard()
        failed = _put_back(plan, req, original, out.pop("backup_file", None), done)
        if not isinstance(exc, WgError):
            raise
        if failed:
            raise WgError(f"{exc} (putting the host back failed too: {'; '.join(failed)})") from None
        raise WgError(f"{exc} (the file and the interface were put back as they were)") from None
    return out


def _put_back(plan: InterfacePlan, req: InterfaceRequest, original: str | None, backup: str | None,
              done: set) -> list[str]:
    """Each step on its own, whatever the others do: the file as it was, then the interface as it ran.
    Returns what could not be put back."""
    name, path = plan.name, plan.path
    attempt = PutBack()
    if "up" in done and _device.link_exists(name):
        # Started, but it failed its check: take it down with the new file, whose PostUp ran.
        attempt(f"stopping {name}", _device.down, path, name)
    if "file" in done:
        attempt(f"the file {path}", _files.put_back, path, original)
    if backup:
        with contextlib.suppress(OSError):
            os.unlink(backup)
    if "live" in done and plan.live is not None and plan.live_settings:
        attempt(f"the settings of {name}", _device.set_interface,
                name, plan.live.private_key, plan.live.listen_port, plan.live.fwmark)
    if "down" in done and plan.existing is not None and not _device.link_exists(name):
        attempt(f"starting {name} again", _device.up, path, req.implementation,
                public_key(plan.existing.private_key) if plan.existing.private_key else None)
    return attempt.failed
