# Private to the wgfleet.wireguard collection: not a public API.
"""The guard against wgrest's file dumps.

wgrest rewrites ``<config-dir>/<name>.conf`` from ``wg showconf`` (no Address, DNS,
MTU, Table or hooks). The collection never lets it near the wg-quick file: wgrest
gets its own config dir (``WGREST_DUMP_DIR``), which then holds its dumps of every
device, and each wg-quick file carries the ``PostUp`` hook of :func:`restore_hook`,
which puts back on the device the peers that exist only in wgrest's dump. After a
restore, :func:`prune_dump` drops from the dump the peers the snapshot does not
have. See docs/wgrest.md.
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex

from . import _files
from ._errors import WgValueError, shown
from ._wgconf import Interface, render

WGREST_DUMP_DIR = "/var/lib/wgrest/wireguard"


def check_dump_dir(dump_dir: str, wg_config_dir: str = "/etc/wireguard") -> str:
    """Refuse to point wgrest at the wg-quick directory: its dumps would strip Address, DNS, MTU and hooks."""
    if os.path.realpath(dump_dir) == os.path.realpath(wg_config_dir):
        raise WgValueError(
            f"wgrest config dir: {shown(dump_dir)} is the wg-quick directory; wgrest rewrites <name>.conf there from "
            f"'wg showconf' and would drop Address, DNS, MTU, Table and the hooks. Use its own directory "
            f"(default {WGREST_DUMP_DIR})"
        )
    return dump_dir


# awk over wgrest's dump: print each [Peer] section whose PublicKey the device does not have yet.
# No '#' anywhere: the wg-quick parser would cut the line there.
_RESTORE_AWK = (
    'function flush() { if (b != "" && !skip) printf "%s", b; b = ""; skip = 0 } '
    'BEGIN { n = split(live, l, "\\n"); for (i = 1; i <= n; i++) have[l[i]] = 1 } '
    '/^\\[/ { flush(); inpeer = ($0 == "[Peer]") } '
    'inpeer && $1 == "PublicKey" { skip = ($3 in have) } '
    "inpeer { b = b $0 \"\\n\" } "
    "END { flush() }"
)


def restore_hook(dump_dir: str = WGREST_DUMP_DIR) -> str:
    """The ``PostUp`` command that gives a freshly started interface back the peers wgrest added.

    wg-quick has just loaded the wg-quick file; this adds, from wgrest's last
    dump (``<dump_dir>/<name>.conf``), only the peers the device does not hold,
    so peers managed in the file keep the file's settings and the interface's
    own settings (key, port) never come from the dump. Without a dump it does
    nothing. It needs only bash, awk and wg, which wg-quick needs anyway.
    """
    dump = shlex.quote(os.path.join(dump_dir, "")) + "%i.conf"
    return (f"[ ! -r {dump} ] || awk -v live=\"$(wg show %i peers)\" {shlex.quote(_RESTORE_AWK)} {dump} "
            "| wg addconf %i /dev/stdin")


_HOOK_RE = re.compile(r"^\[ ! -r (.+?)%i\.conf \] \|\| awk ")


def dump_dirs(iface: Interface) -> list[str]:
    """The wgrest dump directories named by the :func:`restore_hook` lines of ``iface`` (exactly those)."""
    found = []
    for cmd in iface.post_up:
        match = _HOOK_RE.match(cmd)
        if not match:
            continue
        with contextlib.suppress(ValueError):
            words = shlex.split(match.group(1))
            if len(words) == 1 and restore_hook(words[0]) == cmd:
                found.append(words[0])
    return found


def prune_dump(iface: Interface, name: str) -> list[str]:
    """Drop from wgrest's dump of ``name`` the peers ``iface`` does not have; returns their keys.

    After a restore the snapshot is the truth: a peer left in the dump would come
    back at the next start through the restore hook. The device holds none of them
    by then, so wgrest's own next dump agrees.
    """
    keep = iface.peer_map()
    removed: list[str] = []
    for directory in dump_dirs(iface):
        path = os.path.join(directory, f"{name}.conf")
        dump = _files.read_config(path)
        if dump is None:
            continue
        gone = [p.public_key for p in dump.peers if p.public_key not in keep]
        if gone:
            _files.write_atomic(path, render(dump.replace(peers=tuple(p for p in dump.peers if p.public_key in keep)),
                                             wg_only=True))
            removed.extend(k for k in gone if k not in removed)
    return removed
