"""Driving the lab from tests: the CLI in its own process (as users and molecule run it), Ansible
over SSH, and checks that nothing of the lab is left on the machine.

Figures the tests measure (figure(), tests/figures.py) are printed at the end of the run (`lab figures`).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from figures import figure  # noqa: F401  (the lab tests import it from here)
from hakit_lab import inventory, model, nshost, paths

ROOT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = Path(__file__).parent / "inventory" / "hosts.yml"


def pytest_collection_modifyitems(config, items):
    """Lab tests need root, namespaces and the lab's tools; skip them (with the reason) elsewhere."""
    missing = [tool for tool in ("ip", "nft", "nsenter", "debootstrap", "ssh") if shutil.which(tool) is None]
    reason = None
    if os.geteuid() != 0:
        reason = "the lab needs root"
    elif missing:
        reason = f"the lab needs {', '.join(missing)} (make setup installs them)"
    if reason:
        for item in items:
            if "lab" in item.keywords or "uml" in item.keywords or "vm" in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


# -- the CLI -----------------------------------------------------------------------------------


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "lab"), env.get("PYTHONPATH")]))
    return env


def hakit_lab(*args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run `hakit-lab ARGS` (python -m hakit_lab) and return its result."""
    result = subprocess.run(
        [sys.executable, "-m", "hakit_lab", *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"hakit-lab {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def in_host(host: str, command: str, check: bool = False) -> subprocess.CompletedProcess:
    """`hakit-lab exec HOST -- sh -c COMMAND`."""
    return hakit_lab("exec", host, "--", "sh", "-c", command, check=check)


def pings(host: str, address: str, tries: int = 3) -> bool:
    """Whether host reaches address. Retried: an ARP entry left INCOMPLETE while a link was down
    fails the first probe after the link returns, as on real hardware."""
    return any(in_host(host, f"ping -n -q -c1 -W1 {address}").returncode == 0 for _ in range(tries))


# A process that notes the time every 100 ms without forking (python3 is in every base image).
TICKER = (
    "import sys, time\n"
    "with open(sys.argv[1], 'a', buffering=1) as f:\n"
    "    while True:\n"
    "        f.write(f'{time.time():.3f}\\n')\n"
    "        time.sleep(0.1)\n"
)


def freeze_stops_the_host(host: str, seconds: float = 3.0) -> tuple[float, float]:
    """Freeze `host` for `seconds` while a ticker runs in it; returns (frozen, longest gap) in
    seconds and checks that the ticker stood still during the freeze and runs again after it."""
    ticks = f"/tmp/hakit-lab-ticks-{time.monotonic_ns()}"
    start = f'setsid python3 -c "$0" {ticks} </dev/null >/dev/null 2>&1 & echo $!'
    pid = hakit_lab("exec", host, "--", "sh", "-c", start, TICKER).stdout.strip()
    time.sleep(1.5)
    out = hakit_lab("fault", "freeze", host, f"{seconds:g}").stdout
    frozen = float(re.search(r"frozen for ([0-9.]+) s", out).group(1))
    time.sleep(1.5)
    values = [float(v) for v in in_host(host, f"cat {ticks}; kill {pid}", check=True).stdout.split()]
    gaps = [b - a for a, b in itertools.pairwise(values)]
    longest = max(gaps)
    after = values[-1] - values[gaps.index(longest) + 1]
    assert frozen >= seconds and longest >= seconds - 0.5, (frozen, longest, values)
    assert after >= 0.5, f"{host}: the ticker did not run on after the freeze: {values[-20:]}"
    return frozen, longest


def ssh_answers(address: str, timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.create_connection((address, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4) == b"SSH-"
    except OSError:
        return False


# -- inventories -------------------------------------------------------------------------------


def write_inventory(directory: Path, keep) -> Path:
    """A copy of the test lab's inventory (with its group_vars) keeping the hosts `keep` accepts."""
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    for group in data["all"]["children"].values():
        group["hosts"] = {n: v for n, v in group["hosts"].items() if keep(n, v)}
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(LAB_INVENTORY.parent / "group_vars", directory / "group_vars", dirs_exist_ok=True)
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def ns_inventory(tmp_path_factory) -> Path:
    """The test lab's 8 ns hosts (no VM)."""
    return write_inventory(tmp_path_factory.mktemp("ns-inventory"), lambda name, v: v["lab_kind"] == "ns")


@pytest.fixture(scope="session")
def base_image_cached():
    """Build (or find) the ns hosts' base root before anything is timed."""
    from hakit_lab import image

    image.ensure_ssh_key()
    return image.ensure_rootfs()


# -- leftovers ---------------------------------------------------------------------------------


def lab_netns_inodes() -> set[int]:
    netns = Path("/run/netns")
    if not netns.is_dir():
        return set()
    return {p.stat().st_ino for p in netns.iterdir() if p.name.startswith(model.PREFIX)}


def leftovers(netns_inodes: set[int]) -> list[str]:
    """Everything of the lab still on the machine: namespaces, links, mounts, processes, state."""
    found = []
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split("\n")
    found += [f"netns {line.split()[0]}" for line in netns if line.startswith(model.PREFIX)]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()
    found += [
        f"link {line.split(': ')[1].split('@')[0]}"
        for line in links
        if line.split(": ")[1].startswith(model.PREFIX)
    ]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    # Only this lab's: another prefix's state directory (/run/hakit-lab-hkn) starts with ours too.
    found += [
        f"mount {line.split()[4]}"
        for line in mounts
        if Path(line.split()[4]).is_relative_to(paths.STATE)
        or line.split()[4].startswith(f"/run/netns/{model.PREFIX}-")
    ]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            if os.stat(proc / "ns" / "net").st_ino in netns_inodes:
                found.append(f"process {proc.name} in a lab network namespace")
            elif f" - overlay {nshost.ROOT_MOUNT_PREFIX}" in (proc / "mountinfo").read_text():
                found.append(f"process {proc.name} on an ns host's root")
        except OSError:
            continue
    if paths.STATE.exists():
        found.append(f"state {paths.STATE}")
    return found


# -- Ansible -----------------------------------------------------------------------------------


def ansible_bin(name: str) -> str:
    for candidate in (Path(sys.executable).parent / name, Path("/tmp/probe-venv/bin") / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not found beside {sys.executable} nor on PATH")
    return found


@pytest.fixture
def ansible_playbook(tmp_path):
    """Run a playbook (YAML text) against an inventory over SSH; returns (result, seconds).

    Ansible's own files go to tmp_path; the SSH control masters it leaves are closed afterwards.
    """
    control = tmp_path / "cp"
    control.mkdir()
    (tmp_path / "ansible.cfg").write_text(
        "[defaults]\nhost_key_checking = False\nforks = 20\ninterpreter_python = /usr/bin/python3\n"
        "[ssh_connection]\npipelining = True\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=60s\n"
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_HOME=str(tmp_path / "home"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_SSH_CONTROL_PATH_DIR=str(control),
        ANSIBLE_NOCOLOR="1",
    )

    def run(inventory_path: Path, playbook: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
        book = tmp_path / f"play-{time.monotonic_ns()}.yml"
        book.write_text(playbook)
        t0 = time.monotonic()
        result = subprocess.run(
            [ansible_bin("ansible-playbook"), "-i", str(inventory_path), str(book), *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        return result, time.monotonic() - t0

    yield run
    for sock in control.iterdir():
        subprocess.run(
            ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "lab"], capture_output=True, timeout=30
        )


# -- one lab per test module --------------------------------------------------------------------


def bring_up(inventory_path: Path) -> float:
    """`down` then `up`; returns the seconds `up` took."""
    hakit_lab("down")
    t0 = time.monotonic()
    hakit_lab("up", "-i", str(inventory_path))
    return time.monotonic() - t0


def kill_process(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def load(inventory_path: Path) -> model.Lab:
    return inventory.load(inventory_path)
