#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_retention
short_description: Prune the fleet's stored history to a retention policy
description:
  - Keeps, for every server in the PostgreSQL store (or only O(servers)), every snapshot newer than O(keep_days)
    days, at least the latest O(keep_latest) snapshots, and with O(daily_days) the last snapshot of each UTC day for
    that many days; deletes the other snapshots, then every history row (interface settings, server keys, peers)
    that no kept snapshot needs. The latest snapshot and the current rows are never deleted, so the latest state
    and every kept snapshot still restore with M(wgfleet.wireguard.wg_restore).
  - Works in transactions of at most O(batch_size) rows, each holding the server's lock that a save takes, so the
    wgrest-sync services wait at most one batch; a run cut short leaves only rows that no snapshot needs, which the
    next run deletes.
  - Run it on the controller with the schema owner's login, which has DELETE and bypasses row-level security. The
    servers' own logins have no DELETE right, and the sync service never prunes, so a compromised server cannot
    erase its own history. A login bound by row-level security (a server's, the monitor's) is refused by a message
    naming it, in check mode too.
  - A revoked peer's keys (its sealed preshared key) leave the database only when the last snapshot that holds
    them is pruned; PostgreSQL keeps the deleted rows on disk until VACUUM reuses the space, and in its backups and
    replicas until those age out. See the collection's C(docs/backup-restore.md).
version_added: 0.2.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.database
options:
  keep_days:
    description: Keep every snapshot taken in the last this many days (0 to 36500; 0 keeps only what the other options keep).
    type: int
    required: true
  keep_latest:
    description: Keep at least this many of each server's latest snapshots, however old (1 to 1000000).
    type: int
    default: 10
  daily_days:
    description: Also keep the last snapshot of each UTC day of the last this many days (0, the default, for none; at most 36500).
    type: int
    default: 0
  servers:
    description: Only these servers; by default every server in the database.
    type: list
    elements: str
  batch_size:
    description: At most this many rows deleted per transaction (1 to 1000000).
    type: int
    default: 5000
attributes:
  check_mode:
    support: full
    details: Counts what would be deleted (snapshots and rows per table), in one read-only transaction.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A second run with the same policy deletes nothing, unless time has moved snapshots out of it.
seealso:
  - module: wgfleet.wireguard.wg_snapshot_info
  - module: wgfleet.wireguard.wg_restore
"""

EXAMPLES = r"""
- name: Keep 30 days, one a day for a year, and at least the latest 10 per server
  wgfleet.wireguard.wg_retention:
    keep_days: 30
    daily_days: 365
    keep_latest: 10
    login_host: db.example.org
    login_user: wgfleet_owner
    login_password: "{{ vault_db_owner_password }}"
  register: pruned

- name: What went
  ansible.builtin.debug:
    msg: "{{ pruned.totals }}"
"""

RETURN = r"""
servers:
  description:
    - Per server, its snapshots before the run, how many are kept, how many were (in check mode, would be) deleted,
      the first 1000 deleted ids, and the rows deleted per table.
  returned: always
  type: dict
  sample: {"vpn-eu-1": {"snapshots": 412, "kept": 80, "deleted_snapshots": 332, "deleted_snapshot_ids": [1, 2],
           "deleted_rows": {"interfaces": 0, "server_keys": 0, "peers": 3310}}}
totals:
  description: The sums over every server.
  returned: always
  type: dict
  sample: {"deleted_snapshots": 332, "kept": 80, "interfaces": 0, "server_keys": 0, "peers": 3310}
"""

from ..module_utils._db_module import check_libraries, database_argument_spec, open_store
from ..module_utils._module import WgModule, run_core
from ..module_utils._retention import HISTORY_TABLES, Policy, prune


def retention(module: WgModule) -> dict:
    params = module.params
    policy = Policy(params["keep_days"], params["keep_latest"], params["daily_days"])
    with open_store(params, cipher=None) as store:
        done = prune(store, policy, params["servers"], params["batch_size"], module.check_mode)
    totals = {"deleted_snapshots": sum(len(d.deleted_snapshots) for d in done), "kept": sum(d.kept for d in done)}
    totals.update({t: sum(d.deleted_rows[t] for d in done) for t in HISTORY_TABLES})
    return {"changed": any(d.deleted_snapshots or any(d.deleted_rows.values()) for d in done),
            "servers": {d.server_id: d.report() for d in done}, "totals": totals}


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(keep_days={"type": "int", "required": True}, keep_latest={"type": "int", "default": 10},
                         daily_days={"type": "int", "default": 0}, servers={"type": "list", "elements": "str"},
                         batch_size={"type": "int", "default": 5000})
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True)
    check_libraries(module)
    run_core(module, lambda: retention(module))


if __name__ == "__main__":
    main()
