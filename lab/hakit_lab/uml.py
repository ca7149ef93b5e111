"""The uml runtime: lab hosts of kind "uml" as User-mode Linux kernels running as host processes.

Debian's user-mode-linux kernel has the modules the seed systems need (drbd 8.4, ip_vs and its
schedulers, ipip) and runs as an ordinary process: no KVM, no emulation of a CPU. Each guest
process is a host process of the kernel's process group. Measured facts and traps:
shared/research/uml-lab/REPORT.md.

The kernel runs inside the switch namespace (model.SWITCH_NS), like qemu: each NIC of
host.all_interfaces is a tap there (the same names and bridges as a VM's, vm.create_taps), which
the vector driver opens with gro=1 (without it the tap's GSO frames are dropped and inbound TCP
collapses). The guest's init (uml_init.sh, in the base image) names the NICs, brings up mgmt0 and
then runs the ns hosts' init (ns_init.sh) with the same boot inputs (nshost.write_boot_inputs), read
from this host's boot directory through hostfs, which the kernel's hostfs= option confines to it.

Per host, under paths.UMLS/<host>/:

    root.cow        the host's writable layer over the base image (ubd COW; kept by poweroff)
    ubdb.img, ...   one sparse data disk per host.disks_mib entry: /dev/ubdb, /dev/ubdc, ...
    image.json      which base image the COW file belongs to
    boot/           the init and its inputs for the next boot
    console.log     what the guest's console printed, across boots
and under paths.UMLS/umid/<prefix>-<host>/ the kernel's own files: `pid` (the authority on whether
the host runs; its process group is the host) and `mconsole`.

poweroff is SIGKILL to the whole process group: what the guest had not written to its disks is
lost, as on a power cut; the taps go, so its peers see silence. A guest's memory lives in a
deleted file under /dev/shm and is the host's again once the process group is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import aptproxy, image, model, net, nshost, paths
from .model import Host, Lab, LabError
from .sysutil import alive, wait_gone
from .vm import create_taps, nic_links, remove_taps

KERNEL = "linux.uml"
SWITCH_NS = model.SWITCH_NS
MAX_DISKS = 15  # ubdb..ubdp (ubd has 16 minors per major)


def host_dir(host: Host) -> Path:
    return paths.UMLS / host.name


def umid(host: Host) -> str:
    return f"{model.PREFIX}-{host.name}"


def umid_dir(host: Host) -> Path:
    # Apart from host_dir: UML refuses a umid directory holding files it did not write.
    return paths.UMLS / "umid" / umid(host)


def console_log(host: Host) -> Path:
    return host_dir(host) / "console.log"


def disk_paths(host: Host) -> list[Path]:
    """The data disks /dev/ubdb, /dev/ubdc, ... in host.disks_mib order."""
    return [host_dir(host) / f"ubd{chr(ord('b') + i)}.img" for i in range(len(host.disks_mib))]


def kernel_argv(lab: Lab, host: Host, img: image.UmlImage) -> list[str]:
    """The kernel's command line (without the `ip netns exec` in front)."""
    if len(host.disks_mib) > MAX_DISKS:
        raise LabError(f"{host.name}: a uml host has at most {MAX_DISKS} data disks")
    d = host_dir(host)
    argv = [
        str(img.kernel),
        f"umid={umid(host)}",
        f"uml_dir={umid_dir(host).parent}",
        f"mem={host.memory_mib}M",
        f"ubd0={d / 'root.cow'},{img.base}",
        *(f"ubd{i + 1}={disk}" for i, disk in enumerate(disk_paths(host))),
        "root=/dev/ubda",
        "ro",
        f"init={image.UML_INIT}",
        f"hostfs={d / 'boot'}",
        "con=null",
        "ssl=null",
        "con0=null,fd:1",
        "quiet",
    ]
    for i, (iface, tap, _bridge) in enumerate(nic_links(lab, host)):
        argv.append(f"vec{i}:transport=tap,ifname={tap},mac={iface.mac},gro=1")
    return argv


# -- processes ---------------------------------------------------------------------------------


def running_pid(host: Host) -> int | None:
    """The kernel's pid from its umid pid file, if that process is this host's kernel and runs."""
    try:
        pid = int((umid_dir(host) / "pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if f"umid={umid(host)}".encode() not in cmdline or not alive(pid):
        return None
    return pid


def _group(pid: int) -> list[int]:
    """Every process of pid's process group (the guest's processes and their stubs)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pid:
                    members.append(int(entry.name))
            except OSError:
                continue
    return members


def _image_for(host: Host, img: image.UmlImage) -> image.UmlImage:
    """The image this host's COW file was made over: a kept disk stays bound to its own base."""
    record = host_dir(host) / "image.json"
    if not (host_dir(host) / "root.cow").exists() or not record.exists():
        return img
    old = image.UmlImage(**{k: Path(v) for k, v in json.loads(record.read_text()).items()})
    if old.base == img.base:
        return img
    if not (old.base.is_file() and old.kernel.is_file()):
        raise LabError(
            f"{host.name}: its disk was made over {old.base}, which is gone; `hakit-lab down` first"
        )
    return old


def _ensure_disks(host: Host, img: image.UmlImage) -> None:
    d = host_dir(host)
    if not (d / "root.cow").exists():
        # UML writes the COW header itself at first boot; the record says over which base.
        (d / "image.json").write_text(json.dumps({"kernel": str(img.kernel), "base": str(img.base)}) + "\n")
    for path, mib in zip(disk_paths(host), host.disks_mib, strict=True):
        if not path.exists():
            with path.open("wb") as f:
                f.truncate(mib << 20)


def start(lab: Lab, host: Host, img: image.UmlImage, public_key: str) -> int:
    """Boot the host (or find it running); returns the kernel's pid without waiting for the guest."""
    if host.kind != "uml":
        raise LabError(f"{host.name} is a {host.kind!r} host, not a uml host")
    pid = running_pid(host)
    if pid is not None:
        return pid
    d = host_dir(host)
    d.mkdir(parents=True, exist_ok=True)
    img = _image_for(host, img)
    _ensure_disks(host, img)
    boot = d / "boot"
    nshost.write_boot_inputs(lab, host, aptproxy.sources_list(lab.controller), public_key, boot)
    links = nic_links(lab, host)
    (boot / "nics").write_text("".join(f"vec{i} {iface.name}\n" for i, (iface, _, _) in enumerate(links)))
    (boot / "mgmt-address").write_text(f"{host.mgmt.with_prefixlen}\n")
    shutil.rmtree(umid_dir(host), ignore_errors=True)
    umid_dir(host).parent.mkdir(parents=True, exist_ok=True)
    create_taps(lab, host)
    argv = ["ip", "netns", "exec", SWITCH_NS, *kernel_argv(lab, host, img)]
    # The guest's RAM is a deleted file in TMPDIR: a tmpfs that allows exec.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": "/dev/shm"}
    if img.preload.is_file():  # a disk kept from before the wrapper existed boots without it
        env["LD_PRELOAD"] = str(img.preload)
    with console_log(host).open("ab") as log:
        log.write(f"--- hakit-lab: boot {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
        log.flush()
        # A session of its own: the process group is the host (poweroff kills it whole), and the
        # kernel outlives this command; --fork leaves it to the machine's init to reap.
        subprocess.run(
            ["setsid", "--fork", *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, check=True
        )
    deadline = time.monotonic() + 30
    while (pid := running_pid(host)) is None:
        if time.monotonic() > deadline:
            remove_taps(host)
            raise LabError(f"{host.name}: the uml kernel did not start; console:\n{console_tail(host)}")
        time.sleep(0.05)
    return pid


def console_tail(host: Host, lines: int = 15) -> str:
    try:
        text = console_log(host).read_bytes().decode(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


def wait_ssh(host: Host, ssh_ok, timeout: float) -> float:
    """Seconds (from this call) until sshd greets on the management address and `ssh true` works.

    The banner is polled first: an ssh handshake costs a loaded guest far more than a connect.
    """
    t0 = time.monotonic()
    while True:
        if running_pid(host) is None:
            raise LabError(f"{host.name}: the uml kernel is not running; console:\n{console_tail(host)}")
        elapsed = time.monotonic() - t0
        if nshost.ssh_banner(str(host.mgmt.ip)) and ssh_ok(host, timeout=30.0):
            return time.monotonic() - t0
        if elapsed > timeout:
            raise LabError(
                f"{host.name}: no ssh to {host.mgmt.ip} within {timeout:.0f} s; console:\n{console_tail(host)}"
            )
        time.sleep(0.2)


def poweroff(host: Host, timeout: float = 15.0) -> None:
    """Pull the plug: SIGKILL to the kernel's process group, then remove its taps."""
    pid = running_pid(host)
    if pid is not None:
        os.killpg(pid, signal.SIGKILL)
        left = wait_gone(_group(pid), timeout)
        if left:
            raise LabError(f"{host.name}: processes {left} of the uml kernel survive SIGKILL")
    (umid_dir(host) / "pid").unlink(missing_ok=True)
    remove_taps(host)


def destroy(host: Host) -> None:
    """poweroff + remove the host's disks and everything else under its directories."""
    poweroff(host)
    shutil.rmtree(host_dir(host), ignore_errors=True)
    shutil.rmtree(umid_dir(host), ignore_errors=True)


def set_link(lab: Lab, host: Host, ifname: str, up: bool) -> None:
    """Unplug (up=False) or plug a NIC: its tap leaves or rejoins its bridge.

    The tap itself stays up: taking it down stalls the vector driver's transmit queue for good
    (measured: after `link set down` with traffic pending and `up` again, the guest's NIC sent
    nothing more). Unplugged, the guest's frames go nowhere and nothing reaches it; UML has no
    carrier to drop, so the guest keeps its link up (a NIC watcher sees no change here).
    """
    tap = host.switch_link(net.nic_index(host, ifname))
    bridge = {t: b for _, t, b in nic_links(lab, host)}[tap]
    net.ip_batch([f"link set {tap} {f'master {bridge}' if up else 'nomaster'}"], SWITCH_NS)
