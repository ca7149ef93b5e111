#!/usr/bin/env python3
"""Benchmark: hakit.cluster.ipvs reconciling 1000 real servers vs a raw `ipvsadm -R` of the same rules.

Runs on a host with IPVS (a lab VM: this machine's kernel has no ip_vs). From the repository root:

    .venv/bin/python bench/ipvs_reconcile.py --lab-host director1          # a host of the running lab
    .venv/bin/python bench/ipvs_reconcile.py --ssh root@192.0.2.10 -- -i KEY  # any Debian host with ipvsadm

It copies the module as Ansible would run it (the module, its module_utils and ansible's own
module_utils) to /tmp on the host, and there times, median of --repeat runs:

    raw        `ipvsadm -C; ipvsadm -R < rules`: the same 10 x 100 rules loaded by hand
    raw task   the same load as a playbook would do it by hand: ansible.builtin.command with
               argv [ipvsadm, -R] and the rules on stdin (pays the fixed cost of any module)
    module     the module with state=overridden on a cleared table: reads (-Sn, -Ln --thresholds),
               plans, one `ipvsadm -R` batch, reads back and verifies
    no-op      the module again with the same config (changed=false)
    one edit   the module with one weight changed (state=merged, one -e line)
    python     python3 importing ansible.module_utils.basic: the fixed cost of any module there
    planning   parse + reconcile + plan of the full table, in-process (no commands)

The host's table is cleared (`ipvsadm -C`) before and after: never run this on a director in service.
Targets (issue 6): module <= 1.5 x raw, no-op <= 1 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REMOTE_DIR = "/tmp/hakit-ipvs-bench"
ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- on the host with IPVS


def config_for(services, reals):
    """services x reals real servers: wrr, direct routing, weights 1..5."""
    return [
        {
            "address": f"10.100.0.{s + 1}",
            "port": 80,
            "scheduler": "wrr",
            "real_servers": [{"address": f"10.101.{s}.{r + 1}", "weight": r % 5 + 1} for r in range(reals)],
        }
        for s in range(services)
    ]


def rules_for(config):
    """The same table written by hand as ipvsadm -R input."""
    lines = []
    for svc in config:
        vip = f"{svc['address']}:{svc['port']}"
        lines.append(f"-A -t {vip} -s {svc['scheduler']}")
        for real in svc["real_servers"]:
            lines.append(f"-a -t {vip} -r {real['address']}:{svc['port']} -g -w {real['weight']}")
    return "".join(line + "\n" for line in lines)


def timed(argv, stdin=None, env=None):
    start = time.perf_counter()
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr or done.stdout}")
    return seconds, done.stdout


def on_host(services, reals, repeat):
    here = Path(REMOTE_DIR)
    env = dict(os.environ, PYTHONPATH=str(here / "payload"), LC_ALL="C")
    module = str(here / "payload/ansible_collections/hakit/cluster/plugins/modules/ipvs.py")
    config = config_for(services, reals)
    rules = rules_for(config)
    edited = [dict(config[0], real_servers=[dict(config[0]["real_servers"][0], weight=9)])]
    arguments = {
        "full": {"ANSIBLE_MODULE_ARGS": {"config": config, "state": "overridden"}},
        "edit": {"ANSIBLE_MODULE_ARGS": {"config": edited, "state": "merged"}},
        "rawtask": {"ANSIBLE_MODULE_ARGS": {"argv": ["ipvsadm", "-R"], "stdin": rules}},
    }
    command = str(here / "payload/ansible/modules/command.py")
    for name, args in arguments.items():
        (here / f"{name}.json").write_text(json.dumps(args))

    def run_module(name, expect_changed, expect_commands):
        seconds, out = timed([sys.executable, module, str(here / f"{name}.json")], env=env)
        result = json.loads(out)
        if (
            result.get("failed")
            or result["changed"] != expect_changed
            or len(result["commands"]) != expect_commands
        ):
            raise SystemExit(f"unexpected module result for {name}: {json.dumps(result)[:2000]}")
        return seconds

    figures = {key: [] for key in ("raw", "rawtask", "module", "noop", "edit", "python", "planning")}
    total = services * (reals + 1)
    for _ in range(repeat):
        timed(["ipvsadm", "-C"])
        figures["raw"].append(timed(["ipvsadm", "-R"], stdin=rules)[0])
        if len(timed(["ipvsadm", "-Sn"])[1].splitlines()) != total:
            raise SystemExit("raw ipvsadm -R did not load the whole table")
        timed(["ipvsadm", "-C"])
        seconds, out = timed([sys.executable, command, str(here / "rawtask.json")], env=env)
        if json.loads(out).get("rc") != 0 or len(timed(["ipvsadm", "-Sn"])[1].splitlines()) != total:
            raise SystemExit(f"ansible.builtin.command ipvsadm -R did not load the whole table: {out[:2000]}")
        figures["rawtask"].append(seconds)
        timed(["ipvsadm", "-C"])
        figures["module"].append(run_module("full", True, total))
        figures["noop"].append(run_module("full", False, 0))
        figures["edit"].append(run_module("edit", True, 1))
        figures["python"].append(
            timed([sys.executable, "-c", "import ansible.module_utils.basic"], env=env)[0]
        )

        sys.path.insert(0, str(here / "payload"))
        from ansible_collections.hakit.cluster.plugins.module_utils import _ipvs

        save = timed(["ipvsadm", "-Sn"])[1]
        thresholds = timed(["ipvsadm", "-Ln", "--thresholds"])[1]
        start = time.perf_counter()
        current = _ipvs.read_table(save, thresholds)
        _ipvs.plan(current, _ipvs.reconcile(current, _ipvs.wanted_services(config), "overridden"))
        figures["planning"].append(time.perf_counter() - start)
    timed(["ipvsadm", "-C"])
    version = timed(["ipvsadm", "--version"])[1].strip()
    print(
        json.dumps(
            {
                "figures": {key: statistics.median(values) for key, values in figures.items()},
                "runs": figures,
                "ipvsadm": version,
                "kernel": os.uname().release,
                "python": sys.version.split()[0],
            }
        )
    )


# ---------------------------------------------------------------- on the controller


def payload():
    """The module as Ansible ships it: our module and module_utils, and ansible's module_utils."""
    import ansible.module_utils

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:

        def add(path, name):
            tar.add(path, name, filter=lambda info: None if "__pycache__" in info.name else info)

        for package in ("payload/ansible/__init__.py", "payload/ansible/modules/__init__.py"):
            tar.addfile(tarfile.TarInfo(package), io.BytesIO(b""))
        add(Path(ansible.module_utils.__file__).parent, "payload/ansible/module_utils")
        add(
            Path(ansible.module_utils.__file__).parent.parent / "modules/command.py",
            "payload/ansible/modules/command.py",
        )
        ours = "payload/ansible_collections/hakit/cluster/plugins"
        add(ROOT / "plugins/modules/ipvs.py", f"{ours}/modules/ipvs.py")
        for util in ("_ipvs.py", "_runner.py"):
            add(ROOT / "plugins/module_utils" / util, f"{ours}/module_utils/{util}")
        add(Path(__file__).resolve(), "bench.py")
    return buffer.getvalue()


def remote_prefix(args):
    """argv that runs one shell command (appended as the last argument) on the host."""
    if args.lab_host:
        return [sys.executable, "-m", "hakit_lab", "exec", args.lab_host, "--", "sh", "-c"]
    return ["ssh", *args.ssh_options, args.ssh]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--lab-host", help="a vm host of the running lab (hakit-lab up)")
    where.add_argument("--ssh", help="user@host to reach over ssh (root, or sudo-less ipvsadm)")
    where.add_argument("--on-host", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--services", type=int, default=10)
    parser.add_argument("--reals", type=int, default=100, help="real servers per service")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("ssh_options", nargs="*", help="extra ssh options after --")
    args = parser.parse_args()
    if args.on_host:
        on_host(args.services, args.reals, args.repeat)
        return

    prefix = remote_prefix(args)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT / "lab"), os.environ.get("PYTHONPATH")])
    )
    unpack = f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} && tar -xzf - -C {REMOTE_DIR}"
    subprocess.run([*prefix, unpack], input=payload(), check=True)
    try:
        command = f"python3 {REMOTE_DIR}/bench.py --on-host --services {args.services} --reals {args.reals} --repeat {args.repeat}"
        done = subprocess.run([*prefix, command], capture_output=True, text=True, check=False)
    finally:
        subprocess.run([*prefix, f"ipvsadm -C; rm -rf {REMOTE_DIR}"], check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark failed on the host: {done.stderr or done.stdout}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    f = report["figures"]
    reals = args.services * args.reals
    print(
        f"ipvs reconcile: {args.services} services x {args.reals} real servers = {reals}; "
        f"{report['ipvsadm']}, kernel {report['kernel']}, python {report['python']}; median of {args.repeat}"
    )
    rows = [
        ("raw ipvsadm -R, cleared table", f["raw"], ""),
        ("the same through ansible.builtin.command", f["rawtask"], "the load as a task"),
        (
            "module, cleared table",
            f["module"],
            f"{f['module'] / f['raw']:.1f} x raw (target <= 1.5); {f['module'] / f['rawtask']:.1f} x the task",
        ),
        ("module, no-op rerun", f["noop"], "target <= 1 s"),
        ("module, one weight edited", f["edit"], ""),
        ("python3 + ansible.module_utils import", f["python"], "paid by every module run"),
        (
            "module less that fixed cost",
            f["module"] - f["python"],
            f"{(f['module'] - f['python']) / f['raw']:.1f} x raw",
        ),
        ("no-op less that fixed cost", f["noop"] - f["python"], ""),
        ("planning alone (parse, reconcile, plan)", f["planning"], "in-process"),
    ]
    for label, seconds, note in rows:
        print(f"  {label:<42} {seconds:7.3f} s  {note}")


if __name__ == "__main__":
    main()
