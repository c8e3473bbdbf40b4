"""The database doc fragment's CONNECTION part is DOCUMENTATION's connection options, word for word."""
from __future__ import annotations

import yaml

from ansible_collections.wgfleet.wireguard.plugins.doc_fragments.database import ModuleDocFragment


def test_connection_options_are_the_documentation_s_own():
    full = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    connection = yaml.safe_load(ModuleDocFragment.CONNECTION)["options"]
    assert set(full) - set(connection) == {"encryption_key", "encryption_key_file"}
    assert {name: full[name] for name in connection} == connection
