#!/usr/bin/env bash
# The arm64 edge suite (make test-lab-arm64), opt-in: not part of make test-lab. Builds (or
# reuses) both images, boots the central tier and the emulated arm64 edge host edgearm1,
# converges them with playbooks/site.yml (the edge's wheelhouse built here for aarch64), checks
# the edge tier's rerun changes nothing, then runs tests/lab/test_edge_arm64.py and
# bench/edge_arch.py. Torn down at the end, also on failure; timings in .lab/timings-arm64.txt.
# A machine that cannot run arm64 (no binfmt_misc, no QEMU) gets the test reported as skipped
# with the reason, and nothing is booted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

# The hosts the lane needs (central behind the VIP, its database and backup) and the lane.
TIER=${LAB_ARM64_TIER:-etcd:db:backup:central:lb}
mkdir -p "$LAB_STATE"
timings=$LAB_STATE/timings-arm64.txt
: >"$timings"
step() { # step NAME COMMAND...: run, time, record
  local name=$1 started=$SECONDS
  shift
  log "== $name"
  "$@"
  printf '%-28s %4ss\n' "$name" "$((SECONDS - started))" | tee -a "$timings" >&2
}
tests() { env PARKING_LAB=1 PARKING_LAB_ARM64=1 "$VENV/bin/pytest" -q -rs -p no:cacheprovider "$@"; }

if ! why=$(lab_foreign_ready arm64); then
  log "arm64 hosts cannot run on this machine: $why"
  tests tests/lab/test_edge_arm64.py
  exit 0
fi

teardown() {
  local rc=$?
  lab/lab down || rc=1
  log "timings (also in $timings):"
  cat "$timings" >&2
  exit "$rc"
}
trap teardown EXIT

lab/lab down
step "image amd64 (build/reuse)" lab/build-image.sh
step "image arm64 (build/reuse)" lab/build-image.sh arm64
step "lab up (central tier)" lab/lab up "$TIER"
step "lab up edgearm1 (emulated)" lab/lab up edge_arm64
step "converge site.yml" lab/converge.sh --limit "$TIER:edge_arm64"
step "idempotent rerun edge.yml" lab/converge.sh --idempotent --limit edge_arm64 --playbook playbooks/edge.yml
step "pytest test_edge_arm64" tests tests/lab/test_edge_arm64.py
step "bench/edge_arch.py" "$VENV/bin/python" bench/edge_arch.py
