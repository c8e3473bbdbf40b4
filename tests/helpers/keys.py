"""Keys for tests, made by the collection's own key code."""
from __future__ import annotations

from tests.helpers.playbook import ensure_collection_path

ensure_collection_path()

from ansible_collections.wgfleet.wireguard.plugins.module_utils import _keys  # noqa: E402


def new_key() -> str:
    """A fresh public key (its private half is thrown away)."""
    return _keys.public_key(_keys.generate_private_key())


# Fixed keys for tests that need the same values every run (never used outside tests).
SERVER_KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="  # a private key
PSK = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
PEER_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
PEER_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
PEER_C = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
