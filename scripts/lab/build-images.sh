#!/usr/bin/env bash
# Build the Molecule lab's base images from Debian packages, without any container registry.
#
#   scripts/lab/build-images.sh [--force]
#
# Images (made with debootstrap + `docker import`, tagged for the local engine only):
#   wgfleet-lab/host:bookworm   the lab's servers and client: systemd as PID 1, its own Docker engine
#                               (docker.io + the Compose v2 CLI plugin), wireguard-go, wireguard-tools,
#                               iptables, Python 3 with the libraries the modules use.
#   wgfleet-lab/db:bookworm     the same file system with PostgreSQL 15 enabled instead of Docker:
#                               the fleet's external database.
#   wgfleet-lab/inner:bookworm  the base of the images that run inside a server (wgrest, wgrest-sync,
#                               the loader): minbase with exactly the packages their Dockerfiles install,
#                               so that their install steps do nothing and need no network.
#
# Each image carries a label with a digest of its inputs (this script and the Compose plugin); an
# image whose label matches is kept, so a second run costs a few seconds. --force rebuilds.
# Needs root, debootstrap and a running Docker engine; reaches only the Debian mirror.
set -euo pipefail

MIRROR=${WGFLEET_LAB_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
COMPOSE_PLUGIN=${WGFLEET_COMPOSE_PLUGIN:-$ROOT/.venv/bin/docker-compose}
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

HOST_PACKAGES="systemd systemd-sysv dbus procps kmod iproute2 iputils-ping iptables iptables-persistent
ca-certificates python3 python3-apt python3-requests python3-yaml python3-psycopg2 python3-cryptography
docker.io wireguard-go wireguard-tools postgresql postgresql-client"
INNER_PACKAGES="wireguard-tools iproute2 kmod python3 python3-psycopg2 python3-cryptography python3-prometheus-client"

test -x "$COMPOSE_PLUGIN" || { echo "build-images: Compose plugin not found at $COMPOSE_PLUGIN (make venv)" >&2; exit 1; }
# Content only: the digest must not depend on where the checkout is (every clone would rebuild).
INPUTS=$( { cat "$0"; sha256sum <"$COMPOSE_PLUGIN"; } | sha256sum | cut -c1-16)

current() {  # current IMAGE: true when IMAGE exists with this script's input digest
  [ "$FORCE" = 0 ] && [ "$(docker image inspect -f '{{ index .Config.Labels "wgfleet.lab.inputs" }}' "$1" 2>/dev/null)" = "$INPUTS" ]
}

WORK=
cleanup() {
  [ -z "$WORK" ] && return
  for m in "$WORK"/*/proc; do ! mountpoint -q "$m" || umount "$m"; done
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

bootstrap() {  # bootstrap DIR PACKAGES: minbase, then PACKAGES installed by apt inside it
  echo "build-images: debootstrap $SUITE into $1, then: $2"
  debootstrap --variant=minbase "$SUITE" "$1" "$MIRROR" >"$1.log" 2>&1 || { tail -n 30 "$1.log" >&2; exit 1; }
  # apt resolves dependencies that debootstrap's --include does not. No daemon starts in the chroot
  # (policy-rc.d), and iptables-persistent is preseeded not to save rules: a chroot shares the build
  # machine's network namespace, so it would save the machine's own rules into the image.
  cp /etc/resolv.conf "$1/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d" && chmod 0755 "$1/usr/sbin/policy-rc.d"
  printf '%s\n' 'iptables-persistent iptables-persistent/autosave_v4 boolean false' \
    'iptables-persistent iptables-persistent/autosave_v6 boolean false' | chroot "$1" debconf-set-selections
  mount -t proc proc "$1/proc"
  { chroot "$1" apt-get update -qq && chroot "$1" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends $2; } >>"$1.log" 2>&1 || { tail -n 30 "$1.log" >&2; exit 1; }
  umount "$1/proc"
  chroot "$1" apt-get clean
  rm -f "$1/usr/sbin/policy-rc.d" "$1"/etc/iptables/rules.v*
  : >"$1/etc/resolv.conf"
  rm -rf "$1"/var/lib/apt/lists/* "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/info/* \
    "$1"/usr/share/locale/*
}

import() {  # import DIR IMAGE CMD
  echo "build-images: importing $2"
  tar --numeric-owner -C "$1" -c . | docker import --change "LABEL wgfleet.lab.inputs=$INPUTS" \
    --change "ENV container=docker" --change "CMD [\"$3\"]" - "$2" >/dev/null
}

if ! current wgfleet-lab/host:bookworm || ! current wgfleet-lab/db:bookworm; then
  WORK=$(mktemp -d /var/tmp/wgfleet-lab-build.XXXXXX)
  bootstrap "$WORK/host" "$HOST_PACKAGES"
  R=$WORK/host
  install -D -m 0755 "$COMPOSE_PLUGIN" "$R/usr/libexec/docker/cli-plugins/docker-compose"
  # Lab only: Docker mounts /proc/sys read-only in a container; a real host has it writable, so the
  # firewall role's sysctl tasks behave as on a real host once this remounts it (CAP_SYS_ADMIN).
  cat >"$R/etc/systemd/system/wgfleet-lab-proc-sys.service" <<'EOF'
[Unit]
Description=Lab only: make /proc/sys writable as on a real host
DefaultDependencies=no
Before=systemd-sysctl.service sysinit.target

[Service]
Type=oneshot
ExecStart=/bin/mount -o remount,rw /proc/sys

[Install]
WantedBy=sysinit.target
EOF
  chroot "$R" systemctl enable wgfleet-lab-proc-sys.service >/dev/null 2>&1
  # Units a container cannot run.
  chroot "$R" systemctl mask systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket \
    systemd-modules-load.service sys-kernel-config.mount sys-kernel-debug.mount getty.target \
    console-getty.service >/dev/null 2>&1
  echo wgfleet-lab >"$R/etc/hostname"
  # Docker inside a container: vfs is the storage driver known to work there.
  mkdir -p "$R/etc/docker" && printf '{"storage-driver": "vfs"}\n' >"$R/etc/docker/daemon.json"
  chroot "$R" systemctl disable postgresql.service >/dev/null 2>&1
  import "$R" wgfleet-lab/host:bookworm /lib/systemd/systemd
  chroot "$R" systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1
  chroot "$R" systemctl enable postgresql.service >/dev/null 2>&1
  import "$R" wgfleet-lab/db:bookworm /lib/systemd/systemd
  rm -rf --one-file-system "$R"
else
  echo "build-images: wgfleet-lab/host and wgfleet-lab/db are current"
fi

if ! current wgfleet-lab/inner:bookworm; then
  [ -n "$WORK" ] || WORK=$(mktemp -d /var/tmp/wgfleet-lab-build.XXXXXX)
  bootstrap "$WORK/inner" "$INNER_PACKAGES"
  import "$WORK/inner" wgfleet-lab/inner:bookworm /bin/bash
else
  echo "build-images: wgfleet-lab/inner is current"
fi
docker image ls --filter reference='wgfleet-lab/*'
