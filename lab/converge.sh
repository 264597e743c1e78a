#!/usr/bin/env bash
# Converge the lab with playbooks/site.yml (or another playbook) and report how long it took.
#   lab/converge.sh [--idempotent] [--limit PATTERN] [--playbook FILE] [-- ansible args]
# --idempotent fails unless every host reports changed=0 (the second-run check).
# Runs with Mitogen's strategy unless LAB_MITOGEN=0 (lab/lib.sh lab_mitogen).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

idempotent=0
playbook=playbooks/site.yml
limit=all
args=()
while (($#)); do
  case $1 in
    --idempotent) idempotent=1 ;;
    --limit) args+=(--limit "$2"); limit=$2; shift ;;
    --playbook) playbook=$2; shift ;;
    --) shift; args+=("$@"); break ;;
    *) args+=("$1") ;;
  esac
  shift
done

mkdir -p "$LAB_STATE"
out=$LAB_STATE/converge.log
started=$(date +%s.%N)
set +e
# The opt-in hosts' inventory (arm64 edge) joins only when the limit names them.
mapfile -t inventories < <(lab_inventory_args "$limit")
lab_mitogen
"$VENV/bin/ansible-playbook" "${inventories[@]}" "$playbook" "${args[@]}" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
seconds=$(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
((rc == 0)) || die "$playbook failed (rc $rc); log in $out"

if ((idempotent)); then
  changed=$(awk '/^PLAY RECAP/ {recap = 1; next} recap && / : ok=/ {
      for (i = 1; i <= NF; i++) if ($i ~ /^changed=/ && $i != "changed=0") print $1 }' "$out")
  [[ -z $changed ]] || die "not idempotent: second run changed $(echo "$changed" | paste -sd' ')"
  log "idempotent rerun of $playbook: changed=0 on every host in ${seconds}s"
else
  log "converged $playbook in ${seconds}s"
fi
