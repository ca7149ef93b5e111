"""hakit-lab: real test hosts (ns hosts and qemu VMs) from an Ansible inventory.

    hakit-lab up -i INVENTORY          build the inventory's lab (or complete it); wait for SSH
    hakit-lab down                     remove everything the lab made, even after a crash
    hakit-lab status [--no-ssh]        host, kind, VM accelerator, power, management address, SSH
    hakit-lab ssh HOST [CMD...]        SSH to the host as root with the lab's key
    hakit-lab exec HOST -- CMD...      run CMD in the host (nsenter for ns hosts, ssh for VMs)
    hakit-lab fault poweroff|boot HOST
    hakit-lab fault link-down|link-up HOST IFACE
    hakit-lab fault partition A B | heal
    hakit-lab fault stop-service HOST NAME
    hakit-lab fault stress HOST SECONDS [--workers N]
    hakit-lab fault freeze HOST SECONDS

Every command runs as root. Exit status: 0 done, 1 lab error (the message says what to fix),
for `ssh`/`exec` the command's own status.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import faults, orchestrator, state
from .model import LabError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hakit-lab",
        description="Real test hosts (namespace hosts and qemu VMs) built from an Ansible inventory.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "up", help="build the inventory's lab (idempotent) and wait until every host answers SSH"
    )
    p.add_argument("-i", "--inventory", required=True, help="Ansible inventory (file or directory)")
    p.add_argument("--timeout", type=float, help="seconds to wait for each host (default: 60 ns, 600 vm)")

    sub.add_parser("down", help="remove every lab host, link, namespace, mount, process, VM and disk")

    p = sub.add_parser("status", help="table of the lab's hosts")
    p.add_argument("--no-ssh", action="store_true", help="do not try SSH (faster)")

    p = sub.add_parser("ssh", help="ssh to a host as root")
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="command (default: a login shell)")

    p = sub.add_parser("exec", help="run a command inside a host; its exit status is passed through")
    p.add_argument("host")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")

    p = sub.add_parser("fault", help="inject a fault; returns when it is in place")
    faults_sub = p.add_subparsers(dest="fault", required=True, metavar="FAULT")
    for name, text in (
        ("poweroff", "pull the plug (runtime state such as VIPs is lost)"),
        ("boot", "power on again with the disk as it was"),
    ):
        f = faults_sub.add_parser(name, help=text)
        f.add_argument("host")
    for name, text in (("link-down", "unplug a topology NIC's cable"), ("link-up", "plug it back")):
        f = faults_sub.add_parser(name, help=text)
        f.add_argument("host")
        f.add_argument("iface")
    f = faults_sub.add_parser("partition", help="A and B stop hearing each other on every shared network")
    f.add_argument("a")
    f.add_argument("b")
    faults_sub.add_parser("heal", help="undo every partition and cut link")
    f = faults_sub.add_parser("stop-service", help="`service NAME stop` in the host")
    f.add_argument("host")
    f.add_argument("service")
    f = faults_sub.add_parser("stress", help="busy loops in the host for SECONDS")
    f.add_argument("host")
    f.add_argument("seconds", type=float)
    f.add_argument("--workers", type=int, help="busy loops (default: one per CPU)")
    f = faults_sub.add_parser("freeze", help="stop every process of the host for SECONDS, then resume it")
    f.add_argument("host")
    f.add_argument("seconds", type=float)
    return parser


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _command(argv: list[str]) -> list[str]:
    return argv[1:] if argv[:1] == ["--"] else argv


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if os.geteuid() != 0:
        print("hakit-lab: must run as root (namespaces, mounts, bridges)", file=sys.stderr)
        return 1
    try:
        return _dispatch(args)
    except LabError as e:
        print(f"hakit-lab: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hakit-lab: interrupted; `hakit-lab down` removes whatever was made", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "up":
        report = orchestrator.up(args.inventory, args.timeout)
        parts = [f"lab up: {report.hosts} host(s), {len(report.started)} started, {report.seconds:.1f} s"]
        if report.ns_ready_seconds is not None:
            parts.append(f"ns hosts answered SSH {report.ns_ready_seconds:.2f} s after boot")
        if report.uml_ready_seconds is not None:
            parts.append(f"uml hosts answered SSH {report.uml_ready_seconds:.1f} s after boot")
        if report.vm_ready_seconds is not None:
            parts.append(f"VMs answered SSH {report.vm_ready_seconds:.1f} s after boot")
        print("; ".join(parts))
        return 0

    if args.command == "down":
        removed = orchestrator.down()
        print("lab down: " + (", ".join(removed) if removed else "nothing was up"))
        return 0

    if args.command == "status":
        # ACCEL last: scripts that read the first five columns keep working.
        rows = [["HOST", "KIND", "POWER", "MGMT", "SSH", "ACCEL"]]
        rows += [
            [s.name, s.kind, s.power, s.mgmt, s.ssh, s.accel] for s in orchestrator.status(not args.no_ssh)
        ]
        print(_table(rows))
        return 0

    lab = state.require_lab()

    if args.command == "ssh":
        host = lab.host(args.host)
        command = _command(args.cmd)
        argv = orchestrator.ssh_argv(host, command, batch=False, tty=not command and sys.stdin.isatty())
        os.execvp(argv[0], argv)

    if args.command == "exec":
        host = lab.host(args.host)
        command = _command(args.cmd)
        if not command:
            raise LabError("exec needs a command: hakit-lab exec HOST -- CMD [ARGS...]")
        argv, env = orchestrator.exec_argv(host, command)
        os.chdir("/")
        os.execvpe(argv[0], argv, env)

    with state.locked():
        return _fault(lab, args)


def _fault(lab, args: argparse.Namespace) -> int:
    fault = args.fault
    if fault == "poweroff":
        orchestrator.poweroff(lab, lab.host(args.host))
        print(f"{args.host}: powered off")
    elif fault == "boot":
        seconds = orchestrator.boot(lab, lab.host(args.host))
        print(f"{args.host}: up, SSH answered after {seconds:.2f} s")
    elif fault in ("link-down", "link-up"):
        faults.set_link(lab, lab.host(args.host), args.iface, fault == "link-up")
        print(f"{args.host} {args.iface}: link {fault.removeprefix('link-')}")
    elif fault == "partition":
        rules = faults.partition(lab, lab.host(args.a), lab.host(args.b))
        print(f"{args.a} and {args.b}: partitioned ({rules} rules)")
    elif fault == "heal":
        healed = faults.heal(lab)
        print("healed: " + (", ".join(healed) if healed else "nothing was broken"))
    elif fault == "stop-service":
        faults.stop_service(lab.host(args.host), args.service)
        print(f"{args.host}: {args.service} stopped")
    elif fault == "stress":
        pids = faults.stress(lab.host(args.host), args.seconds, args.workers)
        print(
            f"{args.host}: {len(pids)} busy loop(s) for {args.seconds:g} s (pids in the host: {' '.join(map(str, pids))})"
        )
    elif fault == "freeze":
        seconds = faults.freeze(lab.host(args.host), args.seconds)
        print(f"{args.host}: frozen for {seconds:.2f} s, running again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
