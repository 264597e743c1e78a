#!/usr/bin/env bash
# Make sure nginx from Debian is installed (and openssl for the test CA). The load balancer
# tests start nginx by hand with their own config on free loopback ports; policy-rc.d or a
# missing systemd keeps the packaged service from starting here, and the tests do not need it.
set -euo pipefail
if [ -x /usr/sbin/nginx ] && command -v openssl >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "installing nginx from Debian..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends nginx openssl >/dev/null
