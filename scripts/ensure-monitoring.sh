#!/usr/bin/env bash
# Make sure Prometheus, Alertmanager and node_exporter from Debian are installed (promtool and
# amtool ship with them). The monitoring tests start them by hand in temp dirs on free loopback
# ports; policy-rc.d or a missing systemd keeps the packaged services from starting here.
set -euo pipefail
if command -v promtool >/dev/null && command -v amtool >/dev/null \
  && [ -x /usr/bin/prometheus ] && [ -x /usr/bin/prometheus-alertmanager ] \
  && [ -x /usr/bin/prometheus-node-exporter ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
echo "installing prometheus, prometheus-alertmanager, prometheus-node-exporter from Debian..." >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends \
  prometheus prometheus-alertmanager prometheus-node-exporter >/dev/null
