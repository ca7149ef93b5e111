#!/usr/bin/env python3
"""Benchmark: the outage a client sees when the active node of the web pair loses power.

Brings up the lab web pair (inventory/lab/web_pair: two ns nodes, a client, the gateway),
converges it with playbooks/web_pair.yml and measures, for each configuration, per trial: the
client polls the service address every 100 ms (bench/http_probe.py inside the client), the node
holding the address is powered off (`hakit-lab fault poweroff`), the client's samples give the
outage (bench/outage.py), the node is powered on again and rejoins. Configurations:

    seed         heartbeat with the seed documents' timings (keepalive 2, deadtime 30, warntime 10,
                 initdead 60), converged by the roles; --seed-trials (1)
    keepalived   the reference: keepalived VRRPv2 with advert_int 1, installed (apt) and configured by
                 this script on the same nodes, heartbeat stopped, Apache running on both; --trials
    defaults     heartbeat with this collection's defaults, converged by the roles, the seeds' layout:
                 Apache is a heartbeat resource (started on takeover), the address moved by the
                 role's lean agent (heartbeat_ipaddr2_agent: hakit); --trials (5)
    defaults, OCF IPaddr2
                 the same with Debian's wrapper around the OCF IPaddr2 agent moving the address
                 (heartbeat_ipaddr2_agent: ocf); --trials
    defaults, address only
                 the same timings, Apache running on both nodes (apache_managed_by_heartbeat: false)
                 and only the address in haresources: what keepalived's row does; --trials

Then a soak (--soak-seconds, 600; 0 skips it): the pair with the defaults, both nodes CPU-stressed
(`hakit-lab fault stress`), the client polling all along; counts spurious takeovers (heartbeat
declaring its peer dead) and what the client saw. The lab is torn down at the end (--keep leaves it).

    outage       the longest time the client got no answer (from its last answer to its next one)
    to other     from the poweroff command to the first answer of the other node (includes the
                 lab CLI's own start, about 0.2 s)

From the repository root: `make bench-failover`, or .venv/bin/python bench/failover.py [--help].
Issue 4's target for the defaults: median outage <= 1.0 s, 0 spurious takeovers in the soak.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import outage
import webpair
import yaml

SEED_TIMINGS = {
    "heartbeat_keepalive": 2,
    "heartbeat_deadtime": 30,
    "heartbeat_warntime": 10,
    "heartbeat_initdead": 60,
}
HEARTBEAT_DEFAULTS = yaml.safe_load(
    (webpair.ROOT / "roles" / "heartbeat" / "defaults" / "main.yml").read_text()
)

KEEPALIVED_CONF = """\
# hakit bench/failover.py: the reference, keepalived VRRPv2 with a one-second advertisement.
global_defs {{
    router_id {node}
}}
vrrp_instance web_pair {{
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority {priority}
    advert_int 1
    virtual_ipaddress {{
        {vip}/24 dev eth0
    }}
}}
"""


@dataclass
class Result:
    name: str
    trials: list[outage.Outage] = field(default_factory=list)

    def row(self) -> list[str]:
        gaps = [t.longest_gap_s if t.to_expected_s is not None else None for t in self.trials]
        others = [t.to_expected_s for t in self.trials]
        return [self.name, str(len(self.trials)), outage.summary(gaps), outage.summary(others)]


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def trials(result: Result, count: int, bound: float, back_in: float) -> None:
    """Power off whichever node holds the address, measure, power it on; `count` times."""
    for i in range(count):
        active = webpair.holders()[0]
        measured, _ = webpair.power_off_active(active, bound=bound)
        result.trials.append(measured)
        say(
            f"{result.name} #{i + 1}: {active} off -> {webpair.other(active)} answered after "
            f"{measured.to_expected_s} s, outage {measured.longest_gap_s} s"
        )
        webpair.lab("fault", "boot", active)
        back_in_cluster(active, back_in)


# After a node rejoins, the next trial waits this long: in one trial that powered off the other
# node 2 s after the rejoined node's heartbeat had started, that heartbeat took 2 s, not 0.5 s,
# to declare its peer dead (11:56 on 2026-11-22). Trials measure a settled pair.
SETTLE_S = 5.0


def back_in_cluster(node: str, timeout: float) -> None:
    webpair.wait_for(
        f"{node} back in the cluster",
        lambda: all(
            s.get("peer") == "active" and s.get("resources") != "transition"
            for s in webpair.pair_state().values()
        ),
        timeout,
    )
    time.sleep(SETTLE_S)


# -- keepalived ------------------------------------------------------------------------------------


def keepalived_pair() -> None:
    """Replace heartbeat by keepalived on both nodes: Apache runs on both, VRRP moves the address."""
    for node in reversed(webpair.NODES):  # the standby first: the active one keeps serving meanwhile
        webpair.sh(
            node,
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends keepalived"
            " >/tmp/keepalived-install.log 2>&1 || { cat /tmp/keepalived-install.log; exit 1; }",
            check=True,
            timeout=600,
        )
    for node in reversed(webpair.NODES):
        webpair.sh(node, "service heartbeat stop && update-rc.d heartbeat disable", check=True)
    for priority, node in zip((150, 100), webpair.NODES, strict=True):
        conf = KEEPALIVED_CONF.format(node=node, priority=priority, vip=webpair.VIP)
        webpair.sh(
            node,
            'printf "%s" "$1" >/etc/keepalived/keepalived.conf && update-rc.d apache2 enable'
            " && update-rc.d keepalived enable && service apache2 start && service keepalived restart",
            conf,
            check=True,
        )
    keepalived_settled(60)


def keepalived_settled(timeout: float) -> None:
    """One node holds the address (node1 when it is up: it has the higher priority) and serves."""

    def ok():
        state = webpair.pair_state()
        up = [n for n in webpair.NODES if state[n].get("power") != "off"]
        want = [webpair.PREFERRED] if webpair.PREFERRED in up else up
        return (
            webpair.holders(state) == want
            and all(state[n].get("apache") == "running" for n in up)
            and want[0] in webpair.served_by()
        )

    webpair.wait_for("keepalived settled", ok, timeout)


def keepalived_trials(result: Result, count: int) -> None:
    for i in range(count):
        active = webpair.holders()[0]
        measured, _ = webpair.power_off_active(active, bound=30)
        result.trials.append(measured)
        say(
            f"{result.name} #{i + 1}: {active} off -> {webpair.other(active)} answered after "
            f"{measured.to_expected_s} s, outage {measured.longest_gap_s} s"
        )
        webpair.lab("fault", "boot", active)
        keepalived_settled(60)


# -- soak ------------------------------------------------------------------------------------------


SOAK_LOG = r"""
case "$1" in
mark) wc -l </var/log/ha-log ;;
since) tail -n +"$(($2 + 1))" /var/log/ha-log ;;
esac
"""


class HostStalls(threading.Thread):
    """How long the machine itself stops: a real-time thread that sleeps 10 ms, over and over.

    Heartbeat runs real-time too, so the busy loops of the stress fault cannot delay either; when
    this thread wakes up late, every process on the machine did (the hypervisor's steal time),
    and a late heartbeat then is not heartbeat's. Also reads the steal time from /proc/stat.
    """

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.longest_s = 0.0
        self.over_200ms = 0
        self.steal_s = 0.0
        self.realtime = False

    @staticmethod
    def _steal_jiffies() -> int:
        with open("/proc/stat") as stat:
            return int(stat.readline().split()[8])

    def run(self) -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(10))
            self.realtime = True
        except OSError:
            self.realtime = False
        steal = self._steal_jiffies()
        while not self.stop.is_set():
            before = time.monotonic()
            time.sleep(0.01)
            late = time.monotonic() - before - 0.01
            self.longest_s = max(self.longest_s, late)
            self.over_200ms += late > 0.2
        self.steal_s = (self._steal_jiffies() - steal) / os.sysconf("SC_CLK_TCK")


def soak(seconds: float) -> str:
    """Both nodes CPU-stressed for `seconds` with the client polling; what heartbeat and the client saw."""
    marks = {n: int(webpair.sh(n, SOAK_LOG, "mark", check=True).stdout) for n in webpair.NODES}
    # heartbeat's processes that run real-time (SCHED_RR), out of all of them, per node.
    policies = {
        n: webpair.sh(
            n,
            'rr=0; all=0; for p in $(pidof heartbeat); do all=$((all + 1)); chrt -p "$p" | grep -q SCHED_RR && '
            'rr=$((rr + 1)); done; echo "$rr/$all"',
        ).stdout.strip()
        for n in webpair.NODES
    }
    stalls = HostStalls()
    stalls.start()
    probe = webpair.Probe(duration=seconds)
    for node in webpair.NODES:
        webpair.lab("fault", "stress", node, f"{seconds:g}")
    samples = probe.samples()
    stalls.stop.set()
    stalls.join()
    logs = {n: webpair.sh(n, SOAK_LOG, "since", str(marks[n]), check=True).stdout for n in webpair.NODES}
    declared_dead = sum(line.count(": is dead") for text in logs.values() for line in text.splitlines())
    acquired = sum(
        "Resources being acquired" in line or "Taking over resource group" in line
        for t in logs.values()
        for line in t.splitlines()
    )
    late = [
        int(line.split("interval ")[1].split()[0])
        for text in logs.values()
        for line in text.splitlines()
        if "Late heartbeat" in line and "interval " in line
    ]
    counts = webpair.answers(samples)
    gap = outage.measure(samples, samples[0]["t"], webpair.PREFERRED).longest_gap_s if samples else 0.0
    return (
        f"soak: {seconds:g} s, both nodes CPU-stressed, the defaults: {declared_dead} peer(s) declared dead, "
        f"{acquired} takeover(s); late heartbeats {len(late)} (longest {max(late, default=0)} ms); "
        f"client: {len(samples)} requests, answered by {', '.join(f'{n} {c}' for n, c in sorted(counts.items()))}, "
        f"longest gap {gap:.2f} s; the machine itself (a {'real-time' if stalls.realtime else 'NOT real-time'} "
        "thread sleeping 10 ms): longest stall "
        f"{stalls.longest_s * 1000:.0f} ms, {stalls.over_200ms} over 200 ms, steal time {stalls.steal_s:.1f} s; "
        f"heartbeat processes running SCHED_RR: {', '.join(f'{n} {p}' for n, p in policies.items())}"
    )


# -- main ------------------------------------------------------------------------------------------


def address_only_vars() -> dict:
    """The lab inventory's resource groups without the Apache service; Apache runs on both nodes."""
    group = yaml.safe_load(webpair.INVENTORY.read_text())["all"]["children"]["web_pair"]["vars"]
    groups = [
        dict(g, resources=[r for r in g["resources"] if r.get("type") != "service"])
        for g in group["heartbeat_resource_groups"]
    ]
    return {"heartbeat_resource_groups": groups, "apache_managed_by_heartbeat": False}


def table(results: list[Result]) -> str:
    rows = [["configuration", "trials", "outage median / max", "to the other node median / max"]]
    rows += [r.row() for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5, help="trials for keepalived and the defaults (5)")
    parser.add_argument("--seed-trials", type=int, default=1, help="trials with the seed timings (1)")
    parser.add_argument("--soak-seconds", type=float, default=600, help="soak length; 0 skips it (600)")
    parser.add_argument("--keep", action="store_true", help="leave the lab up at the end")
    args = parser.parse_args()

    t0 = time.monotonic()
    defaults = (
        f"keepalive {HEARTBEAT_DEFAULTS['heartbeat_keepalive']}, deadtime {HEARTBEAT_DEFAULTS['heartbeat_deadtime']}, "
        f"warntime {HEARTBEAT_DEFAULTS['heartbeat_warntime']}, initdead {HEARTBEAT_DEFAULTS['heartbeat_initdead']}"
    )
    seed = Result("seed documents: heartbeat keepalive 2, deadtime 30, warntime 10, initdead 60")
    reference = Result("keepalived VRRPv2, advert_int 1")
    ours = Result(f"hakit.cluster defaults: heartbeat {defaults}")
    ocf_agent = Result("the same, the address moved by Debian's OCF IPaddr2 agent")
    address_only = Result("the same, Apache on both nodes, only the address in haresources")
    soak_line = "soak: skipped (--soak-seconds 0)"

    say(f"lab up: {webpair.INVENTORY.relative_to(webpair.ROOT)}")
    webpair.up()
    try:
        if args.seed_trials > 0:
            say("converging the web pair with the seed documents' timings")
            webpair.converged(SEED_TIMINGS)
            webpair.restore()
            trials(seed, args.seed_trials, bound=90, back_in=180)

        say("converging the web pair with the collection's defaults")
        webpair.converged()
        webpair.restore()
        trials(ours, args.trials, bound=30, back_in=120)

        if args.soak_seconds > 0:
            say(f"soak: {args.soak_seconds:g} s with both nodes CPU-stressed")
            webpair.restore()
            soak_line = soak(args.soak_seconds)
            say(soak_line)

        say("converging: the address moved by Debian's OCF IPaddr2 agent")
        webpair.converged({"heartbeat_ipaddr2_agent": "ocf"})
        webpair.restore()
        trials(ocf_agent, args.trials, bound=30, back_in=120)

        say("converging: Apache on both nodes, only the address moves")
        webpair.converged(address_only_vars())
        webpair.restore()
        trials(address_only, args.trials, bound=30, back_in=120)

        say("keepalived in place of heartbeat on both nodes")
        keepalived_pair()
        keepalived_trials(reference, args.trials)
    finally:
        if not args.keep:
            say("lab down")
            webpair.down()

    print()
    print(
        f"Client-observed outage when the active node loses power: HTTP GET of http://{webpair.VIP}/ "
        "sent every 0.1 s from the client, each with a 0.3 s timeout and without waiting for the earlier ones; "
        "outage = longest time without an answer."
    )
    print(table([r for r in (seed, reference, ours, ocf_agent, address_only) if r.trials]))
    print(soak_line)
    for result in (ours, ocf_agent, address_only):
        gaps = [t.longest_gap_s for t in result.trials if t.to_expected_s is not None]
        if gaps:
            print(f"target median outage <= 1.0 s, {result.name}: {statistics.median(gaps):.2f} s")
    print(f"bench wall time: {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
