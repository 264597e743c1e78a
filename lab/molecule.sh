#!/usr/bin/env bash
# Every Molecule scenario of tests/molecule/, as CI runs them: `common` first (its hosts are
# spread over the tiers), then the tier scenarios side by side — each owns disjoint lab hosts,
# and lab/lab serializes the boots and teardowns they share. One log per scenario under
# .lab/molecule/; a failing scenario's tail is printed and the script fails.
#   lab/molecule.sh [SCENARIO...]     (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lab/lib.sh
source lab/lib.sh

logs=$LAB_STATE/molecule
mkdir -p "$logs"
if (($#)); then
  scenarios=("$@")
else
  mapfile -t scenarios < <(find tests/molecule -mindepth 2 -maxdepth 2 -name molecule.yml \
    -printf '%h\n' | xargs -n1 basename | sort)
fi

run_one() { # run_one NAME: molecule test of one scenario, output to its log
  local name=$1 started=$SECONDS rc=0
  env MOLECULE_GLOB="tests/molecule/$name/molecule.yml" PATH="$VENV/bin:$PATH" \
    "$VENV/bin/molecule" test -s "$name" >"$logs/$name.log" 2>&1 || rc=$?
  printf '%-16s %s in %ss\n' "$name" "$([[ $rc == 0 ]] && echo passed || echo FAILED)" \
    "$((SECONDS - started))" >&2
  if ((rc != 0)); then
    tail -n 60 "$logs/$name.log" >&2
  fi
  return "$rc"
}

failed=0
parallel=()
for name in "${scenarios[@]}"; do
  if [[ $name == common ]]; then
    run_one common || failed=1
  else
    parallel+=("$name")
  fi
done
pids=()
for name in "${parallel[@]}"; do
  run_one "$name" &
  pids+=("$!")
done
for pid in "${pids[@]}"; do
  wait "$pid" || failed=1
done
exit "$failed"
