"""ns hosts: a network namespace plus PID, mount, UTS and IPC namespaces, an overlay root and tini.

A host's "disk" is the upper layer of its overlay root, on the tmpfs at paths.HOSTS_TMPFS; the
lower layer is the lab's base root filesystem (image.ensure_rootfs()), never the machine's own
root, so a host sees only what the base and its own roles installed.

    boot      net.add_host (done by the caller), then start(): fork, join the host's netns, unshare
              the other namespaces, fork again: the grandchild is the host's PID 1 (ns_stage1.sh,
              then tini running ns_init.sh). Its parent exits at once, so the host belongs to no
              CLI process and outlives it.
    poweroff  kill(): SIGKILL to PID 1 (the kernel then kills every process of the host), then
              the caller deletes the network namespace. The upper layer stays: the next boot finds
              its files.

Each running host is recorded in state.power_file(name): the outer pid of PID 1 and its start time
(a recycled pid is never mistaken for the host), and the inode of its network namespace.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from . import model, paths, state
from .sysutil import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    NETNS_DIR,
    alive,
    netns_inode,
    processes_in_netns,
    run,
    setns,
    start_time,
    unshare,
    wait_gone,
)
from .sysutil import (
    kill as kill_pid,
)

STAGE1 = Path(__file__).with_name("ns_stage1.sh")
INIT = Path(__file__).with_name("ns_init.sh")
BOOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "TERM": "linux",
    "LANG": "C.UTF-8",
}
ROOT_MOUNT_PREFIX = f"{model.PREFIX}-root-"


def host_dir(name: str) -> Path:
    return paths.HOSTS_TMPFS / name


def console_log(name: str) -> Path:
    return host_dir(name) / "console.log"


def _is_mountpoint(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


def ensure_tmpfs() -> None:
    """The tmpfs holding every ns host's disk (overlay upper/work dirs)."""
    paths.HOSTS_TMPFS.mkdir(parents=True, exist_ok=True)
    if not _is_mountpoint(paths.HOSTS_TMPFS):
        run(["mount", "-t", "tmpfs", "-o", "mode=0700", f"{model.PREFIX}-hosts", str(paths.HOSTS_TMPFS)])


def unmount_tmpfs() -> bool:
    """Unmount the hosts' tmpfs (and anything left mounted below it); True if something was."""
    mounted = False
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for target in sorted((t for t in targets if t.startswith(str(paths.HOSTS_TMPFS))), reverse=True):
        if run(["umount", target], check=False).returncode != 0:
            run(["umount", "-l", target], check=False)
        mounted = True
    return mounted


# -- boot inputs ---------------------------------------------------------------------------------


def hosts_file(lab: model.Lab, host: model.Host) -> str:
    """/etc/hosts as an installer leaves it, listing the lab's hosts (first topology address)."""
    lines = ["127.0.0.1\tlocalhost"]
    for other in lab.hosts.values():
        address = other.interfaces[0].address.ip if other.interfaces else other.mgmt.ip
        lines.append(f"{address}\t{other.name}")
    lines += [
        "",
        "# The following lines are desirable for IPv6 capable hosts",
        "::1     localhost ip6-localhost ip6-loopback",
        "ff02::1 ip6-allnodes",
        "ff02::2 ip6-allrouters",
    ]
    return "\n".join(lines) + "\n"


def interface_stanza(nic: model.Interface) -> str:
    lines = [
        f"# {nic.network} network (written by hakit-lab at first boot)",
        f"auto {nic.name}",
        f"iface {nic.name} inet static",
        f"    address {nic.address}",
    ]
    if nic.gateway:
        lines.append(f"    gateway {nic.gateway}")
    return "\n".join(lines) + "\n"


def sources_path(text: str) -> str:
    """Where apt reads a source file of this format (deb822 or one-line)."""
    return "/etc/apt/sources.list.d/hakit-lab.sources" if "Types:" in text else "/etc/apt/sources.list"


def write_boot_inputs(
    lab: model.Lab, host: model.Host, sources: str, public_key: str, boot: Path | None = None
) -> None:
    """The init (ns_init.sh) and its inputs, in `boot` (default: the ns host's boot directory).

    uml hosts boot with the same init and inputs (uml.py passes its own directory)."""
    boot = boot or host_dir(host.name) / "boot"
    if boot.exists():
        shutil.rmtree(boot)
    (boot / "interfaces").mkdir(parents=True)
    shutil.copyfile(INIT, boot / "init")
    (boot / "name").write_text(f"{host.name}\n")
    (boot / "hosts").write_text(hosts_file(lab, host))
    for nic in host.interfaces:
        (boot / "interfaces" / nic.name).write_text(interface_stanza(nic))
    (boot / "sources.list").write_text(sources)
    (boot / "sources.path").write_text(sources_path(sources) + "\n")
    (boot / "authorized_keys").write_text(public_key.strip() + "\n")


# -- start and stop ------------------------------------------------------------------------------


def start(host: model.Host, lower: Path) -> int:
    """Start the host's PID 1 in its (existing) network namespace; returns its outer pid.

    Call before starting threads (fork). The host is recorded in state.power_file().
    """
    hdir = host_dir(host.name)
    for sub in ("upper", "work", "root"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    netns_path = NETNS_DIR / host.netns
    with console_log(host.name).open("ab") as log:
        log.write(f"--- hakit-lab: boot {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the intermediate: joins the netns, unshares, forks PID 1, exits
        try:
            os.close(read_end)
            os.setsid()
            fd = os.open(netns_path, os.O_RDONLY)
            setns(fd, CLONE_NEWNET)
            os.close(fd)
            unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID)
            pid1 = os.fork()
            if pid1 == 0:
                _exec_stage1(host, hdir, lower)
            os.write(write_end, f"{pid1}\n".encode())
            os._exit(0)
        except BaseException as e:  # report whatever went wrong; never return into the caller's code
            with contextlib.suppress(BaseException):
                os.write(write_end, f"error {e}\n".encode())
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        answer = pipe.read().strip()
    os.waitpid(child, 0)
    if not answer.isdigit():
        raise model.LabError(f"host {host.name}: could not start its PID 1: {answer or 'no answer'}")
    pid = int(answer)
    state.write_json(
        state.power_file(host.name),
        {"pid": pid, "start": start_time(pid), "netns_inode": netns_inode(host.netns), "booted": time.time()},
    )
    return pid


def _exec_stage1(host: model.Host, hdir: Path, lower: Path) -> None:
    """In the grandchild (PID 1 of the new PID namespace): become stage 1."""
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        log = os.open(console_log(host.name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, 65536)
        os.chdir("/")
        argv = ["/bin/sh", str(STAGE1), host.name, str(hdir), str(lower), f"{ROOT_MOUNT_PREFIX}{host.name}"]
        os.execve(argv[0], argv, BOOT_ENV)
    finally:
        os._exit(127)


def record(name: str) -> dict | None:
    return state.read_json(state.power_file(name))


def pid1(name: str) -> int | None:
    """The outer pid of the host's PID 1 if it runs (powered on), else None."""
    rec = record(name)
    if rec and alive(rec["pid"], rec["start"]):
        return rec["pid"]
    return None


def wait_ready(host: model.Host, pid: int, timeout: float) -> None:
    """Until the host's init wrote its ready marker and sshd answers on the management address."""
    marker = Path(f"/proc/{pid}/root/run/hakit-lab/ready")
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if not alive(pid):
            raise model.LabError(f"host {host.name} died while booting:\n{tail(host.name)}")
        if time.monotonic() > deadline:
            raise model.LabError(f"host {host.name} not ready after {timeout:.0f} s:\n{tail(host.name)}")
        time.sleep(0.02)
    while not ssh_banner(str(host.mgmt.ip)):
        if time.monotonic() > deadline:
            raise model.LabError(
                f"host {host.name}: sshd does not answer on {host.mgmt.ip}:22:\n{tail(host.name)}"
            )
        time.sleep(0.05)


def ssh_banner(address: str, timeout: float = 1.0) -> bool:
    """Whether an SSH server answers with its banner on address:22."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def tail(name: str, lines: int = 15) -> str:
    try:
        text = console_log(name).read_text(errors="replace")
    except FileNotFoundError:
        return "(no console log)"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


def kill(host: model.Host, timeout: float = 10.0) -> None:
    """Power the host off: SIGKILL its PID 1 and anything else living in its network namespace.

    Only the recorded PID 1 (checked by start time) and processes inside the host's namespace
    are signalled. Returns when they are gone (a zombie awaiting its reaper counts as gone).
    """
    victims = []
    pid = pid1(host.name)
    if pid is not None:
        victims.append(pid)
    inode = netns_inode(host.netns)
    if inode is not None:
        victims += processes_in_netns({inode})
    for victim in victims:
        kill_pid(victim)
    left = wait_gone(victims, timeout)
    if left:
        raise model.LabError(f"host {host.name}: processes {left} survived SIGKILL for {timeout:.0f} s")
    state.power_file(host.name).unlink(missing_ok=True)


def enter_argv(pid: int, argv: list[str]) -> list[str]:
    """argv running `argv` inside the host of PID 1 `pid` (all its namespaces, its root and cwd /)."""
    return ["nsenter", "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]


def host_env() -> dict[str, str]:
    """The environment a command run inside a host gets (nothing of the controller's)."""
    env = dict(BOOT_ENV)
    for var in ("TERM", "LANG"):
        if var in os.environ:
            env[var] = os.environ[var]
    return env


def run_inside(pid: int, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(enter_argv(pid, argv), env=host_env(), cwd="/", check=False, **kwargs)
