#!/usr/bin/env python3
"""The LVS-DR director pair on the lab (inventory/lab/lvs_dr, seed 003) driven from the
controller, and its figures.

Shared by the failure cases (tests/integration/test_lvs_dr.py) and `make bench-lvs`, which runs
this file: it brings the lab up (HAKIT_LAB_PREFIX and the inventory's management subnet), converges
playbooks/lvs.yml, measures and prints

- the time from a real server dying (power off) to ldirectord taking it out of the IPVS table;
- the client's outage when the active director dies (power off), from bench/http_probe.py polling
  the VIP every 100 ms;
- the share of long-lived connections, opened through the active director before it dies, that
  still work through the other one afterwards (the IPVS connection sync daemon),
- bench/ipvs_reconcile.py's 1000-real-server reconcile on the standby director,

and takes the lab down. Hosts, faults and commands go through webpair.lab/webpair.sh (hakit-lab);
every wait polls a condition with a bound.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import posixpath
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / ".collections"))

import outage  # noqa: E402
import takeover  # noqa: E402
import webpair  # noqa: E402
from ansible_collections.hakit.cluster.plugins.module_utils._ipvs import parse_rules  # noqa: E402
from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import parse_msec  # noqa: E402

INVENTORY = ROOT / "inventory" / "lab" / "lvs_dr" / "hosts.yml"
PLAYBOOK = ROOT / "playbooks" / "lvs.yml"
PROBE = ROOT / "bench" / "http_probe.py"
DIRECTORS = ("loadb1", "loadb2")
PREFERRED = "loadb1"
REALS = {"web1": "10.79.1.21", "web2": "10.79.1.22"}
WEIGHTS = {"web1": 2, "web2": 1}
CLIENT = "client"
VIP = "10.79.1.100"
URL = f"http://{VIP}/hostname.html"
TARGETS = {"removal_s": 2.0, "director_outage_s": 1.5, "survived_share": 0.95}

lab = webpair.lab
sh = webpair.sh


def wait_for(what: str, condition, timeout: float, interval: float = 1.0):
    """webpair.wait_for, describing the director pair on timeout; polls once a second, which the
    directors' single emulated CPU can afford."""
    return webpair.wait_for(what, condition, timeout, interval=interval, state=describe)


# The director as heartbeat, the kernel and the process table see it, one `key=value` a line.
STATE_SCRIPT = r"""
vip=$1
if cl_status hbstatus >/dev/null 2>&1; then
    echo heartbeat=running
    echo "resources=$(cl_status rscstatus 2>/dev/null)"
else
    echo heartbeat=stopped
fi
if ip -o -4 addr show dev eth0 | grep -q " inet $vip/"; then echo vip=yes; else echo vip=no; fi
# What `ldirectord ldirectord.cf status` checks, without its perl start (seconds of an emulated director's CPU,
# enough to make ldirectord's own checks time out while a wait polls this).
pid=$(cat /run/ldirectord.ldirectord.cf.pid 2>/dev/null)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo ldirectord=running; else echo ldirectord=stopped; fi
echo "sync=$(ipvsadm -L --daemon | awk '{print $1}' | sort | tr '\n' ,)"
"""

# Requests through the VIP from the client, each on its own connection: the served-by names.
SPLIT_SCRIPT = r"""
import collections, http.client, sys
url_host, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
seen = collections.Counter()
for _ in range(count):
    conn = http.client.HTTPConnection(url_host, 80, timeout=timeout)
    try:
        conn.request("GET", "/hostname.html", headers={"Connection": "close"})
        body = conn.getresponse().read().decode()
        line = next((x for x in body.splitlines() if "served-by" in x), "no served-by line")
        seen[line.split("served-by", 1)[1].split("<")[0].strip()] += 1
    except OSError as exc:
        seen[type(exc).__name__] += 1
    finally:
        conn.close()
print(dict(seen))
"""

# Long-lived connections: open N keep-alive connections through the VIP and use each once
# (enough packets for the sync daemon to send them), report ready, wait for a line on stdin,
# then use every one again at once, each allowed `timeout` s (TCP retransmits what the takeover
# drops), and report how many answered (see long_keepalive for Apache's side).
LONG_SCRIPT = r"""
import http.client, json, sys, threading
host, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
conns, first = [], 0
for _ in range(count):
    conn = http.client.HTTPConnection(host, 80, timeout=3)
    try:
        conn.request("GET", "/hostname.html")
        conn.getresponse().read()
        conns.append(conn)
        first += 1
    except OSError:
        conns.append(None)
print(json.dumps({"opened": first}), flush=True)
sys.stdin.readline()
answered = []
def again(conn):
    try:
        conn.sock.settimeout(timeout)
        conn.request("GET", "/hostname.html")
        if conn.getresponse().status == 200:
            answered.append(conn)
    except (OSError, http.client.HTTPException):
        pass
threads = [threading.Thread(target=again, args=(c,)) for c in conns if c is not None]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"opened": first, "alive": len(answered)}), flush=True)
"""


# -- the lab -------------------------------------------------------------------------------------


def up() -> None:
    lab("up", "-i", str(INVENTORY), timeout=1800)


def down() -> None:
    lab("down", check=False)


def converged() -> subprocess.CompletedProcess:
    return webpair.converged(timeout=2400, playbook=PLAYBOOK, inventory=INVENTORY)


# -- what the pair looks like ----------------------------------------------------------------------


def director_state(director: str) -> dict[str, str]:
    result = sh(director, STATE_SCRIPT, VIP)
    if result.returncode != 0:
        return {"power": "off"} if "powered off" in result.stderr else {"error": result.stderr.strip()}
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def holders() -> list[str]:
    return [d for d in DIRECTORS if director_state(d).get("vip") == "yes"]


def table(director: str) -> dict[str, int]:
    """The VIP's real servers in the director's IPVS table, address:port -> weight (from
    `ipvsadm -Sn`, parsed by the ipvs module's own parser)."""
    result = sh(director, "ipvsadm -Sn")
    if result.returncode != 0:
        return {}
    services = parse_rules(result.stdout)
    return {
        f"{real['address']}:{real['port']}": real["weight"]
        for service in services
        if service.get("address") == VIP
        for real in service["real_servers"]
    }


def split(count: int = 120, timeout: float = 10.0) -> dict[str, int]:
    """Who answers `count` requests through the VIP, each on a new connection allowed `timeout` s.

    Who answers is the point, not how fast: right after a takeover on a loaded machine a uml
    director took over 2 s to answer one request in ten (make test, both lanes busy)."""
    result = sh(
        CLIENT,
        "python3 - \"$@\" <<'EOF'\n" + SPLIT_SCRIPT + "EOF",
        VIP,
        str(count),
        str(timeout),
        timeout=600,
    )
    if result.returncode != 0:
        raise webpair.LabFailure(f"requests from {CLIENT} failed: {result.stderr.strip()}")
    return json.loads(result.stdout.strip().replace("'", '"'))


def settled(active: str = PREFERRED) -> bool:
    """`active` holds the VIP and runs ldirectord and the sync master, the other director runs
    heartbeat and the backup sync daemon only, and the table lists both real servers up."""
    a = director_state(active)
    b = director_state(other(active))
    return (
        a.get("heartbeat") == b.get("heartbeat") == "running"
        and (a.get("vip"), b.get("vip")) == ("yes", "no")
        and (a.get("ldirectord"), b.get("ldirectord")) == ("running", "stopped")
        and "master" in a.get("sync", "")
        and "backup" in b.get("sync", "")
        and all(w > 0 for w in table(active).values())
        and len(table(active)) >= len(REALS)
    )


def settled_active() -> str:
    """The active director if the pair is settled (one director holds the VIP, see settled()),
    else ''. A settled pair is up and converged already."""
    found = holders()
    return found[0] if len(found) == 1 and settled(found[0]) else ""


def other(director: str) -> str:
    return DIRECTORS[1] if director == DIRECTORS[0] else DIRECTORS[0]


def describe() -> str:
    return "; ".join(f"{d}: {director_state(d)} table={table(d)}" for d in DIRECTORS)


def active() -> str:
    """The director holding the VIP (the first, should two claim it)."""
    found = holders()
    if not found:
        raise webpair.LabFailure(f"no director holds the VIP: {describe()}")
    return found[0]


def restore(timeout: float = 240.0) -> str:
    """Back to a healthy pair: faults healed, every host on, Apache on the real servers, heartbeat
    on both directors, one of them active with both real servers in its table. Returns the
    active director. Which one is active does not matter (auto_failback off leaves the VIP where
    it is); forcing it back would cost a second failover per case."""
    lab("fault", "heal")
    for host, on in webpair.powered().items():
        if not on:
            lab("fault", "boot", host)
    for real in REALS:
        sh(real, "pidof apache2 >/dev/null || service apache2 start", check=True)
    for director in DIRECTORS:
        wait_for(f"{director} reachable", lambda d=director: "heartbeat" in director_state(d), timeout)
        sh(
            director,
            "cl_status hbstatus >/dev/null 2>&1 || systemctl start heartbeat",
            check=True,
            timeout=180,
        )
    return wait_for(
        "one director active with both real servers, the other standing by", settled_active, timeout
    )


# -- the client's view -------------------------------------------------------------------------------


def Probe(duration: float, **kwargs) -> webpair.Probe:
    """bench/http_probe.py polling the VIP's hostname page from the client (see webpair.Probe)."""
    return webpair.Probe(duration, url=URL, host=CLIENT, **kwargs)


def names(samples: list[dict]) -> dict[str, int]:
    """How many answers came from each server (its served-by name), and how many failed."""
    counts: dict[str, int] = {}
    for sample in samples:
        key = sample["body"].split("served-by", 1)[1].split("<")[0].strip() if sample["ok"] else "failed"
        counts[key] = counts.get(key, 0) + 1
    return counts


def fault_under_probe(fault: tuple[str, ...], expect: str, bound: float) -> tuple[outage.Outage, list[dict]]:
    """webpair.fault_under_probe through the VIP from the client."""
    return webpair.fault_under_probe(fault, expect, bound, url=URL, host=CLIENT)


# -- figures -----------------------------------------------------------------------------------------


def removal_time(real: str = "web2", bound: float = 30.0) -> float:
    """Seconds from `real` losing power to ldirectord taking it out of the active director's
    table (weight 0 with quiescent=yes, or gone), polled on the director every ~0.1 s."""
    address = f"{REALS[real]}:80"
    watch = (
        f"t0=$(date +%s.%N); end=$(( $(date +%s) + {int(bound)} )); "
        f"while [ $(date +%s) -le $end ]; do "
        f"w=$(ipvsadm -Ln | awk '$2 == \"{address}\" {{print $4}}'); "
        f'if [ -z "$w" ] || [ "$w" = 0 ]; then date +%s.%N; exit 0; fi; sleep 0.05; done; exit 1'
    )
    director = active()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hakit_lab", "exec", director, "--", "sh", "-c", watch],
        env=webpair._env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the watcher's ssh session is up and polling
    fault_at = time.time()
    lab("fault", "poweroff", real)
    out, err = proc.communicate(timeout=bound + 30)
    if proc.returncode != 0:
        raise webpair.LabFailure(f"{real} still in {director}'s table after {bound} s: {err.strip()}")
    return round(float(out.strip().splitlines()[-1]) - fault_at, 3)


@functools.cache
def role_defaults() -> dict[str, object]:
    """The lvs_director role's defaults (the lab inventory overrides some, not config_file)."""
    return yaml.safe_load((ROOT / "roles/lvs_director/defaults/main.yml").read_text())


CF = role_defaults()["lvs_director_config_file"]


def role_check_timings() -> dict[str, int]:
    """checkinterval and checktimeout from the lvs_director role's defaults."""
    return {key: role_defaults()[f"lvs_director_{key}"] for key in ("checkinterval", "checktimeout")}


@contextlib.contextmanager
def check_timings(director: str, timings: dict[str, int]):
    """`director`'s running ldirectord with these global check timings (negotiatetimeout follows
    checktimeout), its own file put back and reloaded afterwards."""
    edits = [f"s/^{key}=.*/{key}={value}/" for key, value in timings.items()]
    edits.append(f"s/^negotiatetimeout=.*/negotiatetimeout={timings['checktimeout']}/")
    sh(
        director,
        f"cp -p {CF} /run/hakit-bench-ldirectord.cf && sed -i {' '.join('-e ' + repr(e) for e in edits)} {CF} "
        f"&& ldirectord {posixpath.basename(CF)} reload",
        check=True,
    )
    try:
        yield
    finally:
        sh(
            director,
            f"cp -p /run/hakit-bench-ldirectord.cf {CF} && ldirectord {posixpath.basename(CF)} reload",
            check=True,
        )


def director_outage(bound: float = 150.0) -> tuple[outage.Outage, list[dict], list[takeover.Step]]:
    """The client's outage when the active director loses power, and its breakdown from the
    standby's heartbeat log (bench/takeover.py)."""
    director = active()
    with takeover.LogWatch(other(director), bound) as watch:
        measured, samples = fault_under_probe(("poweroff", director), "served-by web", bound)
        lines = watch.lines()
    return measured, samples, takeover.breakdown(lines, measured)


# Apache closes an idle keep-alive connection after KeepAliveTimeout (Debian: 5 s), sooner than a
# director takeover ends under the lab's heartbeat timings: for the measurement the real servers
# keep idle connections open longer, so what ends a connection is the director, not Apache.
LONG_KEEPALIVE = "/etc/apache2/conf-enabled/zz-hakit-bench-keepalive.conf"


def long_keepalive(on: bool) -> None:
    script = (
        f"printf 'KeepAlive On\\nKeepAliveTimeout 300\\nMaxKeepAliveRequests 0\\n' > {LONG_KEEPALIVE}"
        if on
        else f"rm -f {LONG_KEEPALIVE}"
    )
    for real in REALS:
        sh(real, f"{script} && apache2ctl graceful", check=True)


def synced(director: str) -> int:
    """Established connections to the VIP in `director`'s IPVS connection table (on the standby:
    what its backup sync daemon received)."""
    result = sh(director, f'ipvsadm -Lnc | awk \'$3 == "ESTABLISHED" && $5 == "{VIP}:80"\' | wc -l')
    return int(result.stdout.strip() or 0) if result.returncode == 0 else 0


def connection_survival(count: int = 40, bound: float = 150.0, answer_within: float = 30.0) -> dict[str, int]:
    """`count` keep-alive connections opened through the active director; how many the standby's
    sync daemon received, and how many still answer (each within `answer_within` s, TCP
    retransmitting) once the standby, after the active one lost power, holds the VIP."""
    long_keepalive(True)
    try:
        return _connection_survival(count, bound, answer_within)
    finally:
        long_keepalive(False)


def _connection_survival(count: int, bound: float, answer_within: float) -> dict[str, int]:
    director = active()
    standby = other(director)
    # An idle connection is synced once (its third packet, sync_threshold), so a standby that has
    # just booted must be listening before the connections open: its backup daemon starts at boot
    # (the ipvsadm service), maybe after heartbeat already sees it.
    wait_for(f"{standby}'s backup sync daemon", lambda: "backup" in director_state(standby)["sync"], bound)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hakit_lab",
            "exec",
            CLIENT,
            "--",
            "python3",
            "-c",
            LONG_SCRIPT,
            VIP,
            str(count),
            str(answer_within),
        ],
        env=webpair._env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = json.loads(proc.stdout.readline() or "{}")
    opened = first.get("opened", 0)
    if not opened:
        proc.kill()
        raise webpair.LabFailure(f"no connection opened through the VIP: {proc.stderr.read()}")
    # The master sends a partly filled sync buffer after 2 s (the kernel's IPVS_SYNC_FLUSH_TIME):
    # wait until the standby holds them all, or 15 s, and count what it got.
    with contextlib.suppress(webpair.LabFailure, TimeoutError):
        wait_for(f"{standby} holding {opened} synced connections", lambda: synced(standby) >= opened, 15)
    received = synced(standby)
    lab("fault", "poweroff", director)
    wait_for(f"{standby} holding the VIP", lambda: holders() == [standby], bound)
    out, _ = proc.communicate("go\n", timeout=answer_within + 60)
    result = json.loads(out.strip().splitlines()[-1])
    return {"opened": result["opened"], "synced": received, "alive": result["alive"]}


def file_settings(director: str, path: str, keys: tuple[str, ...], sep: str | None = None) -> dict[str, str]:
    """`key<sep>value` lines of a file on the director, for these keys, as written there."""
    text = sh(director, f"cat {path}", check=True).stdout
    pairs = (line.split(sep, 1) for line in text.splitlines())
    return {pair[0]: pair[1].strip() for pair in pairs if len(pair) == 2 and pair[0] in keys}


def heartbeat_timings(director: str = PREFERRED) -> dict[str, str]:
    """keepalive, deadtime and warntime from the director's ha.cf."""
    return file_settings(director, "/etc/ha.d/ha.cf", ("keepalive", "deadtime", "warntime"))


def check_settings(director: str = PREFERRED) -> dict[str, str]:
    """The global check timings in the director's ldirectord.cf."""
    return file_settings(director, CF, ("checkinterval", "checktimeout", "negotiatetimeout"), sep="=")


def figures() -> dict[str, object]:
    restore()
    timings = heartbeat_timings()
    checks = check_settings()
    removal = removal_time("web2")
    print(f"  (measured: real server removal {removal:.2f} s)", flush=True)
    restore()
    defaults = role_check_timings()
    removals = []
    for _ in range(3):
        with check_timings(active(), defaults):
            time.sleep(3)  # a few checks at the new timings
            removals.append(removal_time("web2"))
        restore()
    removal_defaults = statistics.median(removals)
    print(f"  (measured: real server removal {removals} s with the role's {defaults})", flush=True)
    measured, samples, steps = director_outage()
    print(
        f"  (measured: director outage {measured.longest_gap_s:.2f} s, answers {names(samples)}; "
        f"{takeover.describe(steps)})",
        flush=True,
    )
    restore()
    survival = connection_survival()
    opened, alive = survival["opened"], survival["alive"]
    print(
        f"  (measured: {alive}/{opened} long-lived connections survived; the standby had received "
        f"{survival['synced']} before the power-off)",
        flush=True,
    )
    restore()
    return {
        "heartbeat": timings,
        "checks": checks,
        "removal_s": removal,
        "removal_defaults_s": removal_defaults,
        "removal_defaults_max_s": max(removals),
        "role_check_timings": defaults,
        "director_outage_s": measured.longest_gap_s,
        "director_failed_requests": measured.failed_requests,
        "director_answers": names(samples),
        "director_breakdown": takeover.describe(steps),
        "connections_opened": opened,
        "connections_alive": alive,
        "connections_synced": survival["synced"],
        "survived_share": round(alive / opened, 3) if opened else 0.0,
    }


def report(values: dict[str, object]) -> str:
    lines = ["LVS-DR director pair (inventory/lab/lvs_dr, seed 003), measured on the lab:"]
    lines.append(
        f"  real server dies -> out of the IPVS table  {values['removal_s']:.2f} s   (target <= {TARGETS['removal_s']} s; "
        f"the lab's ldirectord.cf: {', '.join(f'{k} {v}' for k, v in values['checks'].items())})"
    )
    lines.append(
        f"    the same, the role's default checks      {values['removal_defaults_s']:.2f} s   "
        f"(median of 3, max {values['removal_defaults_max_s']:.2f} s; {', '.join(f'{k} {v}' for k, v in values['role_check_timings'].items())}, set on the running ldirectord)"
    )
    lines.append(
        f"  active director dies -> client outage      {values['director_outage_s']:.2f} s   "
        f"(target <= {TARGETS['director_outage_s']} s; {values['director_failed_requests']} failed requests, "
        f"answers {values['director_answers']})"
    )
    deadtime = parse_msec(values["heartbeat"].get("deadtime", "0")) / 1000
    lines.append(
        f"    of which heartbeat's deadtime            {deadtime:.2f} s   (the lab's ha.cf: "
        + ", ".join(f"{k} {v}" for k, v in sorted(values["heartbeat"].items()))
        + f"); takeover work after it {values['director_outage_s'] - deadtime:.2f} s"
    )
    lines.append(f"    breakdown (the standby's heartbeat log)  {values['director_breakdown']}")
    lines.append(
        f"  long-lived connections surviving failover  {values['connections_alive']}/{values['connections_opened']} "
        f"= {100 * values['survived_share']:.0f} %   (target >= {100 * TARGETS['survived_share']:.0f} %; "
        f"the standby held {values['connections_synced']} of them, sent by the sync daemon, before the power-off)"
    )
    return "\n".join(lines)


def reconcile_on_standby() -> None:
    """bench/ipvs_reconcile.py (1000 real servers) on the standby director, whose IPVS table is
    empty while ldirectord runs on the other one; it clears that table before and after."""
    standby = other(active())
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ipvs_reconcile.py"), "--lab-host", standby],
        env=webpair._env(),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise webpair.LabFailure(f"bench/ipvs_reconcile.py on {standby} failed: {done.stderr or done.stdout}")
    print(f"on the standby director {standby}: {done.stdout.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description="LVS-DR figures on the lab")
    parser.add_argument("--keep", action="store_true", help="leave the lab up afterwards")
    parser.add_argument("--no-converge", action="store_true", help="the lab is up and converged already")
    args = parser.parse_args()
    started = time.monotonic()
    if not args.no_converge:
        up()
        log = ROOT / ".cache" / "lvs-converge.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(converged().stdout)
        print(
            f"converged in {time.monotonic() - started:.0f} s (the playbook's output: {log.relative_to(ROOT)})"
        )
    try:
        values = figures()
        print(report(values), flush=True)
        reconcile_on_standby()
    finally:
        if not args.keep:
            down()
    print(f"  (wall time {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
