"""Bring a lab up from an inventory, power hosts on and off, and take everything down again.

Every function here is one CLI command's work and runs in its own process: what a command made is
recorded under paths.STATE (state.py) before it is made, so `down` finds it after any crash. `down`
also sweeps whatever carries the lab's prefix, recorded or not.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from . import aptindex, aptproxy, image, inventory, net, nshost, paths, state, uml, vm
from .model import Host, Lab, LabError
from .sysutil import (
    alive,
    kill,
    netns_exists,
    netns_inode,
    processes_in_netns,
    processes_with_root_mount,
    wait_gone,
)

NS_BOOT_TIMEOUT = 60.0
# A uml host answers SSH in 5-10 s on a calm machine; several booting at once on a loaded one
# took minutes in the probe (shared/research/uml-lab, §8).
UML_BOOT_TIMEOUT = 300.0
VM_BOOT_TIMEOUT = 600.0
SSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
)


def ssh_argv(
    host: Host, command: list[str] | None = None, batch: bool = True, tty: bool = False
) -> list[str]:
    """ssh as root to the host's management address with the lab's key."""
    argv = ["ssh", "-i", str(paths.SSH_KEY), *SSH_OPTIONS]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    if tty:
        argv.append("-t")
    argv.append(f"root@{host.mgmt.ip}")
    return argv + list(command or [])


def ssh_ok(host: Host, timeout: float = 15.0) -> bool:
    """Whether `ssh root@<mgmt> true` works with the lab's key."""
    argv = ssh_argv(host, ["true"])
    try:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


# -- power state ---------------------------------------------------------------------------------


def powered_on(host: Host) -> bool:
    if host.kind == "ns":
        return nshost.pid1(host.name) is not None
    if host.kind == "uml":
        return uml.running_pid(host) is not None
    return vm.running_pid(host) is not None


def _boot_inputs(lab: Lab, host: Host) -> None:
    key = image.ensure_ssh_key()
    nshost.write_boot_inputs(
        lab, host, aptproxy.sources_list(lab.controller), key.with_suffix(".pub").read_text()
    )


def _start_ns(lab: Lab, host: Host, lower: Path) -> int:
    """Network then PID 1; returns without waiting for the host's boot."""
    net.delete_host(host)  # whatever a crash or a poweroff left
    net.add_host(lab, host, state.links_down())
    _boot_inputs(lab, host)
    return nshost.start(host, lower)


def _wait_kernel_host(lab: Lab, host: Host, timeout: float) -> float:
    """Until a VM or uml host answers SSH; then re-cut the links a fault had cut (the taps came up
    plugged)."""
    seconds = uml.wait_ssh(host, ssh_ok, timeout) if host.kind == "uml" else vm.wait_ssh(host, timeout)
    for name, ifname in state.links_down():
        if name == host.name:
            if host.kind == "uml":
                uml.set_link(lab, host, ifname, False)
            else:
                vm.set_link(host, ifname, False)
    return seconds


def _start_uml(lab: Lab, host: Host) -> int:
    return uml.start(
        lab, host, image.ensure_uml_image(), image.ensure_ssh_key().with_suffix(".pub").read_text()
    )


# -- up ------------------------------------------------------------------------------------------


@dataclass
class UpReport:
    hosts: int
    started: list[str]
    seconds: float
    ns_ready_seconds: float | None
    uml_ready_seconds: float | None
    vm_ready_seconds: float | None


def up(inventory_path: str, timeout: float | None = None) -> UpReport:
    """Build the inventory's lab, or complete it if it is partly up; returns when every host answers SSH.

    A second `up` of the same inventory boots only what is not running (also hosts powered off
    by a fault). A lab from a different topology must be taken down first.
    """
    t0 = time.monotonic()
    lab = inventory.load(inventory_path)
    with state.locked():
        recorded = state.load_lab()
        if recorded is not None and state.lab_to_dict(recorded[0]) != state.lab_to_dict(lab):
            raise LabError(
                f"a different lab is up (built from {recorded[1]}); run `hakit-lab down` first, "
                f"then `hakit-lab up -i {inventory_path}`"
            )
        if recorded is None:
            net.refuse_taken_subnet(lab)  # before anything is recorded or made
        # Recorded before anything exists, so that `down` after a crash knows what to look for.
        state.save_lab(lab, str(Path(inventory_path).resolve()))
        return _up_locked(lab, t0, timeout)


def _up_locked(lab: Lab, t0: float, timeout: float | None) -> UpReport:
    ns_hosts = [h for h in lab.hosts.values() if h.kind == "ns" and not powered_on(h)]
    vm_hosts = [h for h in lab.hosts.values() if h.kind == "vm" and not powered_on(h)]
    uml_hosts = [h for h in lab.hosts.values() if h.kind == "uml" and not powered_on(h)]
    image.ensure_ssh_key()
    lower = image.ensure_rootfs() if ns_hosts else None
    vm_image = image.ensure_vm_image() if vm_hosts else None
    if uml_hosts:
        image.ensure_uml_image()

    net.ensure_switch(lab)
    aptindex.ensure(aptproxy.UPSTREAM)
    aptproxy.start(str(lab.controller.ip), paths.APT_PROXY_PORT)
    if ns_hosts:
        nshost.ensure_tmpfs()

    # Kernel hosts first: they take seconds (uml) or tens of seconds (vm) to boot, ns hosts a
    # fraction of one. All boot at once.
    t_boot = time.monotonic()
    for host in vm_hosts:
        vm.start(lab, host, vm_image)
    for host in uml_hosts:
        _start_uml(lab, host)
    pids = {host.name: _start_ns(lab, host, lower) for host in ns_hosts}

    ns_ready = vm_ready = uml_ready = None
    errors: list[str] = []
    kernel_hosts = vm_hosts + uml_hosts
    with ThreadPoolExecutor(max_workers=max(1, len(kernel_hosts))) as pool:
        kernel_waits = {
            h.name: pool.submit(
                _wait_kernel_host,
                lab,
                h,
                timeout or (UML_BOOT_TIMEOUT if h.kind == "uml" else VM_BOOT_TIMEOUT),
            )
            for h in kernel_hosts
        }
        for host in ns_hosts:
            try:
                nshost.wait_ready(host, pids[host.name], timeout or NS_BOOT_TIMEOUT)
            except LabError as e:
                errors.append(str(e))
        if ns_hosts:
            ns_ready = time.monotonic() - t_boot
        for name, future in kernel_waits.items():
            try:
                future.result()
            except LabError as e:
                errors.append(f"{name}: {e}")
            if lab.hosts[name].kind == "uml":
                uml_ready = time.monotonic() - t_boot
            else:
                vm_ready = time.monotonic() - t_boot
    if errors:
        raise LabError(
            "lab hosts did not come up (`hakit-lab down` removes what was made):\n" + "\n".join(errors)
        )
    return UpReport(
        hosts=len(lab.hosts),
        started=[h.name for h in kernel_hosts + ns_hosts],
        seconds=time.monotonic() - t0,
        ns_ready_seconds=ns_ready,
        uml_ready_seconds=uml_ready,
        vm_ready_seconds=vm_ready,
    )


# -- power faults --------------------------------------------------------------------------------


def poweroff(lab: Lab, host: Host, timeout: float = 15.0) -> None:
    """Pull the plug; returns once the host runs nothing and none of its NICs is on the segment."""
    if host.kind == "ns":
        nshost.kill(host)
        net.delete_host(host)
        if netns_exists(host.netns):
            raise LabError(f"host {host.name}: its network namespace {host.netns} is still there")
    elif host.kind == "uml":
        uml.poweroff(host, timeout)
    else:
        vm.poweroff(host, timeout)
    deadline = time.monotonic() + timeout
    while not net.host_ports_gone(host):
        if time.monotonic() > deadline:
            raise LabError(f"host {host.name}: its switch ports still have a carrier after power-off")
        time.sleep(0.05)


def boot(lab: Lab, host: Host, timeout: float | None = None) -> float:
    """Power the host on with its disk as it was; returns the seconds until SSH answered."""
    t0 = time.monotonic()
    if powered_on(host):
        return 0.0
    net.ensure_switch(lab)
    if host.kind == "ns":
        nshost.ensure_tmpfs()
        pid = _start_ns(lab, host, image.ensure_rootfs())
        nshost.wait_ready(host, pid, timeout or NS_BOOT_TIMEOUT)
    elif host.kind == "uml":
        _start_uml(lab, host)
        _wait_kernel_host(lab, host, timeout or UML_BOOT_TIMEOUT)
    else:
        vm.start(lab, host, image.ensure_vm_image())
        _wait_kernel_host(lab, host, timeout or VM_BOOT_TIMEOUT)
    return time.monotonic() - t0


# -- down ----------------------------------------------------------------------------------------


def down() -> list[str]:
    """Remove everything the lab made, from its records and by sweeping the lab's prefix.

    Killed: the recorded ns hosts' PID 1 (checked by start time), recorded VMs, and any process
    living in a network namespace named with the lab's prefix or whose root is an ns host's
    overlay. Nothing else. Returns a list of what was removed.
    """
    removed: list[str] = []
    paths.STATE.mkdir(parents=True, exist_ok=True)
    with state.locked():
        recorded = state.load_lab()
        lab = recorded[0] if recorded else None

        vms = [h for h in lab.hosts.values() if h.kind == "vm"] if lab else []
        if vms or paths.VMS.exists():
            removed += _destroy_vms(vms)
        # uml kernels run in the switch namespace: the sweep below would find them too, but a
        # recorded one is ended with its whole process group here.
        for host in (h for h in lab.hosts.values() if h.kind == "uml") if lab else ():
            if uml.running_pid(host) is not None:
                removed.append(f"uml {host.name}")
            uml.destroy(host)

        victims: list[int] = []
        power_dir = state.power_dir()
        if power_dir.is_dir():
            for record in power_dir.glob("*.json"):
                rec = state.read_json(record)
                if rec and alive(rec["pid"], rec["start"]):
                    victims.append(rec["pid"])
        inodes = {i for i in (netns_inode(n) for n in net.lab_netns()) if i is not None}
        swept = processes_in_netns(inodes) + processes_with_root_mount(nshost.ROOT_MOUNT_PREFIX)
        # PID 1s first: each takes its whole PID namespace with it.
        for pid in victims + sorted(set(swept) - set(victims)):
            kill(pid)
        left = wait_gone(set(victims) | set(swept), 10.0)
        if left:
            raise LabError(f"processes {left} survived SIGKILL; run `hakit-lab down` again")
        if victims or swept:
            removed.append(f"{len(set(victims) | set(swept))} process(es)")

        removed += net.teardown()

        if aptproxy.stop():
            removed.append("apt proxy")
        if nshost.unmount_tmpfs():
            removed.append(f"tmpfs {paths.HOSTS_TMPFS}")
        for entry in paths.STATE.iterdir():
            if entry.name == "lock":
                continue
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    (paths.STATE / "lock").unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # another command may be waiting on the lock already
        paths.STATE.rmdir()
    return removed


def _destroy_vms(vms: list[Host]) -> list[str]:
    """The recorded VMs (qemu, taps, disks), then any qemu that wrote its pid file under STATE."""
    removed = []
    for host in vms:
        vm.destroy(host)
        removed.append(f"vm {host.name}")
    for pid_file in paths.VMS.glob("*/qemu.pid") if paths.VMS.is_dir() else ():
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().strip())
            if str(pid_file).encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                kill(pid)
                wait_gone([pid], 10.0)
                removed.append(f"qemu {pid}")
    return removed


# -- status --------------------------------------------------------------------------------------


@dataclass
class HostStatus:
    name: str
    kind: str
    accel: str  # vm hosts: the accelerator qemu last started with ("kvm"/"tcg"); "-" otherwise
    power: str
    mgmt: str
    ssh: str


def status(check_ssh: bool = True) -> list[HostStatus]:
    lab = state.require_lab()
    hosts = list(lab.hosts.values())
    power = {h.name: powered_on(h) for h in hosts}
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        ssh = {h.name: pool.submit(ssh_ok, h) if check_ssh and power[h.name] else None for h in hosts}
        return [
            HostStatus(
                name=h.name,
                kind=h.kind,
                accel=(vm.started_accel(h) or "-") if h.kind == "vm" else "-",
                power="on" if power[h.name] else "off",
                mgmt=str(h.mgmt.ip),
                ssh="-" if ssh[h.name] is None else ("ok" if ssh[h.name].result() else "no"),
            )
            for h in hosts
        ]


# -- running commands in a host ------------------------------------------------------------------


def exec_argv(host: Host, command: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment running `command` in the host: nsenter for ns hosts, ssh for others."""
    if not powered_on(host):
        raise LabError(f"host {host.name} is powered off; `hakit-lab fault boot {host.name}` starts it")
    if host.kind == "ns":
        return nshost.enter_argv(nshost.pid1(host.name), command), nshost.host_env()
    return ssh_argv(host, [shlex.join(command)]), dict(os.environ)


def run_in(host: Host, command: list[str], timeout: float | None = 120.0) -> subprocess.CompletedProcess:
    argv, env = exec_argv(host, command)
    return subprocess.run(
        argv,
        env=env,
        cwd="/",
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
