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
    freeze         every process of the host stopped for N seconds, then resumed, as a hypervisor's
                   steal, a live migration or a long fsync stalls a server (ns: SIGSTOP/SIGCONT to
                   every process in its namespace; uml: to the guest kernel's own processes, so
                   its user processes stop at their next system call or page fault; vm: QMP
                   stop/cont). Its clock goes on: timers and deadtimes see the whole stall.

poweroff/boot live in orchestrator.py (they share the boot path with `up`).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from . import net, state, sysutil
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


# -- freeze --------------------------------------------------------------------------------------

FREEZE_SETTLE_ROUNDS = 20  # an ns host's processes listed again until a round finds no new one


def _traced(pid: int) -> bool:
    """Whether a process is ptraced (a uml guest's user process: its kernel process traces it)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("TracerPid:"):
                return int(line.split()[1]) != 0
    except (OSError, ValueError):
        pass
    return False


def _stop_ns(host: Host, stopped: list[int]) -> None:
    """SIGSTOP every process of an ns host, adding each to `stopped` (the caller resumes them,
    whatever happens). A process forked while the list was read is found by the next round:
    stopped processes fork no more."""
    inode = sysutil.netns_inode(host.netns)
    if inode is None:
        raise LabError(f"host {host.name}: its network namespace {host.netns} is gone")
    for _ in range(FREEZE_SETTLE_ROUNDS):
        new = [p for p in sysutil.processes_in_netns({inode}) if p not in stopped]
        if not new:
            return
        for pid in new:
            stopped.append(pid)
            sysutil.kill(pid, signal.SIGSTOP)
    raise LabError(
        f"host {host.name}: still forking new processes after {FREEZE_SETTLE_ROUNDS} rounds of SIGSTOP"
    )


def _stop_uml(host: Host, stopped: list[int]) -> None:
    """SIGSTOP the guest kernel's own processes (not the user processes it traces: a traced process
    that gets SIGSTOP reports it to its kernel, which would treat it as the guest's own signal)."""
    from . import uml

    pid = uml.running_pid(host)
    if pid is None:
        raise LabError(f"host {host.name} is not running")
    for member in uml._group(pid):
        if not _traced(member):
            stopped.append(member)
            sysutil.kill(member, signal.SIGSTOP)


def freeze(host: Host, seconds: float) -> float:
    """Stop every process of a running host for `seconds`, then resume it; returns how long it was
    stopped, measured. The host is resumed however this ends (an interrupt included)."""
    if seconds <= 0:
        raise LabError("freeze needs a positive number of seconds")
    if not powered_on(host):
        raise LabError(f"host {host.name} is powered off: nothing to freeze")
    from . import vm

    stopped: list[int] = []
    started = time.monotonic()
    try:
        if host.kind == "vm":
            vm.qmp(host, "stop")
        elif host.kind == "uml":
            _stop_uml(host, stopped)
        else:
            _stop_ns(host, stopped)
        started = time.monotonic()
        time.sleep(seconds)
    finally:
        if host.kind == "vm":
            vm.qmp(host, "cont")
        for pid in stopped:
            sysutil.kill(pid, signal.SIGCONT)
    return time.monotonic() - started
