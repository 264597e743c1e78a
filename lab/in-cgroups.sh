#!/usr/bin/env bash
# lab/in-cgroups.sh "DIR..." COMMAND...: move this process into each cgroup directory (made
# if missing), then become COMMAND (same PID). lab/lab boots each host's nspawn this way.
set -euo pipefail
dirs=$1
shift
for dir in $dirs; do
  mkdir -p "$dir"
  echo $$ >"$dir/cgroup.procs"
done
exec "$@"
