#!/usr/bin/env python3
"""DRBD figures on the lab's file server (inventory/lab/file_server), measured in one run:

* raw TCP throughput between the two nodes over the replication link (eth1),
* a full sync of r0 (what the initial sync does: `drbdadm invalidate-remote`, every block sent),
* a resync after node2 was disconnected while node1 wrote N MiB (timed on node1 from /proc/drbd),
* direct writes to node2's root disk (the resync's write side on the same kind of disk),
* the client-observed outage through the service address when node1 loses power, and the
  bytes lost (files written before the fault, checksummed through the VIP after it).

    make bench-drbd    (or .venv/bin/python bench/drbd.py [--keep])

Brings the lab up and converges playbooks/file_server.yml unless it already answers, and takes
it down at the end (unless --keep). The measuring functions are shared with the molecule
scenario's verify (molecule/file_server/tests), which prints the same figures.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import outage  # noqa: E402
import webpair  # noqa: E402
from webpair import _env, lab  # noqa: E402

INVENTORY = ROOT / "inventory" / "lab" / "file_server" / "hosts.yml"
PLAYBOOK = ROOT / "playbooks" / "file_server.yml"
VIP = "10.78.1.100"
URL = f"http://{VIP}/"
DOCROOT = "/srv/data/www"
REPL = {"node1": "10.78.2.11", "node2": "10.78.2.12"}

# Sends SIZE MiB over TCP to the peer's port and prints the seconds it took (receiver: sink below).
TCP_SEND = r"""
import socket, sys, time
host, size = sys.argv[1], int(sys.argv[2])
chunk = b"\0" * (1 << 20)
s = socket.create_connection((host, 5201))
start = time.monotonic()
for _ in range(size):
    s.sendall(chunk)
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(time.monotonic() - start)
"""
TCP_SINK = r"""
import socket
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 5201)); srv.listen(1)
c, _ = srv.accept()
while c.recv(1 << 20):
    pass
c.send(b"x"); c.close()
"""


def sh(host, script, timeout=600, check=True):
    result = lab("exec", host, "--", "sh", "-c", script, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{host}: {script}: {result.stderr}{result.stdout}")
    return result.stdout


def proc_drbd(host):
    return sh(host, "cat /proc/drbd")


def wait_uptodate(host, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "ds:UpToDate/UpToDate" in proc_drbd(host):
            return
        time.sleep(0.5)
    raise RuntimeError(f"r0 on {host} not UpToDate/UpToDate after {timeout} s")


def device_mib(host):
    return int(sh(host, "blockdev --getsize64 /dev/drbd0")) / 1048576


def raw_tcp_mib_s(size_mib=256):
    """MiB/s of one TCP stream node1 -> node2 over the replication addresses."""
    sink = subprocess.Popen(
        [sys.executable, "-m", "hakit_lab", "exec", "node2", "--", "python3", "-c", TCP_SINK],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(3)
    try:
        seconds = float(
            sh("node1", f"python3 -c '{TCP_SEND}' {REPL['node2']} {size_mib}").strip().splitlines()[-1]
        )
    finally:
        sink.wait(timeout=60)
    return size_mib / seconds


def full_sync_mib_s(primary="node1"):
    """MiB/s of a full sync (every block to the peer), as the initial sync does."""
    size = device_mib(primary)
    start = time.monotonic()
    sh(primary, "drbdadm invalidate-remote r0")
    wait_uptodate(primary)
    return size / (time.monotonic() - start)


# Run on the resync's source: the seconds r0 spends in SyncSource, from /proc/drbd read every
# 20 ms on the host itself (no fork per poll), so neither the connect handshake nor the
# controller's polling is counted.
SYNC_TIMER = r"""
import sys, time
deadline = time.time() + float(sys.argv[1])
start = None
print("ready", flush=True)
while time.time() < deadline:
    state = open("/proc/drbd").read()
    if start is None and "cs:SyncSource" in state:
        start = time.time()
    elif start is not None and "cs:Connected" in state and "ds:UpToDate/UpToDate" in state:
        print(time.time() - start)
        sys.exit(0)
    time.sleep(0.02)
sys.exit("no resync seen")
"""


def resync_mib_s(primary="node1", secondary="node2", size_mib=64, timeout=300):
    """MiB/s of the resync after `secondary` was away while `primary` wrote `size_mib` MiB: the
    out-of-sync MiB over the time r0 spent in SyncSource. Returns (MiB/s, out-of-sync MiB)."""
    sh(secondary, "drbdadm disconnect r0")
    sh(primary, f"dd if=/dev/urandom of={DOCROOT}/resync.bin bs=1M count={size_mib} conv=fsync 2>/dev/null")
    oos = int(re.search(r"oos:(\d+)", proc_drbd(primary)).group(1)) / 1024
    timer = subprocess.Popen(
        [sys.executable, "-m", "hakit_lab", "exec", primary, "--", "python3", "-c", SYNC_TIMER, str(timeout)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if timer.stdout.readline().strip() != "ready":
            raise RuntimeError(f"the resync timer on {primary} did not start: {timer.stderr.read()}")
        sh(secondary, "drbdadm connect r0")
        out, err = timer.communicate(timeout=timeout + 60)
    finally:
        if timer.poll() is None:
            timer.kill()
    if timer.returncode != 0:
        raise RuntimeError(f"the resync timer on {primary}: {err.strip()}")
    wait_uptodate(primary)
    sh(primary, f"rm -f {DOCROOT}/resync.bin")
    return oos / float(out.strip().splitlines()[-1]), oos


def disk_write_mib_s(host, size_mib=64):
    """MiB/s of direct writes to a file on `host`'s root disk (a ubd disk like DRBD's backing
    disk on uml hosts): the write side of a resync cannot go faster."""
    out = sh(
        host,
        f"dd if=/dev/zero of=/var/tmp/hakit-dd bs=1M count={size_mib} oflag=direct 2>&1; rm -f /var/tmp/hakit-dd",
    )
    match = re.search(r"copied, ([\d.]+) s", out)
    if not match:
        raise RuntimeError(f"{host}: dd printed no time: {out}")
    return size_mib / float(match.group(1))


def fetch(path):
    get = "python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=10).read())'"
    result = subprocess.run(
        [sys.executable, "-m", "hakit_lab", "exec", "client", "--", "sh", "-c", f"{get} {URL}{path}"],
        env=_env(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    return result.stdout if result.returncode == 0 else None


def failover(active="node1", standby="node2", files=4, size_kib=2048, bound=120):
    """Power `active` off under an HTTP probe; returns (Outage, bytes lost of the checksummed files)."""
    names = [f"bench{i}.bin" for i in range(files)]
    sums = {}
    for name in names:
        out = sh(
            active, f"head -c {size_kib * 1024} /dev/urandom > {DOCROOT}/{name} && sha256sum {DOCROOT}/{name}"
        )
        sums[name] = out.split()[0]
    sh(active, "sync")
    probe = webpair.Probe(duration=bound, timeout=0.5, url=URL + "index.html", line="")
    time.sleep(3)
    fault_at = time.time()
    lab("fault", "poweroff", active)
    seen = outage.measure(probe.samples(), fault_at, "Served from DRBD")
    lost = 0
    for name, digest in sums.items():
        body = fetch(name)
        if body is None or hashlib.sha256(body).hexdigest() != digest:
            lost += size_kib * 1024
    return seen, lost


def ensure_lab():
    if (
        lab("status", check=False).returncode == 0
        and "node1" in lab("status", check=False).stdout
        and fetch("index.html") is not None
    ):
        return False
    lab("up", "-i", str(INVENTORY), timeout=1200)
    webpair.converged(timeout=3600, playbook=PLAYBOOK, inventory=INVENTORY)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the lab up")
    args = parser.parse_args(argv)
    started = ensure_lab()
    try:
        wait_uptodate("node1")
        tcp = raw_tcp_mib_s()
        full = full_sync_mib_s()
        resync, oos = resync_mib_s()
        disk = disk_write_mib_s("node2")
        seen, lost = failover()
        print(f"raw TCP node1->node2 (replication link)   {tcp:7.1f} MiB/s")
        print(f"direct writes to node2's root disk        {disk:7.1f} MiB/s")
        print(
            f"DRBD full sync ({device_mib('node2'):.0f} MiB, as the initial sync) {full:7.1f} MiB/s"
            f"  ({100 * full / tcp:.0f}% of raw TCP)"
        )
        print(
            f"DRBD resync of {oos:.0f} MiB written while node2 was away {resync:7.1f} MiB/s"
            f"  ({100 * resync / tcp:.0f}% of raw TCP, {100 * resync / disk:.0f}% of the disk's direct writes)"
        )
        print(
            f"failover (node1 powered off): first answer from node2 after {seen.to_expected_s} s, "
            f"longest gap {seen.longest_gap_s} s, {seen.failed_requests} failed requests"
        )
        print(f"bytes lost on failover: {lost}")
    finally:
        if started and not args.keep:
            lab("down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
