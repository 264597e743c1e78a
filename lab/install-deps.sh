#!/usr/bin/env bash
# Install what the lab needs on a fresh Debian 12 machine: host packages (apt) and the
# Ansible toolchain (pip, into the project's venv). Safe to rerun; does nothing when present.
#   lab/install-deps.sh [--arm64]   --arm64: also QEMU user-mode emulation for the arm64 hosts
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
APT_PACKAGES=(debootstrap systemd-container nftables iproute2 openssh-client util-linux shellcheck
  procps passwd ca-certificates gcc libc6-dev)
# gcc, libc6-dev: lab/clockshift.c, the soak's edge clock step (docs/soak.md).
# The opt-in arm64 edge hosts (docs/lab.md): Debian's static QEMU, registered in binfmt_misc.
[[ ${1:-} != --arm64 ]] || APT_PACKAGES+=(qemu-user-static binfmt-support)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "lab: installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -x $VENV/bin/python ]]; then
  echo "lab: $VENV is missing; run 'make venv' first" >&2
  exit 1
fi
stamp=$VENV/.lab-ansible-installed
if [[ ! -f $stamp || requirements/ansible.txt -nt $stamp ]]; then
  "$VENV/bin/python" -m pip install -q -r requirements/ansible.txt
  touch "$stamp"
fi
