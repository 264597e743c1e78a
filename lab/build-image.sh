#!/usr/bin/env bash
# Build the lab's base image once: debootstrap + the slow packages baked in with a chroot
# apt-get. The image is keyed by a hash of its package list and this script and kept under
# $LAB_CACHE; an image that exists already is reused. Prints the rootfs path.
#   lab/build-image.sh [amd64|arm64]
# amd64 (default): lab/image-packages.txt, every role. arm64: lab/image-packages-arm64.txt,
# edge hosts only, built and later booted through QEMU user-mode emulation (binfmt_misc).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

arch=${1:-$(lab_native_arch)}
packages=$(lab_image_packages "$arch")
# exit 3: this machine cannot run the architecture (the reason on stderr)
if [[ $arch != "$(lab_native_arch)" ]] && ! why=$(lab_foreign_ready "$arch"); then
  log "$why"
  exit 3
fi
image=$(lab_image_dir "$arch")
mkdir -p "$LAB_CACHE/images"
# One build at a time; a second caller waits and then reuses the first one's image.
# (one lock per architecture: an arm64 build takes minutes and must not hold up amd64)
lock=.lock
[[ $arch == "$(lab_native_arch)" ]] || lock=.lock-$arch
exec 9>"$LAB_CACHE/images/$lock"
flock 9
if [[ -f $image/complete ]]; then
  echo "$image/rootfs"
  exit 0
fi

mirror=$(lab_mirror)
base=$(awk '$1 == "@base" {print $2}' "$packages" | paste -sd, -)
mapfile -t baked < <(awk '!/^#/ && NF && $1 != "@base" {print $1}' "$packages")

started=$(date +%s)
tmp=$image.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
log "building image $(basename "$image") from $mirror (log: $tmp/build.log)"
# A foreign architecture: debootstrap runs its second stage through binfmt_misc (fix-binary
# QEMU, checked above) in the new root, like every chroot or nspawn command after it.
debootstrap --arch="$arch" --variant=minbase --include="$base" bookworm "$tmp/rootfs" "$mirror" \
  >"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; exit 1; }
booted=$(date +%s)

rootfs=$tmp/rootfs
in_image() {
  systemd-nspawn -q -D "$rootfs" -M lab-image-build --register=no --keep-unit \
    --resolv-conf=copy-host --timezone=off \
    --setenv=DEBIAN_FRONTEND=noninteractive "$@"
}
enabled_units() {
  systemctl --root="$rootfs" list-unit-files --state=enabled --no-legend | awk '{print $1}' | sort
}

enabled_before=$(enabled_units)
# Daemons must not start inside the build; Patroni creates its own cluster, not the package.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"
mkdir -p "$rootfs/etc/postgresql-common"
echo 'create_main_cluster = false' >"$rootfs/etc/postgresql-common/createcluster.conf"
{
  in_image apt-get update -q
  in_image apt-get install -y -q --no-install-recommends "${baked[@]}"
  in_image apt-get clean
} >>"$tmp/build.log" 2>&1 || { tail -n 30 "$tmp/build.log" >&2; exit 1; }
rm -f "$rootfs/usr/sbin/policy-rc.d"

# Units the baked packages enabled stay off until a role turns them on.
comm -13 <(echo "$enabled_before") <(enabled_units) | grep -E '\.(service|timer|socket)$' |
  xargs -r systemctl --root="$rootfs" disable >>"$tmp/build.log" 2>&1
systemctl --root="$rootfs" enable systemd-networkd.service >>"$tmp/build.log" 2>&1

# Per-host identity is written at `lab up`: no shared host keys, machine-id or hostname.
rm -f "$rootfs"/etc/ssh/ssh_host_* "$rootfs/etc/hostname"
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
echo '# lab hosts have no DNS; names come from /etc/hosts' >"$rootfs/etc/resolv.conf"
# No getty on a passive console; no periodic jobs that take apt's lock or touch disks the
# machine owns; no waiting for a network that is static.
systemctl --root="$rootfs" mask console-getty.service getty@.service apt-daily.timer \
  apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer systemd-networkd-wait-online.service >>"$tmp/build.log" 2>&1

sha256sum "$packages" lab/build-image.sh >"$tmp/inputs.sha256"
echo "$arch" >"$tmp/arch"
printf 'debootstrap_s=%s bake_s=%s total_s=%s size_mb=%s\n' "$((booted - started))" \
  "$(($(date +%s) - booted))" "$(($(date +%s) - started))" \
  "$(du -sm "$rootfs" | cut -f1)" >"$tmp/timing"
touch "$tmp/complete"
rm -rf "$image"
mv "$tmp" "$image"
log "image built: $(cat "$image/timing")"
# Older images of this architecture go, unless a host still runs on one.
for other in "$LAB_CACHE"/images/*/; do
  other=${other%/}
  [[ $other != "$image" && $(lab_image_arch "$other") == "$arch" ]] || continue
  grep -qsF "$other/" /proc/mounts || rm -rf "$other"
done
echo "$image/rootfs"
