#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_snapshot_info
short_description: List a server's stored snapshots, to pick a restore point
description:
  - Lists the snapshots of O(server_id) in the PostgreSQL store, oldest first, with their id, time, source
    (C(wg_backup), C(wgrest_sync)), interface and peer counts, the peer rows each one wrote and whether it is
    encrypted; O(since), O(until) and O(limit) narrow the list.
  - Reads only C(schema_version) and C(snapshots), so the fleet's monitor login (SELECT on C(schema_version),
    C(snapshots) and C(sync_status)) or the server's own login will do. Another server's login is refused by a
    message naming it (row-level security would show it no snapshot). Needs no encryption key and returns no key.
version_added: 0.2.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.attributes.info_module
  - wgfleet.wireguard.database
options:
  server_id:
    description: The server whose snapshots to list. Defaults to the host's fully qualified domain name.
    type: str
  since:
    description: Only snapshots taken at or after this ISO 8601 time (without an offset, UTC).
    type: str
  until:
    description: Only snapshots taken at or before this ISO 8601 time (without an offset, UTC).
    type: str
  limit:
    description: Only the newest this many of the snapshots selected (1 to 1000000); all by default.
    type: int
seealso:
  - module: wgfleet.wireguard.wg_restore
  - module: wgfleet.wireguard.wg_fleet_info
"""

EXAMPLES = r"""
- name: The snapshots of vpn-eu-1 taken on 1 May
  wgfleet.wireguard.wg_snapshot_info:
    server_id: vpn-eu-1
    since: "2026-05-01T00:00:00Z"
    until: "2026-05-01T23:59:59Z"
    login_host: db.example.org
    login_user: wgfleet_monitor
    login_password: "{{ vault_monitor_password }}"
  register: snaps

- name: Restore the last one of that day
  wgfleet.wireguard.wg_restore:
    server_id: vpn-eu-1
    snapshot: "{{ snaps.snapshots[-1].id }}"
    encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key('vpn-eu-1') }}"
    login_host: db.example.org
    login_user: wgfleet_vpn_eu_1
    login_password: "{{ vault_wgfleet_db_passwords['vpn-eu-1'] }}"
"""

RETURN = r"""
server_id:
  description: The server listed.
  returned: always
  type: str
  sample: vpn-eu-1
snapshots:
  description: The snapshots, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"id": 42, "created_at": "2026-05-01T12:00:03.120511+00:00", "source": "wgrest_sync", "interfaces": 2,
            "peers": 130, "peer_rows_written": 1, "encrypted": true}]
"""

from ..module_utils._db_module import check_libraries, database_argument_spec, open_store, server_id
from ..module_utils._fleet import snapshot_info
from ..module_utils._module import WgModule, run_core


def snapshots(module: WgModule) -> dict:
    params = module.params
    source_id = server_id(params)
    with open_store(params, cipher=None) as store:
        found = snapshot_info(store, source_id, params["since"], params["until"], params["limit"])
    return {"changed": False, "server_id": source_id, "snapshots": found}


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(server_id={"type": "str"}, since={"type": "str"}, until={"type": "str"},
                         limit={"type": "int"})
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True)
    check_libraries(module)
    run_core(module, lambda: snapshots(module))


if __name__ == "__main__":
    main()
