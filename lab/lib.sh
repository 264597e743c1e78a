# shellcheck shell=bash
# Shared settings and helpers of the lab scripts (sourced, not run). Paths are relative to
# the repository root, which the sourcing script has made its working directory.

LAB_ROOT=$PWD
LAB_STATE=${LAB_STATE:-$LAB_ROOT/.lab}
LAB_CACHE=${LAB_CACHE:-/var/cache/parking-lab}
LAB_INVENTORY=${LAB_INVENTORY:-$LAB_ROOT/inventory/lab}
LAB_BRIDGE=${LAB_BRIDGE:-plab0}
LAB_BRIDGE_ADDR=${LAB_BRIDGE_ADDR:-10.77.0.1/24}
LAB_ADMIN_USER=${LAB_ADMIN_USER:-ops}
LAB_BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-60}
VENV=${VENV:-$LAB_ROOT/.venv}
# Ansible, Molecule and pytest come from the project venv (molecule calls ansible-* by name).
export PATH="$VENV/bin:$PATH"

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The image directory for the current package list and build script.
lab_image_dir() {
  local key
  key=$(cat lab/image-packages.txt lab/build-image.sh | sha256sum | cut -c1-12)
  echo "$LAB_CACHE/images/bookworm-$key"
}

# The Debian mirror this machine's apt uses, so the lab builds from the same place.
lab_mirror() {
  local uri
  uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
    grep -v -- '-security' | grep -m1 '/debian/\?$' || true)
  [[ -n $uri ]] || uri=$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{print $2}' | grep -v -- '-security' | grep -m1 '/debian/\?$' || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# "name address" for every host of the lab inventory that matches the Ansible patterns given
# (groups, names, `etcd:monitoring`, `all`), in inventory order.
lab_hosts() {
  local pattern=${*:-all}
  "$VENV/bin/ansible-inventory" -i "$LAB_INVENTORY" --list 2>/dev/null |
    "$VENV/bin/python" -c '
import json, subprocess, sys
inventory = json.load(sys.stdin)
hostvars = inventory["_meta"]["hostvars"]
wanted = subprocess.run(
    [sys.argv[1], "-i", sys.argv[2], sys.argv[3], "--list-hosts"],
    capture_output=True, text=True, check=True,
).stdout.split("\n")[1:]
for name in (line.strip() for line in wanted):
    if name:
        print(name, hostvars[name]["ansible_host"])
' "$VENV/bin/ansible" "$LAB_INVENTORY" "${pattern// /:}"
}

host_dir() { echo "$LAB_STATE/hosts/$1"; }

# PID of the host's systemd-nspawn, if it runs.
nspawn_pid() {
  local file pid
  file=$(host_dir "$1")/nspawn.pid
  [[ -f $file ]] || return 1
  pid=$(cat "$file")
  [[ -d /proc/$pid && $(cat "/proc/$pid/comm" 2>/dev/null) == systemd-nspawn ]] || return 1
  echo "$pid"
}

# PID (seen from the machine) of the host's own PID 1.
leader_pid() {
  local pid child
  pid=$(nspawn_pid "$1") || return 1
  for child in $(pgrep -P "$pid"); do
    if [[ $(readlink "/proc/$child/exe" 2>/dev/null) == */systemd ]]; then
      echo "$child"
      return 0
    fi
  done
  return 1
}

# Run a command inside a running host.
in_host() {
  local name=$1 pid
  shift
  pid=$(leader_pid "$name") || die "$name is not running"
  nsenter -t "$pid" -a -- "$@"
}

# True once a TCP port answers, tried from the machine.
tcp_open() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

# The host's own cgroup directories. Without systemd on the machine every nspawn would run
# its host's systemd in one shared subtree (/payload), and the hosts' systemds would race
# over the same unit cgroups (status=219/CGROUP); each host gets a subtree of its own.
host_cgroups() {
  local root
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    echo "/sys/fs/cgroup/parking-lab/$1"
    return 0
  fi
  for root in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
    [[ ! -d $root ]] || echo "$root/parking-lab/$1"
  done
}

# Remove a stopped host's cgroups, innermost first (best effort: busy ones stay).
remove_host_cgroups() {
  local dir
  for dir in $(host_cgroups "$1"); do
    [[ ! -d $dir ]] || find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}
