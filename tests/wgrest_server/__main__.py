"""``python -m tests.wgrest_server``: wgrest v2's command line (flags > WGREST_* env > TOML file > defaults)."""
from __future__ import annotations

import argparse
import os
import sys

import tomllib

from .server import Settings, parse_go_duration, serve

OPTIONS = ("listen", "config-dir", "certs-dir", "dump-interval", "static-auth-token", "tls-domain")
DEFAULTS = {"listen": "127.0.0.1:8000", "config-dir": "/etc/wireguard", "certs-dir": "/var/lib/wgrest/certs",
            "dump-interval": "10m", "static-auth-token": "", "tls-domain": ""}


def resolve(argv: list[str], environ: dict) -> Settings:
    parser = argparse.ArgumentParser(prog="wgrest", description="wgrest v2 double for tests")
    parser.add_argument("--conf")
    for option in OPTIONS:
        # --config-dir may repeat: wgrest dumps to the first dir holding <name>.conf, else the first.
        parser.add_argument(f"--{option}", action="append" if option == "config-dir" else "store")
    args = parser.parse_args(argv)
    conf_path = args.conf or environ.get("WGREST_CONF")
    from_file: dict = {}
    if conf_path:  # the file is read only when named
        with open(conf_path, "rb") as handle:
            from_file = tomllib.load(handle)
    values = {}
    for option in OPTIONS:
        env_name = "WGREST_" + option.upper().replace("-", "_")
        cli = getattr(args, option.replace("-", "_"))
        if cli is not None:
            values[option] = cli
        elif env_name in environ:
            values[option] = environ[env_name]
        elif option in from_file:
            values[option] = from_file[option]
        else:
            values[option] = DEFAULTS[option]
    if values["tls-domain"]:
        parser.error("--tls-domain (ACME on :443) is not supported by the test double")
    dirs = values["config-dir"]
    if isinstance(dirs, str):
        dirs = dirs.split(",")
    return Settings(listen=values["listen"], config_dirs=[d for d in dirs if d],
                    dump_interval=parse_go_duration(str(values["dump-interval"])),
                    static_auth_token=str(values["static-auth-token"]))


def main(argv: list[str] | None = None) -> int:
    settings = resolve(sys.argv[1:] if argv is None else argv, dict(os.environ))
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
