"""The web pair lab (inventory/lab/web_pair) driven from the controller, the way a user would:
`hakit-lab` for the hosts and faults, `ansible-playbook playbooks/web_pair.yml` for the roles,
bench/http_probe.py inside the client for what users see through the service address.

Shared by the failover tests (tests/integration/test_web_pair.py), the benchmark
(bench/failover.py) and the demo (tools/demo.sh), which calls the small CLI at the bottom:

    python bench/webpair.py state | serve | failover NODE | boot NODE

Every wait is bounded and polls a condition; none sleeps a fixed time to let something happen.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import outage

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "inventory" / "lab" / "web_pair" / "hosts.yml"
PLAYBOOK = ROOT / "playbooks" / "web_pair.yml"
PROBE = ROOT / "bench" / "http_probe.py"

# As inventory/lab/web_pair/hosts.yml builds the pair.
NODES = ("node1", "node2")
CLIENT = "client"
GATEWAY = "gateway"
PING_NODE = "10.77.1.1"  # the gateway's LAN address, heartbeat_ping_nodes
VIP = "10.77.1.100"
URL = f"http://{VIP}/"
PREFERRED = "node1"  # the node of the resource group in haresources

# What a node looks like to heartbeat's own tools (cl_status), to the kernel (the VIP on eth0)
# and to the process table (apache2), one line `key=value` each.
STATE_SCRIPT = r"""
peer=$1 vip=$2
if cl_status hbstatus >/dev/null 2>&1; then
    echo heartbeat=running
    echo "resources=$(cl_status rscstatus 2>/dev/null)"
    echo "peer=$(cl_status nodestatus "$peer" 2>/dev/null)"
else
    echo heartbeat=stopped
fi
if ip -o -4 addr show dev eth0 | grep -q " inet $vip/"; then echo vip=yes; else echo vip=no; fi
if pidof apache2 >/dev/null; then echo apache=running; else echo apache=stopped; fi
if grep -qw apache2 /etc/ha.d/haresources 2>/dev/null; then echo apache_resource=yes; else echo apache_resource=no; fi
"""

# What a converge may change on a node: configuration files, addresses and running daemons.
SNAPSHOT_SCRIPT = r"""
find /etc/ha.d /etc/apache2 /etc/sysctl.d /var/www /etc/network/interfaces /etc/hosts /etc/hostname \
    -type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum
ip -o -4 addr show | awk '$2 != "mgmt0" {print "addr", $2, $4}'
echo "heartbeat pids: $(pgrep -d, -f '^heartbeat: ')"
echo "apache pids: $(pidof apache2)"
"""


class LabFailure(RuntimeError):
    """A lab or Ansible command failed; the message carries its output."""


# -- commands ------------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The environment `make` gives Ansible and the lab; variables set by the caller win."""
    env = dict(os.environ)
    cache = ROOT / ".cache" / "ansible"
    for key, value in {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_HOME": str(cache),
        "ANSIBLE_LOCAL_TEMP": str(cache / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(cache / "cp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }.items():
        env.setdefault(key, value)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "lab"), env.get("PYTHONPATH")]))
    return env


def lab(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """`hakit-lab ARGS`; raises LabFailure when `check` and it fails."""
    result = subprocess.run(
        [sys.executable, "-m", "hakit_lab", *args],
        env=_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise LabFailure(
            f"hakit-lab {' '.join(args)} failed ({result.returncode}): {(result.stderr + result.stdout).strip()}"
        )
    return result


def sh(
    host: str, script: str, *args: str, check: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`sh -c SCRIPT sh ARGS...` inside a lab host."""
    return lab("exec", host, "--", "sh", "-c", script, "sh", *args, check=check, timeout=timeout)


def converge(
    extra_vars: dict | None = None,
    inventories: tuple[Path, ...] = (),
    timeout: float = 1800,
    playbook: Path = PLAYBOOK,
    inventory: Path = INVENTORY,
    limit: str | None = None,
    check: bool = False,
):
    """Run `playbook` (playbooks/web_pair.yml) against the lab `inventory` (the web pair's) plus
    `inventories`, on the hosts `limit` selects (all by default), in check mode if `check`; returns
    the CompletedProcess (output in stdout)."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", str(inventory)]
    for inventory in inventories:
        argv += ["-i", str(inventory)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if limit:
        argv += ["--limit", limit]
    if check:
        argv.append("--check")
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def converged(
    extra_vars: dict | None = None,
    timeout: float = 1800,
    playbook: Path = PLAYBOOK,
    inventory: Path = INVENTORY,
) -> subprocess.CompletedProcess:
    """converge(), raising LabFailure with the tail of the output when the playbook fails."""
    result = converge(extra_vars, timeout=timeout, playbook=playbook, inventory=inventory)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.splitlines()[-40:])
        raise LabFailure(f"ansible-playbook {playbook.name} failed ({result.returncode}):\n{tail}")
    return result


def up() -> None:
    lab("up", "-i", str(INVENTORY))


def down() -> None:
    lab("down", check=False)


# -- what the pair looks like ----------------------------------------------------------------------


def other(node: str) -> str:
    return NODES[1] if node == NODES[0] else NODES[0]


def powered() -> dict[str, bool]:
    """Power state of every lab host, from `hakit-lab status`."""
    rows = lab("status", "--no-ssh").stdout.splitlines()[1:]
    return {row.split()[0]: row.split()[2] == "on" for row in rows if row.strip()}


def node_state(node: str) -> dict[str, str]:
    """{'heartbeat': running|stopped, 'resources': all|local|foreign|none|transition, 'peer':
    active|up|dead|..., 'vip': yes|no, 'apache': running|stopped, 'apache_resource': yes|no
    (Apache is a heartbeat resource)}; {'power': 'off'} if it is off."""
    result = sh(node, STATE_SCRIPT, other(node), VIP)
    if result.returncode != 0:
        return {"power": "off"} if "powered off" in result.stderr else {"error": result.stderr.strip()}
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def pair_state() -> dict[str, dict[str, str]]:
    return {node: node_state(node) for node in NODES}


def holders(state: dict[str, dict[str, str]] | None = None) -> list[str]:
    """The nodes that carry the service address."""
    state = state or pair_state()
    return [node for node in NODES if state[node].get("vip") == "yes"]


def settled(active: str, state: dict[str, dict[str, str]] | None = None) -> bool:
    """Both nodes run heartbeat, see each other and move nothing; `active` alone holds the
    service address and runs Apache, which the standby runs only when Apache is not a heartbeat
    resource. (rscstatus alone cannot say it: with auto_failback on, a node holding nothing
    reports 'local', as the preferred node holding the group does.)"""
    state = state or pair_state()
    a, b = state[active], state[other(active)]
    return (
        a.get("heartbeat") == b.get("heartbeat") == "running"
        and a.get("peer") == b.get("peer") == "active"
        and "transition" not in (a.get("resources"), b.get("resources"))
        and (a.get("vip"), b.get("vip")) == ("yes", "no")
        and a.get("apache") == "running"
        and b.get("apache") == ("stopped" if b.get("apache_resource") == "yes" else "running")
    )


def describe(state: dict[str, dict[str, str]] | None = None) -> str:
    state = state or pair_state()
    return "; ".join(f"{node}: " + ", ".join(f"{k}={v}" for k, v in s.items()) for node, s in state.items())


def wait_for(
    what: str,
    condition: Callable[[], object],
    timeout: float,
    interval: float = 0.2,
    state: Callable[[], str] | None = None,
):
    """Poll `condition` until it returns something true; returns that. On timeout raises
    TimeoutError naming `what` and the pair's state then (or what `state` says)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s; {(state or describe)()}")
        time.sleep(interval)


def snapshot(host: str) -> str:
    """Checksums of the files the roles write, the host's addresses and daemon pids."""
    return sh(host, SNAPSHOT_SCRIPT, check=True).stdout


# -- the client's view -------------------------------------------------------------------------------


class Probe:
    """bench/http_probe.py polling the service address from the client, every `interval` s (or
    `url` from `host`, reporting the page's first line containing `line`).

    Starts polling before the constructor returns. It ends by itself after `duration` s, or after
    `stop_after` answers in a row from `expect` (only those later than `not_before`, wall time).
    """

    def __init__(
        self,
        duration: float,
        expect: str | None = None,
        not_before: float = 0.0,
        stop_after: int = 5,
        interval: float = 0.1,
        timeout: float = 0.3,
        host: str = CLIENT,
        url: str = URL,
        line: str = "served-by",
        armed: bool = True,
    ):
        argv = [sys.executable, "-m", "hakit_lab", "exec", host, "--", "python3", "-", url, "--line", line]
        argv += ["--interval", str(interval), "--duration", str(duration), "--timeout", str(timeout)]
        if expect:
            argv += ["--expect", expect, "--not-before", str(not_before), "--stop-after", str(stop_after)]
        if not armed:
            argv.append("--armed-by-signal")
        self.duration = duration
        self.host = host
        with open(PROBE, "rb") as script:
            self.proc = subprocess.Popen(
                argv, env=_env(), stdin=script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        ready_line = self.proc.stdout.readline() if ready else ""
        if '"ready"' not in ready_line:
            self.proc.kill()
            raise LabFailure(f"the probe in {host} did not start: {ready_line}{self.proc.stderr.read()}")
        self.pid = json.loads(ready_line)["pid"]  # in the host's PID namespace

    def samples(self) -> list[dict]:
        """Wait for the probe to end (bounded by its duration) and return its samples."""
        try:
            out, err = self.proc.communicate(timeout=self.duration + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        if self.proc.returncode not in (0, -signal.SIGTERM, 128 + signal.SIGTERM):
            raise LabFailure(f"the probe in {self.host} failed ({self.proc.returncode}): {err.strip()}")
        return self._parse(out)

    def arm(self) -> None:
        """Let answers from now on end a probe started with armed=False."""
        sh(self.host, f"kill -USR1 {self.pid}", check=True)

    def stop(self) -> list[dict]:
        """End the probe now and return what it saw."""
        if self.proc.poll() is None:
            sh(self.host, f"kill {self.pid}")
        return self.samples()

    @staticmethod
    def _parse(out: str) -> list[dict]:
        samples = [
            json.loads(line) for line in out.splitlines() if line.startswith("{") and line.endswith("}")
        ]
        return [s for s in samples if "t" in s]


def served_by() -> str:
    """One request through the service address: the page's served-by line, or the error's name."""
    samples = Probe(duration=0.05, timeout=2.0).samples()
    return samples[0]["body"] if samples else "no answer"


def answered_by(sample: dict) -> str:
    """The node that answered one probe request, or 'failed'."""
    return next((n for n in NODES if sample["ok"] and n in sample["body"]), "failed")


def answers(samples: list[dict]) -> dict[str, int]:
    """How many requests each node answered, and how many failed ('failed')."""
    counts: dict[str, int] = {}
    for sample in samples:
        key = answered_by(sample)
        counts[key] = counts.get(key, 0) + 1
    return counts


# -- faults and recoveries -------------------------------------------------------------------------


def fault_under_probe(
    fault: tuple[str, ...], expect: str, bound: float, **probe: str
) -> tuple[outage.Outage, list[dict]]:
    """Start the probe (`probe`: Probe's url and host), inject `hakit-lab fault FAULT...`, and
    measure until `expect` answers 5 times in a row or `bound` seconds pass. Only requests sent
    after the fault command returned can end the probe. Returns the outage and the samples."""
    probe_ = Probe(duration=bound, expect=expect, armed=False, **probe)
    fault_at = time.time()
    lab("fault", *fault)
    probe_.arm()
    samples = probe_.samples()
    return outage.measure(samples, fault_at, expect), samples


def power_off_active(active: str, bound: float = 60.0) -> tuple[outage.Outage, list[dict]]:
    """Pull the plug on the node holding the resources; measure until the other one serves."""
    return fault_under_probe(("poweroff", active), other(active), bound)


def boot(node: str, timeout: float = 120.0) -> None:
    """Power the node on; returns once heartbeat on both nodes sees the other active and neither
    is moving resources."""
    lab("fault", "boot", node)

    def rejoined():
        state = pair_state()
        return all(
            s.get("heartbeat") == "running"
            and s.get("peer") == "active"
            and s.get("resources") != "transition"
            for s in state.values()
        )

    wait_for(f"{node} back in the cluster", rejoined, timeout)


def restore(timeout: float = 120.0) -> None:
    """Back to the inventory's pair: every fault undone, every host on, the inventory's settings
    (a test may have converged with auto_failback on), heartbeat running on both nodes and the
    preferred node alone holding the resources."""
    lab("fault", "heal")
    for host, on in powered().items():
        if not on:
            lab("fault", "boot", host)
    flipped = sh(PREFERRED, "grep -qx 'auto_failback on' /etc/ha.d/ha.cf").returncode == 0
    if flipped:
        converged()
    for node in NODES:
        sh(node, "cl_status hbstatus >/dev/null 2>&1 || service heartbeat start", check=True)
    wait_for(
        "both nodes see each other",
        lambda: all(s.get("peer") == "active" for s in pair_state().values()),
        timeout,
    )
    if not settled(PREFERRED):
        # Stopping heartbeat hands everything the other node held (also after a split brain) to
        # the preferred node; started again with auto_failback off, it stays the standby.
        standby = other(PREFERRED)
        sh(standby, "service heartbeat stop", check=True)
        wait_for(
            f"{PREFERRED} holding the resources alone",
            lambda: (
                holders() == [PREFERRED]
                and node_state(PREFERRED).get("resources") not in ("transition", None)
            ),
            timeout,
        )
        sh(standby, "service heartbeat start", check=True)
    wait_for(f"{PREFERRED} active, {other(PREFERRED)} standby", lambda: settled(PREFERRED), timeout)
    wait_for(f"the client served by {PREFERRED}", lambda: PREFERRED in served_by(), 30)


# -- CLI for tools/demo.sh ---------------------------------------------------------------------------


def _state_table() -> str:
    rows = [["NODE", "POWER", "HEARTBEAT", "RESOURCES", "SERVICE IP", "APACHE"]]
    for node, s in pair_state().items():
        if s.get("power") == "off":
            rows.append([node, "off", "-", "-", "-", "-"])
        else:
            rows.append(
                [
                    node,
                    "on",
                    s.get("heartbeat", "?"),
                    s.get("resources", "-"),
                    s.get("vip", "?"),
                    s.get("apache", "?"),
                ]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Drive the web pair lab (inventory/lab/web_pair).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("state", help="who runs heartbeat, holds the resources and the service IP")
    sub.add_parser("serve", help="one request from the client through the service IP")
    p = sub.add_parser("failover", help="power off NODE while the client polls; print the outage")
    p.add_argument("node", choices=NODES)
    p = sub.add_parser("boot", help="power NODE on and wait until it is back in the cluster")
    p.add_argument("node", choices=NODES)
    args = parser.parse_args(argv)

    if args.command == "state":
        print(_state_table())
    elif args.command == "serve":
        print(f"http://{VIP}/ from {CLIENT}: {re.sub(r'<[^>]*>', '', served_by())}")
    elif args.command == "failover":
        measured, samples = power_off_active(args.node)
        counts = answers(samples)
        if measured.to_expected_s is None:
            print(f"{other(args.node)} never answered within the probe's bound; {describe()}")
            return 1
        print(
            f"{other(args.node)} answered {measured.to_expected_s:.2f} s after {args.node} lost power; "
            f"the client had no answer for {measured.longest_gap_s:.2f} s "
            f"({counts.get('failed', 0)} failed requests, polling every 0.1 s)"
        )
    elif args.command == "boot":
        boot(args.node)
        print(f"{args.node} is back in the cluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
