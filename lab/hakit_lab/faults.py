"""Faults the lab injects on request. Each returns once the fault is in place.

    link-down/up   the switch side of a topology NIC (ns: veth peer; vm: qemu's set_link; uml: its
                   tap leaves the bridge); ns and vm hosts see their carrier go or come, a uml host only silence.
                   Remembered across the host's poweroff/boot, like an unplugged cable.
    partition A B  A and B exchange no frame on any topology network they share, while both keep
                   every other neighbour: nftables bridge rules in the switch namespace, matching
                   the two hosts' switch ports (see net.partition).
    heal           every partition and every cut link is undone (power states stay as they are).
    stop-service   `service NAME stop` inside the host, then its status must say it is stopped.
    stress         busy loops in the host's namespaces, ending by themselves after N seconds.

poweroff/boot live in orchestrator.py (they share the boot path with `up`).
"""

from __future__ import annotations

import os
import time

from . import net, state
from .model import Host, Lab, LabError
from .orchestrator import powered_on, run_in

LINK_TIMEOUT = 10.0


def set_link(lab: Lab, host: Host, ifname: str, up: bool) -> None:
    net.nic_index(host, ifname)  # a topology NIC, never mgmt0: raises with the host's NIC names
    state.set_link_down(host.name, ifname, not up)
    if not powered_on(host):
        return  # applied when the host boots
    if host.kind == "vm":
        from . import vm

        vm.set_link(host, ifname, up)
        return
    if host.kind == "uml":
        from . import uml

        uml.set_link(lab, host, ifname, up)  # the guest sees no carrier change (see uml.set_link)
        return
    net.set_port(host, ifname, up)
    deadline = time.monotonic() + LINK_TIMEOUT
    while True:
        seen = net.carrier(host.netns, ifname)
        # A NIC the host keeps administratively down has no carrier to show either way.
        if seen is None or seen == up:
            return
        if time.monotonic() > deadline:
            raise LabError(
                f"host {host.name} {ifname}: carrier still {'off' if up else 'on'} after {LINK_TIMEOUT:.0f} s"
            )
        time.sleep(0.02)


def partition(lab: Lab, a: Host, b: Host) -> int:
    if a.name == b.name:
        raise LabError("a partition needs two different hosts")
    rules = net.partition(lab, a, b)
    pairs = net.partitions()
    if (a.name, b.name) not in pairs and (b.name, a.name) not in pairs:
        raise LabError(f"partition {a.name} {b.name}: the rules are not in the switch's ruleset")
    return rules


def heal(lab: Lab) -> list[str]:
    """Undo every partition and cut link; returns what was healed."""
    healed = [f"partition {a} {b}" for a, b in sorted(net.partitions())]
    net.heal_partitions()
    for name, ifname in sorted(state.links_down()):
        if name in lab.hosts:
            set_link(lab, lab.hosts[name], ifname, True)
        else:
            state.set_link_down(name, ifname, False)
        healed.append(f"link {name} {ifname}")
    return healed


def stop_service(host: Host, service: str) -> str:
    """Stop a service the way an admin would; returns its init script's output."""
    stop = run_in(host, ["service", service, "stop"])
    if stop.returncode != 0:
        raise LabError(
            f"host {host.name}: `service {service} stop` failed ({stop.returncode}): {(stop.stderr or stop.stdout).strip()}"
        )
    check = run_in(host, ["service", service, "status"])
    # LSB: status 0 means running; 3 (or any other) means it is not.
    if check.returncode == 0:
        raise LabError(f"host {host.name}: {service} still reports running after `service {service} stop`")
    return (stop.stdout + stop.stderr).strip()


STRESS_SCRIPT = r"""
n=$1 seconds=$2 pids=
i=0
while [ "$i" -lt "$n" ]; do
    setsid timeout "$seconds" sh -c 'while :; do :; done' </dev/null >/dev/null 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
done
sleep 0.2
kill -0 $pids && echo $pids
"""


def stress(host: Host, seconds: float, workers: int | None = None) -> list[int]:
    """Start `workers` busy loops (default: one per CPU of the machine) in the host for `seconds`.

    Returns their pids as the host sees them; they end by themselves.
    """
    if seconds <= 0:
        raise LabError("stress needs a positive number of seconds")
    workers = workers or os.cpu_count() or 1
    result = run_in(host, ["sh", "-c", STRESS_SCRIPT, "stress", str(workers), f"{seconds:g}"])
    if result.returncode != 0:
        raise LabError(f"host {host.name}: stress did not start: {result.stderr.strip()}")
    return [int(p) for p in result.stdout.split()]
