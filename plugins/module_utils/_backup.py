# Private to the wgfleet.wireguard collection: not a public API.
"""A server's state captured from a host (wg_backup and wgrest-sync), and put back by wg_restore.

Capture: one rule, :func:`capture_interface`, for both readers of a live
device (``wg show dump`` for wg_backup, the wgrest API for wgrest-sync), so the
two never disagree and never rewrite each other's rows:

- the interface's settings (addresses, DNS, MTU, table, hooks, port, fwmark,
  private key) come from its wg-quick file; the device fills in only what the
  file lacks (a key set by a hook), and describes an interface that has no file;
- the peer set and each peer's allowed IPs, preshared key and keepalive come from
  the device while it runs (peers added through an API count; a peer revoked live
  does not, even if a stale file still lists it); from the file while it is down;
- labels, expiries and endpoints come from the file only. An endpoint the device learned
  from a client's packets is runtime state (it moves with the client's NAT), so
  it never makes a change and is never restored.

Restore: :func:`observe` reads what the host has, :func:`plan_restore` decides
(no I/O of its own apart from the device plan), :func:`apply_restore` carries it
out and puts everything back as it was on a failure.
"""
from __future__ import annotations

import contextlib
import operator
import os
from dataclasses import dataclass, field, fields

from . import _device, _files, _peers
from ._errors import PutBack, WgError, WgValueError
from ._interface import plan_device
from ._keys import public_key
from ._values import check_ifname, check_path, is_ifname
from ._wgconf import PEER_SETTINGS, Interface, parse, render
from ._wgrest_dump import prune_dump

# --- capture ---------------------------------------------------------------------------------------------


def check_config_dir(option: str, value) -> str:
    """The wg-quick directory: a non-empty path on one line (no NUL, line break or other control character)."""
    return check_path(option, value)


def is_interface_name(name: str) -> bool:
    """A name a capture may take from a directory listing or a device list: wg-quick's rule (``is_ifname``),
    less dot-names, which in a config directory are the collection's own lock and temporary files."""
    return is_ifname(name) and not name.startswith(".")


class DeviceSource:
    """The running devices of this host, read with ``wg show`` (wg_backup's live source)."""

    def names(self) -> list[str]:
        proc = _device.run(["wg", "show", "interfaces"], check=False)
        if proc.returncode != 0:
            return []
        # wireguard-go's sockets are machine-wide: a name counts only when its link is in this namespace.
        return [n for n in proc.stdout.split() if is_interface_name(n) and _device.link_exists(n)]

    def read(self, name: str) -> Interface | None:
        return _device.read_dump(name)  # with the link's addresses and MTU


def capture_interface(name: str, from_file: Interface | None, live: Interface | None) -> Interface:
    """The state of one interface by the capture rule (see the module's docstring). Pure.

    An interface without a file is taken as it runs: ``live`` then carries the link's
    addresses and MTU when its source can see them (``wg show`` can, wgrest cannot).
    """
    if live is None:
        if from_file is None:
            raise WgValueError(f"interfaces: {name!r} has no configuration file and is not running")
        return from_file
    if from_file is None:
        return live.replace(peers=tuple(_unlearned(p) for p in live.peers))
    configured = from_file.peer_map()
    live_peers = live.peer_map()
    # File order first, then the peers only the device has, by key: a stable order rewrites no row.
    peers = [_as_configured(live_peers[k], p) for k, p in configured.items() if k in live_peers]
    peers += [_unlearned(live_peers[k]) for k in sorted(live_peers) if k not in configured]
    private_key = from_file.private_key or live.private_key
    return from_file.replace(private_key=private_key, peers=tuple(peers))


def _unlearned(peer):
    """A device's peer without the endpoint it learned (a new object only when there is one to drop)."""
    return peer if peer.endpoint is None else peer.replace(endpoint=None)


# What a running peer takes from its file: what the device does not show (label, expiry) and the endpoint (the
# device's is learned from traffic).
_FROM_FILE = ("endpoint", *(name for name, s in PEER_SETTINGS.items() if s.dump is None))
_file_part = operator.attrgetter(*_FROM_FILE)


def _as_configured(live, configured):
    """A device's peer with the file's endpoint, label and expiry."""
    wanted = _file_part(configured)
    if _file_part(live) == wanted:
        return live
    return live.replace(**dict(zip(_FROM_FILE, wanted)))


def host_interfaces(config_dir: str, source, only=()) -> list[str]:
    """The host's interfaces, sorted: every ``NAME.conf`` in ``config_dir`` and every device ``source`` runs
    (limited to ``only`` when given)."""
    try:
        entries = os.listdir(config_dir)
    except FileNotFoundError:
        entries = []
    except OSError as exc:
        raise WgError(f"config_dir: cannot list {config_dir}: {exc.strerror}") from None
    found = {e[:-5] for e in entries if e.endswith(".conf") and is_interface_name(e[:-5])}
    found.update(source.names())
    return sorted(found & set(only) if only else found)


def capture(config_dir: str, source, names: list[str] | None = None, only: tuple = (),
            lock: bool = True) -> tuple[dict[str, Interface], dict[str, int]]:
    """The state of this host's interfaces, and per interface how many of its peers only the device has.

    ``source`` reads the live devices (:class:`DeviceSource`, or the wgrest API's).
    ``names``: exactly these interfaces (each must exist); else every wg-quick file
    and every running device, limited to ``only`` when given. Any failure raises, so
    that a read which failed half-way is never stored as peers that went away.
    ``lock`` takes each interface's file lock (not for a reader of a read-only mount).
    """
    check_config_dir("config_dir", config_dir)
    chosen = [check_ifname("interfaces", n) for n in names] if names else host_interfaces(config_dir, source, only)
    state, live_only = {}, {}
    for name in chosen:
        path = _files.config_path(config_dir, name)
        with _files.locked(config_dir, name) if lock else contextlib.nullcontext():
            from_file = _files.read_config(path)
            live = source.read(name)
        iface = capture_interface(name, from_file, live)
        state[name] = iface
        known = from_file.peer_map() if from_file else {}
        live_only[name] = sum(1 for p in iface.peers if p.public_key not in known)
    return state, live_only


# --- restore ---------------------------------------------------------------------------------------------


@dataclass
class HostInterface:
    """What the host has for one interface, as read before a restore."""

    name: str
    path: str
    existing: Interface | None = None
    original: bytes | None = field(default=None, repr=False)  # the file's bytes (None: no file)
    unreadable: str | None = None  # why the file could not be parsed
    live: Interface | None = None
    loose_mode: bool = False  # group or others may read or write the file (it holds the private key)
    routes: _device.Routes | None = field(default=None, repr=False)  # of a running device, in its file's table


def observe(config_dir: str, names) -> dict[str, HostInterface]:
    """Read each interface's file (its bytes kept, to put back) and running device."""
    check_config_dir("config_dir", config_dir)
    out = {}
    for name in names:
        path = _files.config_path(config_dir, name)
        host = HostInterface(name, path)
        try:
            with open(path, "rb") as handle:
                host.original = handle.read()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WgError(f"cannot read {path}: {exc.strerror}") from None
        if host.original is not None:
            host.loose_mode = _files.loose_mode(path) is not None
            try:
                host.existing = parse(host.original.decode("utf-8"), source=path)
            except (WgValueError, UnicodeDecodeError) as exc:
                host.unreadable = str(exc) if isinstance(exc, WgValueError) else "not UTF-8 text"
        host.live = _device.read_dump(name)
        if host.live is not None:
            host.routes = _device.read_routes(name, host.existing or Interface())
        out[name] = host
    return out


@dataclass
class RestorePlan:
    name: str
    path: str
    desired: Interface
    existing: Interface | None
    live: Interface | None
    file_changed: bool
    original: bytes | None = field(default=None, repr=False)
    action: str = "none"  # none, up, restart, live
    upsert: list = field(default_factory=list)
    remove: list = field(default_factory=list)
    live_settings: bool = False
    routes: _device.Routes | None = field(default=None, repr=False)  # the running device's, as observed
    apply: bool = False  # how it was planned, to plan again under the lock
    force: bool = False

    @property
    def changed(self) -> bool:
        return self.file_changed or self.action != "none"

    def report(self) -> dict:
        return {
            "public_key": public_key(self.desired.private_key) if self.desired.private_key else None,
            "peers": len(self.desired.peers),
            "file": ("created" if self.original is None else "updated") if self.file_changed else "unchanged",
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


def plan_restore(state: dict[str, Interface], observed: dict[str, HostInterface], apply: bool,
                 force: bool) -> list[RestorePlan]:
    """Plan every interface from what was observed, refusing before anything is written."""
    plans = []
    for name, desired in sorted(state.items()):
        host = observed[name]
        if host.unreadable and not force:
            raise WgError(f"{host.path} exists but cannot be parsed ({host.unreadable}); "
                          "set force: true to overwrite it (it is put back if the restore fails)")
        existing, live = host.existing, host.live
        current_key = (existing.private_key if existing else None) or (live.private_key if live else None)
        if current_key and desired.private_key and current_key != desired.private_key and not force:
            raise WgError(
                f"interface {name}: the host's interface has another private key (public key "
                f"{public_key(current_key)}) than the snapshot ({public_key(desired.private_key)}); "
                "set force: true to overwrite it"
            )
        # A file others may read is rewritten too (0600), as wg_interface and wg_peer make it.
        plan = RestorePlan(name, host.path, desired, existing, live,
                           file_changed=existing != desired or host.loose_mode, original=host.original,
                           routes=host.routes, apply=apply, force=force)
        if apply:
            _plan_live(plan)
            if plan.action == "restart" and host.unreadable:
                # wg-quick down would read that file (a huge one keeps bash busy for many minutes) and run
                # whatever hooks it holds: a file that cannot be parsed is never handed to wg-quick.
                raise WgError(f"{host.path} cannot be parsed ({host.unreadable}), and {name} is running: the "
                              f"restore would have to take it down with wg-quick and that file; take {name} down "
                              f"(ip link delete dev {name}) or fix the file, then run the restore again")
        plans.append(plan)
    return plans


def _plan_live(plan: RestorePlan) -> None:
    desired, live = plan.desired, plan.live
    plan.action = plan_device(plan.existing or Interface(), desired, live).action
    if plan.action not in ("none", "live"):
        return
    plan.live_settings = plan.action == "live"
    # The snapshot is the whole truth: peers it does not have go.
    plan.upsert, plan.remove = _peers.live_drift(list(desired.peers), live, True, set(), routes=plan.routes)
    if plan.live_settings or plan.upsert or plan.remove:
        plan.action = "live"


@dataclass
class _Done:
    """What apply_restore did to one interface, to undo it."""

    plan: RestorePlan
    stopped: bool = False
    written: bool = False
    started: bool = False
    live: _device.LiveChange | None = None  # peer changes made to a running device


def _remove_stray_peers(plan: RestorePlan) -> None:
    """After a start: peers the device holds that the snapshot has not (a PostUp hook may add them) go,
    with their routes."""
    live = _device.read_dump(plan.name)
    if live is None:
        return
    keep = {p.public_key for p in plan.desired.peers}
    strays = [k for k in live.peer_map() if k not in keep]
    if strays:
        _device.change_peers(plan.name, plan.desired, [], strays, live)
        plan.remove.extend(strays)


def _plan_again(plan: RestorePlan) -> None:
    """``plan`` made again from what the host has now; the caller holds the file's lock. Another run (a second
    restore, wg_peer) may have changed the file or the device since the plan was made: the plan, and so what
    the module reports, is what this run does."""
    observed = observe(os.path.dirname(plan.path), [plan.name])
    (fresh,) = plan_restore({plan.name: plan.desired}, observed, plan.apply, plan.force)
    for item in fields(fresh):
        setattr(plan, item.name, getattr(fresh, item.name))


def apply_restore(plans: list[RestorePlan], implementation: str = "auto") -> None:
    """Carry out the plans; on any failure the files written are put back, and interfaces restarted come back.

    Each new file is written first, beside the old one: a full disk or a read-only directory fails the
    restore before its interface is taken down.
    """
    done: list[_Done] = []
    try:
        for plan in plans:
            if not plan.changed:
                continue
            config_dir = os.path.dirname(plan.path)
            _files.ensure_dir(config_dir)
            with _files.locked(config_dir, plan.name):
                _plan_again(plan)
                if not plan.changed:
                    continue  # another run did it while this one waited for the lock
                step = _Done(plan)
                done.append(step)
                staged = _files.stage(plan.path, render(plan.desired)) if plan.file_changed else None
                try:
                    if plan.action == "restart":
                        step.stopped = True
                        _device.down(plan.path, plan.name)  # with the old file, so its PreDown/PostDown run
                    if staged is not None:
                        step.written = True
                        staged.commit()
                finally:
                    if staged is not None:
                        staged.discard()  # nothing left to drop once it was committed
                if plan.action in ("up", "restart"):
                    step.started = True
                    _device.up(plan.path, implementation)
                    _remove_stray_peers(plan)
                elif plan.action == "live":
                    if plan.live_settings:
                        _device.set_interface(plan.name, plan.desired.private_key, plan.desired.listen_port,
                                              plan.desired.fwmark)
                    if plan.upsert or plan.remove:
                        # Revoked peers leave with their routes; a failure takes the change back.
                        step.live = _device.LiveChange(plan.name, before={})
                        _device.change_peers(plan.name, plan.desired, plan.upsert, plan.remove, plan.live, step.live)
                if plan.action != "none":
                    # wgrest's last dump must not give a restart the peers the snapshot does not have.
                    plan.remove.extend(k for k in prune_dump(plan.desired, plan.name) if k not in plan.remove)
    except BaseException as exc:
        failed = _put_back(done, implementation)
        if isinstance(exc, WgError) and failed:
            raise WgError(f"{exc} (putting the host back failed too: {'; '.join(failed)})") from None
        raise


def _put_back(done: list[_Done], implementation: str) -> list[str]:
    """The host as it was: files, interface starts and live peer changes, latest first, each step on its own
    whatever the others do. Returns what could not be put back."""
    attempt = PutBack()
    for step in reversed(done):
        plan = step.plan
        if step.live is not None:
            attempt(f"the peers of {plan.name}", _device.undo, step.live)
        if step.started and _device.link_exists(plan.name):
            attempt(f"stopping {plan.name}", _device.down, plan.path, plan.name)
        if step.written:
            attempt(f"the file {plan.path}", _files.put_back, plan.path, plan.original)
        if step.stopped and plan.existing is not None and not _device.link_exists(plan.name):
            # Only a file that can be parsed goes to wg-quick.
            attempt(f"starting {plan.name} again", _device.up, plan.path, implementation)
    return attempt.failed
