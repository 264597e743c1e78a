#!/bin/sh
# Usage: pg.sh start|stop PORT ADDRESS CLIENT...
# The scenario's PostgreSQL: a throwaway cluster on the machine from Debian's binaries, listening
# on the lab bridge's ADDRESS:PORT, database and role "parking", trust for the CLIENT addresses
# only (no password to keep). stop removes it.
set -eu
action=$1 port=$2 address=$3
shift 3
dir=/var/tmp/parking-molecule-pg-$port
bindir=$(find /usr/lib/postgresql -path '*/bin/initdb' | sort -V | tail -n 1 | xargs dirname)
as_pg() { runuser -u postgres -- "$@"; }
case $action in
  start)
    if [ -f "$dir/data/postmaster.pid" ] && as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null; then
      exit 0
    fi
    rm -rf "$dir"
    install -d -o postgres -g postgres -m 0700 "$dir"
    as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=reject \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    {
      echo "listen_addresses = '$address'"
      echo "port = $port"
      echo "unix_socket_directories = '$dir'"
      echo "fsync = off"
      echo "max_connections = 100"
    } >>"$dir/data/postgresql.conf"
    for client in "$@"; do
      echo "host parking parking $client/32 trust" >>"$dir/data/pg_hba.conf"
    done
    as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w start >/dev/null
    as_pg "$bindir/psql" -h "$dir" -p "$port" -U postgres -q \
      -c "CREATE ROLE parking LOGIN" -c "CREATE DATABASE parking OWNER parking"
    ;;
  stop)
    if [ -d "$dir/data" ]; then
      as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop PORT ADDRESS CLIENT..." >&2
    exit 2
    ;;
esac
