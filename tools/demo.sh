#!/usr/bin/env bash
# make demo: the web pair (seed system S1: two Heartbeat nodes sharing a service address and
# Apache) on the lab's namespace hosts, provisioned by playbooks/web_pair.yml, with one real
# failover seen from a client. The lab is torn down on exit, also after an error or Ctrl-C;
# KEEP_LAB=1 leaves it up to look around (then `hakit-lab down` removes it).
#
# Needs root (the lab makes namespaces, bridges and mounts) and `make setup` (the Makefile's demo
# target runs it first). The first run builds the lab's base image (a few minutes).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$root/.venv/bin:$PATH"
export ANSIBLE_CONFIG="${ANSIBLE_CONFIG:-$root/ansible.cfg}"
export ANSIBLE_HOME="${ANSIBLE_HOME:-$root/.cache/ansible}"
export ANSIBLE_LOCAL_TEMP="${ANSIBLE_LOCAL_TEMP:-$root/.cache/ansible/tmp}"
export ANSIBLE_SSH_CONTROL_PATH_DIR="${ANSIBLE_SSH_CONTROL_PATH_DIR:-$root/.cache/ansible/cp}"
export ANSIBLE_NOCOLOR=1
inventory=inventory/lab/web_pair/hosts.yml
log="$root/.cache/demo/converge.log"

say() { printf '\n== %s\n' "$*"; }
pair() { "$root/.venv/bin/python" bench/webpair.py "$@"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "demo: the lab needs root (network namespaces, bridges, mounts); run it as root" >&2
  exit 1
fi
if [ ! -x "$root/.venv/bin/hakit-lab" ]; then
  echo "demo: no .venv/bin/hakit-lab; run \`make setup\` first (\`make demo\` does)" >&2
  exit 1
fi

say "Lab up: two nodes (node1, node2), a client and the LAN's gateway, from $inventory"
# A lab that is already up from another inventory is someone else's: up refuses it, and this
# script leaves it alone (the trap is set only once our lab is up).
hakit-lab up -i "$inventory"
finish() {
  if [ "${KEEP_LAB:-0}" = 1 ]; then
    say "The lab stays up (KEEP_LAB=1): \`hakit-lab status\`, \`hakit-lab ssh node1\`; \`hakit-lab down\` removes it"
  else
    say "Tearing the lab down"
    hakit-lab down
  fi
}
trap finish EXIT
trap 'exit 130' INT TERM

say "Provisioning: ansible-playbook playbooks/web_pair.yml (checks every node first, then converges one node at a time)"
mkdir -p "$(dirname "$log")"
if ! ansible-playbook -i "$inventory" playbooks/web_pair.yml >"$log" 2>&1; then
  tail -n 40 "$log"
  echo "demo: the playbook failed; the whole output is in $log" >&2
  exit 1
fi
sed -n '/^PLAY RECAP/,$p' "$log"
grep -o 'Expected takeover when the active node dies: [0-9.]* to [0-9.]* s' "$log" | head -n 1 || true
echo "(the playbook's whole output: $log)"

say "The pair: node1 holds the service address 10.77.1.100 and runs Apache; node2 stands by"
pair state
say "The client asks for the page through the service address"
pair serve

say "Pulling node1's plug while the client asks every 0.1 s"
pair failover node1
pair serve
pair state

say "Powering node1 on: heartbeat starts at boot, and with auto_failback off node1 rejoins as the standby"
pair boot node1
pair state
pair serve
