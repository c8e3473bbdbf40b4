#!/usr/bin/python
# Copyright: wgfleet.wireguard contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: wg_rekey
short_description: Re-seal one server's whole stored history under another encryption key
description:
  - Moves every snapshot of O(server_id) in the PostgreSQL store from O(previous_encryption_key) to
    O(encryption_key), in one transaction (all or nothing) under the lock that saves of that server take, so a sync
    cycle cannot interleave.
  - Every stored private and preshared key is decrypted with the previous key and encrypted with the new one, every
    row digest and every snapshot's seal is made again under the new key. Afterwards every snapshot, going back by
    time included, restores with O(encryption_key) only; the previous key opens none of them.
  - Each snapshot is first proved under O(previous_encryption_key) exactly as a restore proves it; a damaged or forged
    snapshot, or one encrypted with neither key, fails the run with its id and nothing is changed.
  - Snapshots already under O(encryption_key) are left as they are, so a second run changes nothing. Snapshots stored
    in plain text (O(wgfleet.wireguard.wg_backup#module:allow_plaintext_keys)) are left as they are and counted.
  - Format-1 snapshots (written before the store sealed snapshots) come out sealed.
  - Serves the move of a fleet from one shared key to per-server keys, the rotation of the master key (every server
    from its old derived key to its new one), and the rotation of one server's key (its generation bumped).
  - Run it on the controller (C(delegate_to=localhost)) with the schema owner's login (the controller is the only
    place that holds both keys). The server's wgrest-sync and backups must be given O(encryption_key) afterwards; until then
    their saves are refused (the stored history is kept, the live state stays on the host).
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
      - The server whose history is re-sealed (one per run; loop for a fleet).
    type: str
    required: true
  encryption_key:
    description:
      - The new key, 32 bytes encoded in base64. Never logged.
      - For per-server keys, V({{ wgfleet_master_key | wgfleet.wireguard.server_key(server_id, generation\) }}).
      - Exactly one of O(encryption_key) and O(encryption_key_file) is required.
    type: str
  encryption_key_file:
    description: A file holding O(encryption_key) (on the host the module runs on).
    type: path
  previous_encryption_key:
    description:
      - The key the history is under now, 32 bytes encoded in base64; must differ from O(encryption_key). Never logged.
      - Exactly one of O(previous_encryption_key) and O(previous_encryption_key_file) is required.
    type: str
  previous_encryption_key_file:
    description: A file holding O(previous_encryption_key).
    type: path
attributes:
  check_mode:
    support: full
    details: Proves every snapshot under the previous key and reports what would be re-sealed; writes nothing.
  diff_mode:
    support: none
  idempotent:
    support: full
    details: A history already under O(encryption_key) is left as it is and reports no change.
notes:
  - Needs a login that may update every table of the store for O(server_id) (the schema owner's) and create a
    temporary table.
seealso:
  - module: wgfleet.wireguard.wg_backup
  - module: wgfleet.wireguard.wg_restore
"""

EXAMPLES = r"""
- name: Move each server's history from the fleet's shared key to its own derived key (the upgrade)
  wgfleet.wireguard.wg_rekey:
    login_host: db.example.org
    login_user: wgfleet_owner
    login_password: "{{ vault_wgfleet_db_owner_password }}"
    server_id: "{{ item }}"
    previous_encryption_key: "{{ wgfleet_master_key }}"
    encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key(item) }}"
  loop: "{{ groups['wireguard_servers'] | map('extract', hostvars, 'wgfleet_server_id') | list }}"
  delegate_to: localhost
  run_once: true

- name: Rotate the master key (every server from its old derived key to its new one)
  wgfleet.wireguard.wg_rekey:
    login_host: db.example.org
    login_user: wgfleet_owner
    login_password: "{{ vault_wgfleet_db_owner_password }}"
    server_id: "{{ wgfleet_server_id }}"
    previous_encryption_key: "{{ wgfleet_master_key_old | wgfleet.wireguard.server_key(wgfleet_server_id) }}"
    encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key(wgfleet_server_id) }}"
  delegate_to: localhost

- name: Rotate one server's key after it was compromised (generation 1 -> 2)
  wgfleet.wireguard.wg_rekey:
    login_host: db.example.org
    login_user: wgfleet_owner
    login_password: "{{ vault_wgfleet_db_owner_password }}"
    server_id: vpn-eu-1
    previous_encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key('vpn-eu-1', 1) }}"
    encryption_key: "{{ wgfleet_master_key | wgfleet.wireguard.server_key('vpn-eu-1', 2) }}"
  delegate_to: localhost
"""

RETURN = r"""
server_id:
  description: The server whose history was re-sealed.
  returned: always
  type: str
  sample: vpn-eu-1
snapshots:
  description: Snapshots sealed again under the new key (in check mode, that would be).
  returned: always
  type: int
  sample: 12
rows:
  description: Per table, the rows written again under the new key (in check mode, that would be).
  returned: always
  type: dict
  sample: {"interfaces": 3, "server_keys": 2, "peers": 1310}
snapshots_total:
  description: Every snapshot of the server.
  returned: always
  type: int
  sample: 12
snapshots_already_rekeyed:
  description: Snapshots that were under the new key already and were left as they are.
  returned: always
  type: int
  sample: 0
plain_snapshots:
  description: Snapshots stored in plain text (no key), left as they are.
  returned: always
  type: int
  sample: 0
"""

from ..module_utils._db_module import check_libraries, database_argument_spec, key_argument_spec, open_store
from ..module_utils._dbconfig import check_server_id
from ..module_utils._module import WgModule, run_core
from ..module_utils._rekey import check_keys, rekey_server
from ..module_utils._secrets import make_cipher


def rekey(module: WgModule) -> dict:
    params = module.params
    source_id = check_server_id("server_id", params["server_id"])
    new = make_cipher(params["encryption_key"], params["encryption_key_file"])
    old = make_cipher(params["previous_encryption_key"], params["previous_encryption_key_file"],
                      "previous_encryption_key")
    check_keys(new, old)
    with open_store(params, cipher=new) as store:
        result = rekey_server(store, source_id, new, old, check_mode=module.check_mode)
    return {"server_id": source_id, **result.as_dict()}


def main() -> None:
    argument_spec = database_argument_spec()
    argument_spec.update(key_argument_spec())
    argument_spec.update(
        server_id={"type": "str", "required": True},
        previous_encryption_key={"type": "str", "no_log": True},
        previous_encryption_key_file={"type": "path"},
    )
    module = WgModule(argument_spec=argument_spec, supports_check_mode=True,
                      mutually_exclusive=[("encryption_key", "encryption_key_file"),
                                          ("previous_encryption_key", "previous_encryption_key_file")],
                      required_one_of=[("encryption_key", "encryption_key_file"),
                                       ("previous_encryption_key", "previous_encryption_key_file")])
    check_libraries(module)
    run_core(module, lambda: rekey(module))


if __name__ == "__main__":
    main()
