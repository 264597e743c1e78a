#!/usr/bin/env bash
# Make sure PostgreSQL server binaries are installed (Debian's package); the tests start their
# own throwaway clusters from them in temp dirs on free ports, never touching a system cluster.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
echo "installing PostgreSQL from Debian..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql postgresql-contrib >/dev/null
