# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hakit-uplinkd: keeps a host's traffic on a working uplink (seed 000's pingcheck, failcase,
newdns, checkoldping and backnormal as one daemon). Python standard library only.

Every round it probes each uplink's targets through that uplink (hakit_uplink.UplinkProber, pinned
at layer 2 to the uplink's interface and gateway), feeds the outcomes to the failover state
machine (hakit_uplink.UplinkFailover) and, on a transition: replaces the default route, moves the
optional service address of a backup uplink, then (in a worker thread, so probing goes on) updates
the DNS records to the new uplink's public address (dyndns2 over HTTP, RFC 2136 with TSIG through
nsupdate) and runs the hooks. Every transition is logged with its reason. On SIGTERM it restores
normal networking (the preferred uplink's default route, no backup address) and exits, so the node
that loses the cluster's resources is left as backnormal left it.

    hakit-uplinkd [--config /etc/hakit-uplink/uplink.json]
    hakit-uplinkd --check-config FILE     # the settings rules of the role's validation; exit 1 if broken
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.environ.get("HAKIT_UPLINK_LIB", "/usr/lib/hakit-uplink"))
import hakit_uplink as uplink

DEFAULT_CONFIG = "/etc/hakit-uplink/uplink.json"
USER_AGENT = "hakit-uplinkd/1.0 hakit.cluster"
log = logging.getLogger("hakit-uplinkd")


def load(path):
    with open(path) as f:
        return json.load(f)


def settings_problems(cfg, secrets):
    """The role's validation rules (hakit_uplink.config_problems) on a configuration file."""
    merged = dict(cfg)
    merged["dyndns2"] = [
        dict(u, password=p) for u, p in zip(cfg.get("dyndns2", []), secrets.get("dyndns2", []), strict=False)
    ]
    # The TSIG key (name and secret) is in the key file nsupdate reads.
    merged["rfc2136"] = [
        dict(u, key_name=u.get("key_file"), key_secret=u.get("key_file")) for u in cfg.get("rfc2136", [])
    ]
    if len(merged["dyndns2"]) != len(cfg.get("dyndns2", [])):
        return ["the secrets file holds fewer dyndns2 passwords than the configuration has updates"]
    return uplink.config_problems(merged, var="")


# -- actions --------------------------------------------------------------------------------------


class Network:
    """The routing side of a switch: default route, backup service addresses."""

    def __init__(self, uplinks, run=subprocess.run):
        self.uplinks = uplinks
        self.run = run

    def _ip(self, *args):
        result = self.run(["ip", *list(args)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log.error("ip %s failed: %s", " ".join(args), (result.stderr or result.stdout).strip())
        return result

    def activate(self, name):
        active = next(u for u in self.uplinks if u["name"] == name)
        self._ip("route", "replace", "default", "via", active["gateway"], "dev", active["interface"])
        for u in self.uplinks:
            address = u.get("service_address")
            if not address:
                continue
            present = (f" {address} ") in self._ip("-4", "-o", "addr", "show", "dev", u["interface"]).stdout
            if u is active and not present:
                self._ip("addr", "add", address, "dev", u["interface"])
                try:
                    # Tell the router's ARP cache at once (IPaddr2's send_arp does the same).
                    uplink.announce_address(u["interface"], address.split("/")[0])
                except OSError as e:
                    log.error("gratuitous ARP for %s on %s failed: %s", address, u["interface"], e)
            elif u is not active and present:
                self._ip("addr", "del", address, "dev", u["interface"])


class Dyndns2:
    """The dyndns2 protocol (No-IP, DynDNS and others): GET with basic auth and myip=."""

    def __init__(self, entry, password, timeout=5.0):
        self.entry, self.password, self.timeout = entry, password, timeout
        self.name = "dyndns2 {}".format(entry["hostname"])

    def update(self, address):
        query = urllib.parse.urlencode({"hostname": self.entry["hostname"], "myip": address})
        url = self.entry["url"] + ("&" if "?" in self.entry["url"] else "?") + query
        auth = base64.b64encode(("{}:{}".format(self.entry["username"], self.password)).encode()).decode()
        request = urllib.request.Request(
            url, headers={"Authorization": "Basic " + auth, "User-Agent": USER_AGENT}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read().decode(errors="replace").strip()
        except (urllib.error.URLError, OSError) as e:
            return False, "no answer: {}".format(getattr(e, "reason", e))
        # "good ADDR" or "nochg ADDR" mean done; badauth, nohost, abuse, 911 ... do not.
        return answer.split(" ")[0] in ("good", "nochg"), answer


class Rfc2136:
    """An RFC 2136 update signed with TSIG, sent by nsupdate (the key is read from a 0600 file)."""

    def __init__(self, entry, timeout=5):
        self.entry, self.timeout = entry, timeout
        self.name = "rfc2136 {}".format(entry["record"])

    def update(self, address):
        e = self.entry
        script = (
            f"server {e['server']} {e.get('port', 53)}\nzone {e['zone']}\nupdate delete {e['record']} A\n"
            f"update add {e['record']} {e.get('ttl', 60)} A {address}\nsend\n"
        )
        try:
            result = subprocess.run(
                ["nsupdate", "-k", e["key_file"], "-t", str(self.timeout)],
                input=script,
                capture_output=True,
                text=True,
                timeout=self.timeout * 3,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, str(err)
        return result.returncode == 0, (result.stderr or result.stdout).strip() or "NOERROR"


class Announcer(threading.Thread):
    """Runs the DNS updates and hooks of the latest transition, away from the probe loop; retries
    failed DNS updates until they succeed or a newer transition replaces them."""

    def __init__(self, providers, hooks_dir, public, retry=2.0):
        threading.Thread.__init__(self, name="announcer", daemon=True)
        self.providers, self.hooks_dir, self.public, self.retry = providers, hooks_dir, public, retry
        self.cond = threading.Condition()
        self.wanted = None
        self.generation = 0
        self.status = {"address": None, "ok": None, "updated_at": None, "seconds": None}

    def announce(self, active, previous, reason):
        with self.cond:
            self.generation += 1
            self.wanted = (self.generation, active, previous, reason, time.monotonic())
            self.cond.notify()

    def run(self):
        done = 0
        while True:
            with self.cond:
                while self.wanted is None or self.wanted[0] == done:
                    self.cond.wait()
                generation, active, previous, reason, asked = self.wanted
            address = self.public.get(active)
            pending = list(self.providers) if address else []
            while pending:
                pending = [p for p in pending if not self._update(p, address)]
                if pending:
                    with self.cond:
                        self.cond.wait(self.retry)
                        if self.wanted[0] != generation:
                            break
            else:
                if address and self.providers:
                    self.status = {
                        "address": address,
                        "ok": True,
                        "updated_at": time.time(),
                        "seconds": round(time.monotonic() - asked, 3),
                    }
                self._hooks(active, previous, reason)
            done = generation

    def _update(self, provider, address):
        started = time.monotonic()
        ok, answer = provider.update(address)
        (log.info if ok else log.error)(
            "dns %s -> %s: %s (%s, %.2f s)",
            provider.name,
            address,
            "ok" if ok else "failed",
            answer,
            time.monotonic() - started,
        )
        return ok

    def _hooks(self, active, previous, reason):
        if not self.hooks_dir or not os.path.isdir(self.hooks_dir):
            return
        env = dict(
            os.environ,
            HAKIT_UPLINK_ACTIVE=active,
            HAKIT_UPLINK_PREVIOUS=previous or "",
            HAKIT_UPLINK_REASON=reason,
            HAKIT_UPLINK_PUBLIC_ADDRESS=self.public.get(active) or "",
        )
        for name in sorted(os.listdir(self.hooks_dir)):
            path = os.path.join(self.hooks_dir, name)
            if not os.access(path, os.X_OK) or name.startswith("."):
                continue
            try:
                result = subprocess.run(
                    [path, active, previous or ""],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                (log.info if result.returncode == 0 else log.error)(
                    "hook %s exited %d", name, result.returncode
                )
            except (OSError, subprocess.TimeoutExpired) as e:
                log.error("hook %s failed: %s", name, e)


# -- the loop ---------------------------------------------------------------------------------------


class Daemon:
    def __init__(self, cfg, secrets, clock=time.monotonic):
        self.cfg = cfg
        self.uplinks = cfg["uplinks"]
        self.names = [u["name"] for u in self.uplinks]
        self.probers = dict(
            (u["name"], uplink.UplinkProber(u["interface"], u["gateway"], u.get("source")))
            for u in self.uplinks
        )
        self.fsm = uplink.UplinkFailover(
            self.names, cfg["fail_rounds"], cfg["good_rounds"], cfg["hold_time"], clock=clock
        )
        self.network = Network(self.uplinks)
        providers = [
            Dyndns2(u, p) for u, p in zip(cfg.get("dyndns2", []), secrets.get("dyndns2", []), strict=False)
        ]
        providers += [Rfc2136(u) for u in cfg.get("rfc2136", [])]
        self.announcer = Announcer(
            providers, cfg.get("hooks_dir"), dict((u["name"], u.get("public_address")) for u in self.uplinks)
        )
        self.transitions = []
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(max_workers=len(self.uplinks))

    def probe_round(self):
        def probe(u):
            return self.probers[u["name"]].probe(
                u["targets"], count=1, timeout=self.cfg["timeout"], min_targets=u.get("min_targets", 1)
            )

        return dict(zip(self.names, self.pool.map(probe, self.uplinks), strict=True))

    def step(self, results):
        up = dict((n, r["reachable"]) for n, r in results.items())
        detail = {
            n: f"{r['reachable_targets']}/{len(r['targets'])} targets answered"
            + (f"; {r['error']}" if r.get("error") else "")
            for n, r in results.items()
        }
        was_stranded = self.fsm.stranded
        transition = self.fsm.observe(up, detail)
        if self.fsm.stranded and not was_stranded:
            log.error("%s is down and no other uplink answers; staying on it (%s)", self.fsm.active, detail)
        elif was_stranded and not self.fsm.stranded and not transition:
            log.warning("%s answers again", self.fsm.active)
        if transition:
            log.warning("switch %s -> %s: %s", transition.previous, transition.active, transition.reason)
            self.network.activate(transition.active)
            self.transitions.append(
                {
                    "time": time.time(),
                    "previous": transition.previous,
                    "active": transition.active,
                    "reason": transition.reason,
                }
            )
            del self.transitions[:-20]
            self.announcer.announce(transition.active, transition.previous, transition.reason)
        return transition

    def write_state(self, results):
        path = self.cfg.get("state_file")
        if not path:
            return
        state = {
            "pid": os.getpid(),
            "active": self.fsm.active,
            "switches": self.fsm.switches,
            "stranded": self.fsm.stranded,
            "transitions": self.transitions,
            "dns": self.announcer.status,
            "uplinks": dict(
                (
                    n,
                    {
                        k: r.get(k)
                        for k in ("reachable", "reachable_targets", "loss_percent", "rtt_avg_ms", "error")
                    },
                )
                for n, r in results.items()
            ),
            "written_at": time.time(),
        }
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.rename(tmp, path)

    def run(self):
        active = self.fsm.active
        log.warning("start: %s active (preferred), probing %s", active, ", ".join(self.names))
        self.network.activate(active)
        self.announcer.start()
        self.announcer.announce(active, None, "start")
        interval = float(self.cfg["interval"])
        next_round = time.monotonic()
        while not self.stop.is_set():
            results = self.probe_round()
            self.step(results)
            self.write_state(results)
            next_round += interval
            now = time.monotonic()
            if next_round < now:
                next_round = now
            self.stop.wait(next_round - now)
        self.network.activate(self.names[0])
        log.warning("stop: back to normal networking via %s", self.names[0])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hakit-uplinkd", description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--check-config", metavar="FILE", help="check a configuration file and exit")
    args = parser.parse_args(argv)
    path = args.check_config or args.config
    cfg = load(path)
    secrets_path = cfg.get("secrets_file")
    secrets = load(secrets_path) if secrets_path and os.path.exists(secrets_path) else {}
    problems = (
        settings_problems(cfg, secrets)
        if not args.check_config
        else settings_problems(cfg, {"dyndns2": ["x"] * len(cfg.get("dyndns2", []))})
    )
    if problems:
        for problem in problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return 1
    if args.check_config:
        return 0
    handler = (
        logging.handlers.WatchedFileHandler(cfg["log_file"])
        if cfg.get("log_file")
        else logging.StreamHandler()
    )
    handler.setFormatter(
        logging.Formatter("%(asctime)s hakit-uplinkd[%(process)d]: %(levelname)s %(message)s")
    )
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    daemon = Daemon(cfg, secrets)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: daemon.stop.set())
    daemon.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
