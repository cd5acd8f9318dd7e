#!/usr/bin/env bash
# bootstrap-base.sh - make envhub's default base image without a container registry.
#
# Usage: bootstrap-base.sh OUT.tar [SUITE]
#
# Runs debootstrap (variant minbase) for Debian SUITE (default bookworm) from the
# Debian mirror that this host's apt sources already use, adds python3, pip,
# venv, tar and ca-certificates, creates the sandbox user (uid 1000) and an
# empty /workspace, and writes the root filesystem as a tar to OUT.tar, ready to
# be imported into the Docker engine. Needs root (debootstrap does). About a
# minute on a fast mirror.
set -euo pipefail

out=${1:?usage: bootstrap-base.sh OUT.tar [SUITE]}
suite=${2:-bookworm}

# The first Debian mirror named by the host's apt sources, deb822 or one-line
# format; deb.debian.org when none is found.
find_mirror() {
    local f uri
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return; fi
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\// && $i ~ /\/debian\/?$/) { print $i; exit } }' "$f")
        if [ -n "$uri" ]; then echo "$uri"; return; fi
    done
    echo "http://deb.debian.org/debian"
}

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap-base: debootstrap needs root; run as root or import an image yourself" >&2
    exit 1
fi
command -v debootstrap >/dev/null || { echo "bootstrap-base: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

mirror=${ENVHUB_DEBIAN_MIRROR:-$(find_mirror)}
root=$(mktemp -d "${TMPDIR:-/tmp}/envhub-rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT

echo "bootstrap-base: debootstrap $suite from $mirror into $root"
debootstrap --variant=minbase \
    --include=python3,python3-pip,python3-venv,tar,ca-certificates \
    "$suite" "$root" "$mirror"

# The sandbox user and its workspace; jobs run as 1000:1000.
chroot "$root" groupadd -g 1000 sandbox
chroot "$root" useradd -u 1000 -g 1000 -m -d /home/sandbox -s /bin/bash sandbox
install -d -o 1000 -g 1000 -m 0755 "$root/workspace"
# Builds on this image reach the same mirror.
echo "deb $mirror $suite main" > "$root/etc/apt/sources.list"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log

tar --numeric-owner -C "$root" -cf "$out" .
echo "bootstrap-base: wrote $out ($(du -h "$out" | cut -f1))"
