# shellcheck shell=bash
# Shared settings and helpers of the lab scripts (sourced, not run). Paths are relative to
# the repository root, which the sourcing script has made its working directory.

LAB_ROOT=$PWD
LAB_STATE=${LAB_STATE:-$LAB_ROOT/.lab}
LAB_CACHE=${LAB_CACHE:-/var/cache/parking-lab}
LAB_INVENTORY=${LAB_INVENTORY:-$LAB_ROOT/inventory/lab}
# Hosts booted and converged only when named (group lab_optin): the emulated arm64 edge.
LAB_INVENTORY_OPTIN=${LAB_INVENTORY_OPTIN:-$LAB_ROOT/inventory/lab-arm64}
LAB_BRIDGE=${LAB_BRIDGE:-plab0}
LAB_BRIDGE_ADDR=${LAB_BRIDGE_ADDR:-10.77.0.1/24}
LAB_ADMIN_USER=${LAB_ADMIN_USER:-ops}
LAB_BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-60}
# Boot timeout of a host of a foreign architecture (systemd under QEMU user-mode emulation).
LAB_BOOT_TIMEOUT_EMULATED=${LAB_BOOT_TIMEOUT_EMULATED:-300}
# Where binfmt_misc is mounted (tests/unit/test_lab_arch.py points it elsewhere to act out a
# machine without it).
LAB_BINFMT_DIR=${LAB_BINFMT_DIR:-/proc/sys/fs/binfmt_misc}
VENV=${VENV:-$LAB_ROOT/.venv}
# Ansible, Molecule and pytest come from the project venv (molecule calls ansible-* by name).
export PATH="$VENV/bin:$PATH"

# Mitogen's linear strategy for ansible-playbook (LAB_MITOGEN=1, the default; 0 runs Ansible's
# own): a host keeps one Python interpreter for the whole run instead of starting one per task,
# which is most of a converge's CPU on a 2-core machine (docs/lab.md, Mitogen). Exports the
# strategy for the commands the caller runs next; production playbooks run without it unless
# the operator sets the same two variables.
lab_mitogen() {
  [[ ${LAB_MITOGEN:-1} == 1 ]] || return 0
  local dir
  dir=$("$VENV/bin/python" -c 'import os, ansible_mitogen.plugins.strategy as s
print(os.path.dirname(s.__file__))' 2>/dev/null) ||
    die "mitogen is not installed in $VENV (make lab-deps installs it; LAB_MITOGEN=0 runs without)"
  export ANSIBLE_STRATEGY_PLUGINS=$dir ANSIBLE_STRATEGY=mitogen_linear
}

log() { printf 'lab: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The machine's own Debian architecture (amd64 here); other ones run under QEMU.
lab_native_arch() { dpkg --print-architecture; }

# The package list of an architecture's image: amd64 the whole lab's, arm64 the edge's only.
lab_image_packages() {
  case $1 in
    "$(lab_native_arch)") echo lab/image-packages.txt ;;
    arm64) echo lab/image-packages-arm64.txt ;;
    *) die "no lab image for architecture '$1' (amd64, arm64)" ;;
  esac
}

# The image directory for an architecture's current package list and build script:
# bookworm-<hash> (native), bookworm-<arch>-<hash> (foreign).
lab_image_dir() {
  local arch=${1:-$(lab_native_arch)} key name=bookworm
  key=$(cat "$(lab_image_packages "$arch")" lab/build-image.sh | sha256sum | cut -c1-12)
  [[ $arch == "$(lab_native_arch)" ]] || name=bookworm-$arch
  echo "$LAB_CACHE/images/$name-$key"
}

# The architecture of a built image directory (images from before the arm64 lab: amd64).
lab_image_arch() { cat "$1/arch" 2>/dev/null || echo amd64; }

# /proc/cpuinfo for an emulated arm64 host, bound over the machine's own (x86) one at boot
# (lab/lab provision_arm64): QEMU 7.2
# passes /proc/cpuinfo through, and TFLite's CPU detection (cpuinfo, for XNNPACK) crashes on
# x86 text in an aarch64 process. A Raspberry Pi 4's Cortex-A72, one entry per CPU of the
# machine (cpuinfo checks them against /sys/devices/system/cpu/possible).
lab_arm64_cpuinfo() {
  local cpu
  for ((cpu = 0; cpu < $(nproc --all); cpu++)); do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
    printf 'CPU revision\t: 3\n\n'
  done
}

# QEMU's name of a Debian architecture.
lab_qemu_arch() {
  case $1 in
    arm64) echo aarch64 ;;
    *) echo "$1" ;;
  esac
}

# Whether this machine runs binaries of a foreign architecture the way the lab needs: binfmt_misc
# mounted, Debian's qemu-user-static registered for it with the F (fix-binary: the kernel opens
# the interpreter once, so it works inside a host's root file system) and C (credentials: sudo
# and other setuid programs get their owner's rights; QEMU's own file is not setuid) flags.
# Mounts binfmt_misc and (re)registers the entry when it can. Prints why not and fails else.
lab_foreign_ready() {
  local arch=$1 qemu dir=$LAB_BINFMT_DIR entry flags interp magic mask
  qemu=$(lab_qemu_arch "$arch")
  entry=$dir/qemu-$qemu
  if [[ ! -f $dir/status ]] && ! mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null; then
    echo "$arch hosts need binfmt_misc (QEMU user-mode emulation), which this machine does not" \
      "offer: $dir cannot be mounted (a container without it, or no CONFIG_BINFMT_MISC)"
    return 1
  fi
  if [[ ! -x /usr/bin/qemu-$qemu-static ]]; then
    echo "$arch hosts need QEMU user-mode emulation: apt-get install qemu-user-static" \
      "binfmt-support (lab/install-deps.sh --arm64)"
    return 1
  fi
  if [[ ! -f $entry ]] && command -v update-binfmts >/dev/null; then
    update-binfmts --enable "qemu-$qemu" >/dev/null 2>&1 || true
  fi
  if [[ ! -f $entry ]]; then
    echo "binfmt_misc has no qemu-$qemu entry, and update-binfmts --enable qemu-$qemu did not" \
      "make one (is binfmt-support installed?)"
    return 1
  fi
  [[ $(head -n1 "$entry") == enabled ]] || echo 1 >"$entry"
  flags=$(awk '$1 == "flags:" {print $2}' "$entry")
  if [[ $flags != *F* || $flags != *C* ]]; then
    # Debian registers it without C: the same entry again, flags F, C (implies O), P kept.
    interp=$(awk '$1 == "interpreter" {print $2}' "$entry")
    magic=$(awk '$1 == "magic" {print $2}' "$entry" | sed 's/../\\x&/g')
    mask=$(awk '$1 == "mask" {print $2}' "$entry" | sed 's/../\\x&/g')
    echo -1 >"$entry"
    printf ':qemu-%s:M:0:%s:%s:%s:%sOCF' "$qemu" "$magic" "$mask" "$interp" \
      "$([[ $flags == *P* ]] && echo P)" >"$dir/register" 2>/dev/null || true
    flags=$(awk '$1 == "flags:" {print $2}' "$entry" 2>/dev/null)
    if [[ $flags != *F* || $flags != *C* ]]; then
      echo "qemu-$qemu is registered in binfmt_misc without the F and C flags (${flags:-gone})" \
        "and re-registering it failed: see docs/lab.md, arm64 hosts"
      return 1
    fi
    log "re-registered qemu-$qemu in binfmt_misc with flags $flags"
  fi
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

# "name address arch" for every host of the lab inventory that matches the Ansible patterns
# given (groups, names, `etcd:monitoring`, `all`), in inventory order. Hosts of the group
# lab_optin (inventory/lab-arm64: emulated arm64 edge hosts, minutes to boot and converge)
# match only a pattern that names them or a group of theirs alone (`edgearm1`, `edge_arm64`,
# `lab_optin`), never `all` or `edge`: the default lab stays as it was.
lab_hosts() {
  local pattern=${*:-all}
  "$VENV/bin/ansible-inventory" -i "$LAB_INVENTORY" -i "$LAB_INVENTORY_OPTIN" --list 2>/dev/null |
    "$VENV/bin/python" -c '
import json, re, subprocess, sys
ansible, inventories, pattern, native = sys.argv[1], sys.argv[2:4], sys.argv[4], sys.argv[5]
inventory = json.load(sys.stdin)
hostvars = inventory["_meta"]["hostvars"]

def members(group, seen=()):
    entry = inventory.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        if child not in seen:
            found |= members(child, (*seen, group))
    return found

optin = members("lab_optin")
named = set()
for word in filter(None, (w.lstrip("!&") for w in re.split(r"[:,\s]+", pattern))):
    hosts = {word} if word in hostvars else members(word)
    if hosts and hosts <= optin:
        named |= hosts
args = [ansible, *(a for i in inventories for a in ("-i", i)), pattern, "--list-hosts"]
wanted = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split("\n")[1:]
for name in (line.strip() for line in wanted):
    if name and (name not in optin or name in named):
        print(name, hostvars[name]["ansible_host"], hostvars[name].get("lab_arch", native))
' "$VENV/bin/ansible" "$LAB_INVENTORY" "$LAB_INVENTORY_OPTIN" "${pattern// /:}" "$(lab_native_arch)"
}

# The -i arguments for ansible-playbook: the lab's inventory, plus the opt-in hosts' when the
# pattern selects any of them (so a default converge never sees, nor waits for, an arm64 host).
lab_inventory_args() {
  printf '%s\n' -i "$LAB_INVENTORY"
  if lab_hosts "${1:-all}" | awk '{print $1}' | grep -qxFf <(lab_hosts lab_optin | awk '{print $1}'); then
    printf '%s\n' -i "$LAB_INVENTORY_OPTIN"
  fi
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
    # An emulated host's exe is QEMU (binfmt_misc); its comm is still systemd.
    if [[ $(readlink "/proc/$child/exe" 2>/dev/null) == */systemd ||
      $(cat "/proc/$child/comm" 2>/dev/null) == systemd ]]; then
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
