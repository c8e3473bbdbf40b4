#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_fleet_info
short_description: Show every server's sync health and latest snapshot from the fleet's database
description:
  - Lists every server the PostgreSQL store knows (from the wgrest-sync service's C(sync_status) rows and from the
    snapshots), with its last sync attempt and last success, their ages, whether the last attempt succeeded, the
    consecutive failures, the last error (anything shaped like a key taken out), the counts of its last sync and of
    its latest snapshot.
  - A server is C(stale) when its last successful sync is older than O(stale_intervals) times O(interval) seconds,
    or it never had one; C(failing) when its last attempt failed. Ages come from the database's clock.
  - Reads only C(schema_version), C(snapshots) and C(sync_status). The fleet's monitor login (the database role's
    C(database_monitor_user), SELECT on those three tables, every server's rows) is the login meant for it; the
    schema owner's will do too. A server's own login, which row-level security shows only its own rows, is refused
    by a message naming it (it would report a fleet of one). Needs no encryption key and returns no key.
version_added: 0.2.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.attributes.info_module
  - wgfleet.wireguard.database
options:
  interval:
    description: The wgrest-sync services' interval in seconds (their C(interval) setting), more than 0, at most 604800.
    type: float
    default: 60
  stale_intervals:
    description: How many intervals without a successful sync make a server stale; more than 0, at most 10000.
    type: float
    default: 3
  servers:
    description:
      - Only these servers. A server named here that the database does not know is listed as stale (C(known=false)),
        so a server whose sync never started is not missed.
    type: list
    elements: str
seealso:
  - module: wgfleet.wireguard.wg_snapshot_info
  - module: wgfleet.wireguard.wg_interface_info
"""

EXAMPLES = r"""
- name: The fleet's health
  wgfleet.wireguard.wg_fleet_info:
    login_host: db.example.org
    login_user: wgfleet_monitor
    login_password: "{{ vault_monitor_password }}"
    servers: "{{ groups['wireguard_servers'] }}"
  register: fleet

- name: Fail when a server's sync is stale or failing
  ansible.builtin.assert:
    that: fleet.stale == [] and fleet.failing == []
    fail_msg: "stale: {{ fleet.stale }}; failing: {{ fleet.failing }}"
"""

RETURN = r"""
servers:
  description:
    - One entry per server, by server id. C(known) is false for a server named in O(servers) that the database has
      nothing of; C(sync) is false for a server that has snapshots but no sync status (backed up with wg_backup only).
    - Sync fields (null without a sync status) C(last_attempt_at), C(last_success_at), C(ok), C(error),
      C(consecutive_failures), C(sync_counts), C(duration_seconds), C(attempt_age_seconds), C(success_age_seconds);
      latest snapshot fields C(snapshot_id), C(snapshot_at), C(interfaces), C(peers), C(snapshot_age_seconds);
      and C(stale), C(failing).
  returned: always
  type: list
  elements: dict
  sample: [{"server_id": "vpn-eu-1", "known": true, "sync": true, "last_attempt_at": "2026-05-01T12:00:03+00:00",
            "last_success_at": "2026-05-01T12:00:03+00:00", "ok": true, "error": null, "consecutive_failures": 0,
            "sync_counts": {"interfaces": 2, "peers": 130, "peer_rows_written": 0, "snapshot_id": 42},
            "duration_seconds": 0.08, "attempt_age_seconds": 12.5, "success_age_seconds": 12.5, "snapshot_id": 42,
            "snapshot_at": "2026-05-01T11:40:03+00:00", "interfaces": 2, "peers": 130,
            "snapshot_age_seconds": 1212.5, "stale": false, "failing": false}]
stale:
  description: The ids of the stale servers.
  returned: always
  type: list
  elements: str
  sample: []
failing:
  description: The ids of the servers whose last sync attempt failed.
  returned: always
  type: list
  elements: str
  sample: []
stale_after_seconds:
  description: O(interval) times O(stale_intervals).
  returned: always
  type: float
  sample: 180.0
checked_at:
  description: The database's time when it was read.
  returned: always
  type: str
  sample: "2026-05-01T12:00:15.501+00:00"
"""

from ..module_utils._db_module import check_libraries, database_argument_spec, open_store
from ..module_utils._fleet import fleet_info
from ..module_utils._module import WgModule, run_core


def fleet(module: WgModule) -> dict:
    params = module.params
    with open_store(params, cipher=None) as store:
        found = fleet_info(store, params["interval"], params["stale_intervals"], params["servers"])
    return dict(changed=False, **found)


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(interval={"type": "float", "default": 60.0}, stale_intervals={"type": "float", "default": 3.0},
                         servers={"type": "list", "elements": "str"})
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True)
    check_libraries(module)
    run_core(module, lambda: fleet(module))


if __name__ == "__main__":
    main()
