# Private to the wgfleet.wireguard collection: the database modules' shared options (connection; the state's keys).
from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host running the PostgreSQL server that holds the state.
      - Empty means the default Unix socket of the local server (as libpq does), unless O(login_unix_socket) is set.
      - A path starting with C(/) is a directory holding the server's Unix socket.
      - A replicated database (a primary and its standbys, Patroni, a managed service) is several hosts, a list or
        one comma-separated string (libpq's multi-host form), at most 16, none empty. Backups connect only to the
        host that accepts writes (libpq's C(target_session_attrs=read-write)), so after a failover they find the
        new primary without a change. Restores take the first host that answers, in list order (C(any)), that is the
        primary while it is up (the newest state) and a standby while it is not. One host connects exactly as before.
      - Several hosts need libpq 10 or later (every supported host has it; Debian 11 and RHEL 9 ship libpq 13,
        Debian 12 libpq 15).
    type: raw
    default: ''
    aliases: [host]
  login_unix_socket:
    description:
      - Directory of the server's Unix socket; overrides O(login_host).
    type: str
    default: ''
    aliases: [unix_socket]
  login_port:
    description:
      - Port of the PostgreSQL server; with several O(login_host), one port for all or a list (or comma-separated
        string) of one port per host, in the same order.
    type: raw
    default: 5432
    aliases: [port]
  login_user:
    description:
      - Role to connect as. Creating or upgrading the schema needs a role that may create tables in O(db) (see
        O(wgfleet.wireguard.wg_backup#module:schema_only)); backups and restores need only the GRANTs listed in the
        collection's C(docs/backup-restore.md).
    type: str
    default: postgres
    aliases: [login, user]
  login_password:
    description: Password of O(login_user). Never logged.
    type: str
    default: ''
  db:
    description:
      - Database holding the state. It must exist; the collection's C(database) role creates it and its tables.
        Where the tables are missing or older, a run by a login that may create tables creates or migrates them;
        once they are current, no run creates anything (the role's per-server logins may not).
    type: str
    default: wgrest_backup
    aliases: [login_db]
  ssl_mode:
    description: How the connection uses SSL, as libpq's C(sslmode).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description: File of the certificate authorities that the server's certificate must chain to (libpq's C(sslrootcert)).
    type: str
    aliases: [ssl_rootcert]
  ssl_cert:
    description: File of the client certificate to log in with (libpq's C(sslcert)).
    type: path
  ssl_key:
    description: File of the private key of O(ssl_cert) (libpq's C(sslkey)).
    type: path
  connect_timeout:
    description: Seconds to wait for the connection before giving up.
    type: int
    default: 10
requirements:
  - psycopg2 (or psycopg2-binary)
"""

    # The keys of the stored state, for the modules that read or write it (wg_backup, wg_restore, wg_rekey).
    KEYS = r"""
options:
  encryption_key:
    description:
      - The key that encrypts private and preshared keys in the database (AES-256-GCM), 32 bytes encoded in
        base64, the server's own key, derived on the controller from the fleet's master key for that server id
        with the P(wgfleet.wireguard.server_key#filter) filter (docs/security.md). It never enters the database.
      - Keep it apart from the database, in a vault. Without it no stored key can be read, and with a different key
        the modules refuse to read or extend the history it encrypted.
      - Mutually exclusive with O(encryption_key_file). Never logged.
    type: str
  encryption_key_file:
    description: A file on the managed host holding O(encryption_key) (for example the one the collection's C(stack) role writes for wgrest-sync).
    type: path
requirements:
  - cryptography
"""
