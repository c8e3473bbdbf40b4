"""A wgrest v2 double for tests: the routes, JSON, quirks and file dumps of the real server.

wgrest (github.com/suquant/wgrest) cannot be downloaded or built here, so the
tests talk to this server instead. It follows the project's notes on wgrest
(shared/docs/wgrest.md; how the collection uses it: docs/wgrest.md) fact by
fact, quirks included, and drives real devices with ``wg``. It is a test fixture: nothing outside
``tests/`` may import it.

Run it as ``python -m tests.wgrest_server --listen 127.0.0.1:PORT --config-dir DIR
--static-auth-token TOKEN`` (flags, ``WGREST_*`` variables or a TOML file, as wgrest).
"""
