#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_restore
short_description: Rebuild a server's WireGuard interfaces from a snapshot in PostgreSQL
description:
  - Reads a snapshot stored by M(wgfleet.wireguard.wg_backup) (the latest, or one chosen by id or by time), decrypts
    and checks every row, and only then writes the wg-quick files (atomically, mode 0600).
  - With O(apply=true) the interfaces are brought up, or brought in line while running (live peer changes; a restart
    only when a start-time setting such as an address or MTU differs). Peers not in the snapshot are removed.
  - With O(encryption_key) (or O(encryption_key_file)), only a snapshot encrypted and sealed with that key is
    restored. A snapshot written or altered by anyone without the key (a plain-text one, a row added, removed or
    reopened) is refused before anything is written. A plain-text snapshot is restored only when no key is given.
  - Refuses to overwrite an interface whose private key differs from the snapshot's unless O(force=true).
  - The snapshot may come from another server (O(server_id) names the source), to rebuild a server on a new host.
version_added: 0.1.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.database
  - wgfleet.wireguard.database.keys
options:
  server_id:
    description: Server whose state to restore. Defaults to this host's fully qualified domain name.
    type: str
  snapshot:
    description:
      - The snapshot to restore. Default is the latest.
      - A number (ASCII digits) is a snapshot id (as returned by M(wgfleet.wireguard.wg_backup)); anything else
        is an ISO 8601 time, meaning the state as of that time (the latest snapshot taken at or before it). A time
        without a UTC offset is UTC.
    type: str
  config_dir:
    description: Directory of the wg-quick configuration files to write.
    type: path
    default: /etc/wireguard
  interfaces:
    description: Interfaces to restore. By default (or with an empty list) every interface in the snapshot.
    type: list
    elements: str
  apply:
    description: Bring the restored interfaces up, or in line with the snapshot when they are running.
    type: bool
    default: false
  force:
    description: Overwrite an existing interface whose private key differs from the snapshot's (or whose file cannot be parsed).
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Everything is read, decrypted and checked; nothing is written or changed on the host.
  diff_mode:
    support: full
    details: One diff per interface file; every private and preshared key is redacted.
  idempotent:
    support: full
    details: A host that already matches the snapshot is left alone and reports no change.
seealso:
  - module: wgfleet.wireguard.wg_backup
"""

EXAMPLES = r"""
- name: Rebuild this server from its latest snapshot and bring it up
  wgfleet.wireguard.wg_restore:
    login_host: db.example.org
    login_password: "{{ vault_db_password }}"
    encryption_key: "{{ vault_wg_backup_key }}"
    apply: true

- name: Rebuild the dead server vpn-eu-1 on this new host, as it was yesterday at noon
  wgfleet.wireguard.wg_restore:
    login_host: db.example.org
    login_password: "{{ vault_db_password }}"
    encryption_key: "{{ vault_wg_backup_key }}"
    server_id: vpn-eu-1.example.org
    snapshot: "2024-05-01T12:00:00Z"
    apply: true

- name: Restore wg0 from snapshot 42 over an interface with another key
  wgfleet.wireguard.wg_restore:
    login_host: db.example.org
    login_password: "{{ vault_db_password }}"
    encryption_key: "{{ vault_wg_backup_key }}"
    snapshot: "42"
    interfaces: [wg0]
    force: true
"""

RETURN = r"""
snapshot_id:
  description: Id of the snapshot restored.
  returned: always
  type: int
  sample: 42
server_id:
  description: The server whose state was restored.
  returned: always
  type: str
  sample: vpn-eu-1.example.org
counts:
  description: Interfaces and peers restored.
  returned: always
  type: dict
  sample: {"interfaces": 1, "peers": 129}
interfaces:
  description:
    - Per interface, its public key and peer count, what happened to its file (C(created); C(updated), its content
      or a mode that let group or others read it, made C(0600); C(unchanged))
      and to the device (C(applied) is C(none), C(up), C(restart) or C(live)), and the peers added or removed live.
  returned: always
  type: dict
  sample: {"wg0": {"public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "peers": 129, "file": "created",
           "applied": "up", "peers_added_live": [], "peers_removed_live": []}}
"""

from ..module_utils._backup import apply_restore, check_config_dir, observe, plan_restore
from ..module_utils._db_module import (
    check_libraries,
    database_argument_spec,
    key_argument_spec,
    open_store,
    server_id,
)
from ..module_utils._dbconfig import USE_RESTORE
from ..module_utils._module import WgModule, run_core
from ..module_utils._store_types import parse_snapshot


def restore(module: WgModule) -> dict:
    params = module.params
    source_id = server_id(params)
    snapshot = parse_snapshot(params["snapshot"])
    check_config_dir("config_dir", params["config_dir"])  # before any database work
    with open_store(params, use=USE_RESTORE) as store:  # a standby serves when the primary is down
        snapshot_id, state = store.load_state(source_id, snapshot, params["interfaces"])
    plans = plan_restore(state, observe(params["config_dir"], state), params["apply"], params["force"])
    if not module.check_mode:
        apply_restore(plans)
    return {
        "changed": any(p.changed for p in plans),
        "snapshot_id": snapshot_id,
        "server_id": source_id,
        "counts": {"interfaces": len(state), "peers": sum(len(i.peers) for i in state.values())},
        "interfaces": {p.name: p.report() for p in plans},
        "diff": [p.diff() for p in plans if p.file_changed],
    }


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(key_argument_spec())
    argument_spec.update(
        server_id={"type": "str"},
        snapshot={"type": "str"},
        config_dir={"type": "path", "default": "/etc/wireguard"},
        interfaces={"type": "list", "elements": "str"},
        apply={"type": "bool", "default": False},
        force={"type": "bool", "default": False},
    )
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True,
                      mutually_exclusive=[("encryption_key", "encryption_key_file")])
    check_libraries(module)
    run_core(module, lambda: restore(module))


if __name__ == "__main__":
    main()
