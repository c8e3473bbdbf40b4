#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_backup
short_description: Store the complete WireGuard state of a server in PostgreSQL
description:
  - Captures every WireGuard interface of the host (all settings, the private key, every peer with its preshared key
    and label, and the live peers not yet in the configuration files) and stores it as a new snapshot of O(server_id)
    in a PostgreSQL database, in one transaction.
  - Only what changed since the latest snapshot is written; an unchanged state adds nothing and reports no change.
    Earlier snapshots stay restorable with M(wgfleet.wireguard.wg_restore).
  - Private and preshared keys are encrypted with O(encryption_key) before they leave the host. Without a key they
    are refused unless O(allow_plaintext_keys=true).
  - Creates or upgrades the tables in O(db) the first time (safe when several hosts run at once).
version_added: 0.1.0
author:
  - wgfleet.wireguard contributors (@wgfleet)
extends_documentation_fragment:
  - wgfleet.wireguard.attributes
  - wgfleet.wireguard.database
  - wgfleet.wireguard.database.keys
options:
  server_id:
    description:
      - Name of this server in the database. Servers sharing a database never overwrite each other's state.
      - Defaults to the host's fully qualified domain name.
    type: str
  config_dir:
    description: Directory of the wg-quick configuration files.
    type: path
    default: /etc/wireguard
  interfaces:
    description:
      - Interfaces to back up. By default every C(NAME.conf) in O(config_dir) and every running WireGuard interface.
      - When given, the other interfaces already stored for O(server_id) are kept in the new snapshot as they were;
        when not given, interfaces gone from the host are gone from the new snapshot (older ones keep them).
    type: list
    elements: str
  allow_plaintext_keys:
    description: Store private and preshared keys unencrypted when no O(encryption_key) is given.
    type: bool
    default: false
  previous_encryption_key:
    description:
      - Rotates the store's encryption key. The key that encrypted this server's history until now, when
        O(encryption_key) is a new one. The backup is then stored under O(encryption_key) with every row written
        again, so that the server's state from here on opens with the new key only (and the wgrest-sync service
        must be given the new key).
      - Snapshots older than the rotation stay encrypted with this key; keep it for as long as you may want to
        restore one of them.
      - Refused when it is not the key of the latest snapshot. A history already under O(encryption_key) is
        backed up as usual, so a rotation run twice changes nothing the second time.
      - Mutually exclusive with O(previous_encryption_key_file). Never logged.
    type: str
  previous_encryption_key_file:
    description: A file on the managed host holding O(previous_encryption_key).
    type: path
  schema_only:
    description:
      - Only create or upgrade the tables in O(db), and back nothing up. Meant for the schema owner's login (for
        example in the database role), so that the logins of servers and of the sync service need no right to
        create or alter tables; see the GRANTs in the collection's C(docs/backup-restore.md).
      - In check mode, reports whether the schema would be created or upgraded.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reports whether a new snapshot would be stored, and its counts, without writing (not even the schema).
  diff_mode:
    support: none
  idempotent:
    support: full
    details: An unchanged host stores no new snapshot and reports no change.
notes:
  - The first run (or a run with O(schema_only=true)) needs a login that may create tables in O(db); once the schema
    is current, a login with the GRANTs listed in the collection's C(docs/backup-restore.md) is enough.
seealso:
  - module: wgfleet.wireguard.wg_restore
  - module: community.postgresql.postgresql_db
"""

EXAMPLES = r"""
- name: Back up this server's WireGuard state
  wgfleet.wireguard.wg_backup:
    login_host: db.example.org
    login_user: wgfleet
    login_password: "{{ vault_db_password }}"
    encryption_key: "{{ vault_wg_backup_key }}"
  register: backup

- name: Show the snapshot
  ansible.builtin.debug:
    msg: "snapshot {{ backup.snapshot_id }}: {{ backup.counts.peers }} peers"

- name: Rotate the store's encryption key (the server's state is stored again, under the new key)
  wgfleet.wireguard.wg_backup:
    login_host: db.example.org
    login_password: "{{ vault_db_password }}"
    encryption_key: "{{ vault_wg_backup_key_new }}"
    previous_encryption_key: "{{ vault_wg_backup_key }}"

- name: Back up only wg0, under an explicit server id
  wgfleet.wireguard.wg_backup:
    login_host: db.example.org
    login_password: "{{ vault_db_password }}"
    server_id: vpn-eu-1
    interfaces: [wg0]
    encryption_key: "{{ vault_wg_backup_key }}"
"""

RETURN = r"""
snapshot_id:
  description:
    - Id of the snapshot holding the state now (the new one when changed, the latest one otherwise).
    - In check mode, null when a new snapshot would be stored.
  returned: unless O(schema_only=true)
  type: int
  sample: 42
server_id:
  description: The server id the state is stored under.
  returned: unless O(schema_only=true)
  type: str
  sample: vpn-eu-1.example.org
counts:
  description: What the state holds, and how many peer rows this run wrote (0 when nothing changed).
  returned: unless O(schema_only=true)
  type: dict
  sample: {"interfaces": 2, "peers": 130, "peer_rows_written": 1}
schema_version:
  description: With O(schema_only=true), the schema version found and the one the collection needs.
  returned: when O(schema_only=true)
  type: dict
  sample: {"before": 2, "after": 3}
interfaces:
  description: Per interface backed up, its public key, its peer count and how many peers were found only live.
  returned: unless O(schema_only=true)
  type: dict
  sample: {"wg0": {"public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "peers": 129, "live_only_peers": 1}}
"""

from ..module_utils._backup import DeviceSource, capture
from ..module_utils._db_module import (
    check_libraries,
    database_argument_spec,
    key_argument_spec,
    open_store,
    server_id,
)
from ..module_utils._keys import public_key
from ..module_utils._module import WgModule, run_core
from ..module_utils._secrets import make_cipher
from ..module_utils._store_schema import SCHEMA_VERSION


def schema_only(module: WgModule) -> dict:
    with open_store(module.params) as store:
        before = store.schema_version()
        changed = before < SCHEMA_VERSION
        if changed and not module.check_mode:
            store.migrate()
    return {"changed": changed, "schema_version": {"before": before, "after": SCHEMA_VERSION}}


def backup(module: WgModule) -> dict:
    params = module.params
    if params["schema_only"]:
        return schema_only(module)
    source_id = server_id(params)
    # Every option is checked (the key files read) before the interfaces are.
    cipher = make_cipher(params["encryption_key"], params["encryption_key_file"])
    previous = make_cipher(params["previous_encryption_key"], params["previous_encryption_key_file"],
                           "previous_encryption_key")
    state, live_only = capture(params["config_dir"], DeviceSource(), params["interfaces"])
    with open_store(params, params["allow_plaintext_keys"], cipher) as store:
        if not module.check_mode:
            store.migrate()
        saved = store.save_state(source_id, state, source="wg_backup", check_mode=module.check_mode,
                                 partial=bool(params["interfaces"]), previous_cipher=previous)
    return {
        "changed": saved.changed,
        "snapshot_id": saved.snapshot_id,
        "server_id": source_id,
        "counts": saved.counts,
        "interfaces": {
            name: {"public_key": public_key(iface.private_key) if iface.private_key else None,
                   "peers": len(iface.peers), "live_only_peers": live_only[name]}
            for name, iface in state.items()
        },
    }


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(key_argument_spec())
    argument_spec.update(
        server_id={"type": "str"},
        config_dir={"type": "path", "default": "/etc/wireguard"},
        interfaces={"type": "list", "elements": "str"},
        allow_plaintext_keys={"type": "bool", "default": False},
        schema_only={"type": "bool", "default": False},
        previous_encryption_key={"type": "str", "no_log": True},
        previous_encryption_key_file={"type": "path"},
    )
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True,
                      mutually_exclusive=[("encryption_key", "encryption_key_file"),
                                          ("previous_encryption_key", "previous_encryption_key_file")])
    check_libraries(module)
    run_core(module, lambda: backup(module))


if __name__ == "__main__":
    main()
