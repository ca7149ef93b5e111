"""The VM runtime: lab hosts of kind "vm" as qemu guests booting Debian's stock kernel.

qemu runs them under KVM when this machine has one that works (accelerator()), else under TCG.

qemu runs inside the switch namespace (model.SWITCH_NS, made by net.py with one bridge per
network). Each NIC of host.all_interfaces is a tap there, named host.switch_link(i) ('m' for the
management NIC) and enslaved to its network's bridge; the guest NIC carries the interface's MAC,
and the guest names it by that MAC (eth0, eth1, ... in inventory order; mgmt0 for management).

The guest reads its identity from the kernel command line (kernel_cmdline()), so one base image
(image.ensure_vm_image()) serves every VM. Per VM, under paths.VMS/<host>/:

    root.qcow2          thin overlay on the base image       (kept by poweroff, removed by destroy)
    vdb.qcow2, ...      one disk per host.disks_mib entry    (kept by poweroff, removed by destroy)
    image.json          which base image the overlay belongs to
    accel.txt           the accelerator qemu last started with ("kvm" or "tcg")
    qemu.pid            written by qemu itself: the authority on whether the VM runs
    qmp.sock            QMP monitor (set_link, ...)
    serial.sock         serial console (`socat - UNIX-CONNECT:serial.sock`; root autologin)
    console.log         everything the serial console printed, across boots
    qemu.log            qemu's own messages

A guest `reboot` reboots (same qemu process); a guest `poweroff` ends qemu.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import aptproxy, image, model, paths
from .image import VmImage
from .model import Host, Interface, Lab, LabError

# The namespace holding the lab's bridges; tests may point it at a switch of their own.
SWITCH_NS = model.SWITCH_NS
QEMU = "qemu-system-x86_64"
TB_SIZE_MIB = 128  # TCG translation cache: qemu's default (1 GiB) doubles the RSS for no speed
QEMU_ACCEL_ARGS = {
    "kvm": ("-accel", "kvm", "-cpu", "host"),
    "tcg": ("-accel", f"tcg,thread=multi,tb-size={TB_SIZE_MIB}", "-cpu", "max"),
}
ACCEL_ENV = "HAKIT_LAB_ACCEL"  # kvm or tcg: no fallback; unset: KVM if it works, else TCG
KVM_DEVICE = Path("/dev/kvm")
KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)
KVM_API_VERSION = 12  # the only stable one
# The probe's firmware, at the reset vector (real mode): `mov al, 0x2a; out 0xf4, al; hlt; jmp hlt`.
# The write to isa-debug-exit ends qemu with status (0x2a << 1) | 1, so that status proves the
# vCPU ran guest code.
PROBE_CODE = bytes.fromhex("b02ae6f4f4ebfd")
PROBE_EXIT_STATUS = (0x2A << 1) | 1
PROBE_TIMEOUT = 10.0
# The second probe boots the VMs' own kernel, without a root, to its panic: under a working KVM in
# ~1 s, under TCG in ~8 s. A KVM that needs longer is no gain over TCG (kvm-pvm: never, see
# _kernel_problem).
KERNEL_PROBE_TIMEOUT = 30.0
KERNEL_PROBE_PANIC = "VFS: Unable to mount root fs"
ACCEL_VERDICTS = paths.CACHE / "accel-verdicts.json"  # keyed by boot id: kept by `down`, not by a reboot
CMDLINE_MAX = 2047  # x86 COMMAND_LINE_SIZE less the terminating NUL
# Fixed PCI slots keep the guest's probe order (and so its kernel names) equal to inventory order.
RNG_SLOT = 0x03
FIRST_DISK_SLOT = 0x04
FIRST_NIC_SLOT = 0x10
MAX_DISKS = FIRST_NIC_SLOT - FIRST_DISK_SLOT  # root + 11 data disks
MAX_NICS = 0x1F - FIRST_NIC_SLOT
SSH_OPTIONS = (
    "-F",
    "/dev/null",
    "-o",
    "BatchMode=yes",
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
_IFNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


# -- where things are ------------------------------------------------------------------------


def vm_dir(host: Host) -> Path:
    return paths.VMS / host.name


def pid_file(host: Host) -> Path:
    return vm_dir(host) / "qemu.pid"


def qmp_socket(host: Host) -> Path:
    return vm_dir(host) / "qmp.sock"


def serial_socket(host: Host) -> Path:
    return vm_dir(host) / "serial.sock"


def console_log(host: Host) -> Path:
    return vm_dir(host) / "console.log"


def disk_paths(host: Host) -> list[Path]:
    """The data disks /dev/vdb, /dev/vdc, ... in host.disks_mib order."""
    return [vm_dir(host) / f"vd{chr(ord('b') + i)}.qcow2" for i in range(len(host.disks_mib))]


def nic_links(lab: Lab, host: Host) -> list[tuple[Interface, str, str]]:
    """(interface, tap name, bridge) for every NIC: topology NICs in order, management last."""
    out = []
    for i, iface in enumerate(host.interfaces):
        try:
            bridge = lab.networks[iface.network].bridge
        except KeyError:
            raise LabError(
                f"{host.name}: interface {iface.name} is on unknown network {iface.network!r}"
            ) from None
        out.append((iface, host.switch_link(i), bridge))
    mgmt = host.all_interfaces[-1]
    out.append((mgmt, host.switch_link("m"), lab.mgmt.bridge))
    return out


# -- the accelerator ---------------------------------------------------------------------------


def _guest_problem(accel: str) -> str | None:
    """Why qemu with the VMs' accelerator and CPU arguments cannot run guest code, or None.

    A 64 KiB firmware on the VMs' machine type runs PROBE_CODE and exits: ~40 ms. Measured on this
    project's machines (Firecracker guests whose /dev/kvm is kvm-pvm, no vmx/svm, API version 12,
    KVM_CREATE_VM works): `-cpu host` aborts before the first instruction ("failed to set MSR 0x10a
    to 0x69", then an assertion, SIGABRT), which is the failure a VM would meet. With `-cpu qemu64`
    that KVM does run this probe and accepts `query-kvm`, yet crawls through a stock kernel's boot
    in its instruction emulator and dies in it (shared/research/vm-lab/REPORT.md): the probe
    must use the VMs' exact `-cpu host`.
    """
    with tempfile.TemporaryDirectory(prefix="hakit-lab-accel-") as tmp:
        firmware = Path(tmp, "probe.bin")
        code = bytearray(b"\xf4" * 0x10000)  # hlt everywhere else
        code[0xFFF0 : 0xFFF0 + len(PROBE_CODE)] = PROBE_CODE
        firmware.write_bytes(code)
        argv = [
            QEMU,
            *QEMU_ACCEL_ARGS[accel],
            "-machine",
            "pc",
            "-m",
            "16",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-bios",
            str(firmware),
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=1",
        ]
        try:
            out = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=PROBE_TIMEOUT
            )
        except FileNotFoundError:
            return f"{QEMU} is not installed"
        except subprocess.TimeoutExpired:
            return f"{QEMU} -accel {accel} ran no guest code within {PROBE_TIMEOUT:.0f} s"
    if out.returncode == PROBE_EXIT_STATUS:
        return None
    status = f"signal {-out.returncode}" if out.returncode < 0 else f"exit {out.returncode}"
    return f"{QEMU} {' '.join(QEMU_ACCEL_ARGS[accel])} fails ({status}): " + " | ".join(
        out.stderr.strip().splitlines()[-2:]
    )


def _kernel_problem(kernel: Path, accel: str = "kvm") -> str | None:
    """Why qemu with accel cannot boot the VMs' stock kernel in KERNEL_PROBE_TIMEOUT, or None.

    The firmware probe is not enough: a kvm-pvm /dev/kvm runs real-mode firmware, yet runs a stock
    kernel only through its instruction emulator, ~300x slower than TCG, and dies there
    (shared/research/vm-lab/REPORT.md); where it also takes `-cpu host`, a VM would print nothing
    and never answer SSH. So the kernel itself must reach its root-mount panic (panic=-1 with
    -no-reboot ends qemu there).
    """
    with tempfile.TemporaryDirectory(prefix="hakit-lab-accel-") as tmp:
        serial = Path(tmp, "serial.log")
        argv = [
            QEMU,
            *QEMU_ACCEL_ARGS[accel],
            "-machine",
            "pc",
            "-m",
            "256",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            f"file:{serial}",
            "-kernel",
            str(kernel),
            "-append",
            "console=ttyS0 panic=-1 root=/dev/hakit-lab-none",
        ]
        started = time.monotonic()
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=KERNEL_PROBE_TIMEOUT)
        seconds = time.monotonic() - started
        printed = serial.read_text(errors="replace") if serial.exists() else ""
    if KERNEL_PROBE_PANIC in printed:
        return None
    last = printed.strip().splitlines()[-1:] or ["nothing on its console"]
    return (
        f"{QEMU} -accel {accel} did not boot {kernel.name} to its root-mount panic "
        f"within {seconds:.0f} s (TCG takes ~8 s); last line: {last[0][:160]}"
    )


def kvm_problem(kernel: Path | None = None) -> str | None:
    """Why KVM cannot run the lab's VMs on this machine, or None when it can (tried for real).

    With a kernel, that kernel must also boot under KVM (_kernel_problem).
    """
    if not KVM_DEVICE.exists():
        return f"{KVM_DEVICE} does not exist"
    try:
        fd = os.open(KVM_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return f"{KVM_DEVICE} cannot be opened: {e.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError as e:
        return f"{KVM_DEVICE}: KVM_GET_API_VERSION fails: {e.strerror}"
    finally:
        os.close(fd)
    if version != KVM_API_VERSION:
        return f"{KVM_DEVICE} has KVM API version {version}, not {KVM_API_VERSION}"
    problem = _guest_problem("kvm")
    if problem is None and kernel is not None:
        problem = _kernel_problem(kernel)
    return problem


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _remembered_problem(kernel: Path) -> str | None:
    """kvm_problem(kernel), probed once per boot of this machine and kernel: a kvm-pvm machine
    would otherwise pay the kernel probe's full timeout at every `hakit-lab up`."""
    key = f"{_boot_id()} {kernel}"
    try:
        verdicts = json.loads(ACCEL_VERDICTS.read_text())
    except (OSError, ValueError):
        verdicts = {}
    if key in verdicts:
        return verdicts[key]
    problem = kvm_problem(kernel)
    ACCEL_VERDICTS.parent.mkdir(parents=True, exist_ok=True)
    ACCEL_VERDICTS.write_text(json.dumps({key: problem}) + "\n")
    return problem


_ACCEL_LOCK = threading.Lock()  # VMs start in parallel threads: one probe for all


@functools.cache
def _accelerator(kernel: Path | None) -> str:
    forced = os.environ.get(ACCEL_ENV, "")
    if forced not in ("", *QEMU_ACCEL_ARGS):
        raise LabError(f"{ACCEL_ENV}={forced!r}: use kvm or tcg, or unset it to choose automatically")
    if forced == "tcg":
        return "tcg"
    problem = kvm_problem() if kernel is None else _remembered_problem(kernel)
    if problem is None:
        return "kvm"
    if forced == "kvm":
        raise LabError(
            f"{ACCEL_ENV}=kvm but KVM does not work here: {problem}; "
            f"unset {ACCEL_ENV} (or set it to tcg) to run the VMs under TCG"
        )
    return "tcg"


def accelerator(kernel: Path | None = None) -> str:
    """The VMs' accelerator: "kvm" if KVM works here (and boots kernel), else "tcg"; ACCEL_ENV
    forces one. Probed once per process (and per boot of the machine for a kernel)."""
    with _ACCEL_LOCK:
        return _accelerator(kernel)


def started_accel(host: Host) -> str | None:
    """The accelerator the VM's qemu last started with; None if it never started."""
    try:
        return (vm_dir(host) / "accel.txt").read_text().strip()
    except OSError:
        return None


# -- the guest's identity ----------------------------------------------------------------------


def kernel_cmdline(lab: Lab, host: Host) -> str:
    """Boot parameters: console, root, and the identity the guest's setup script reads."""
    if not _HOSTNAME.match(host.name):
        raise LabError(f"VM host name {host.name!r} is not a valid hostname (letters, digits, '-')")
    machine_id = hashlib.sha256(f"hakit-lab {host.name}".encode()).hexdigest()[:32]
    args = [
        "console=ttyS0",
        "root=/dev/vda",
        "rw",
        "net.ifnames=0",
        "quiet",
        "systemd.show_status=error",
        "panic=-1",
        "mitigations=off",
        "8250.nr_uarts=1",
        f"systemd.hostname={host.name}",
        f"systemd.machine_id={machine_id}",
        f"hkl.hostname={host.name}",
    ]
    for iface in host.interfaces:
        if not _IFNAME.match(iface.name) or iface.name == "mgmt0":
            raise LabError(f"{host.name}: {iface.name!r} is not a usable interface name")
        nic = f"hkl.nic={iface.name},{iface.mac},{iface.address.with_prefixlen}"
        if iface.gateway is not None:
            nic += f",{iface.gateway}"
        args.append(nic)
    mgmt = host.all_interfaces[-1]
    args.append(f"hkl.mgmt={mgmt.mac},{mgmt.address.with_prefixlen}")
    args.append(f"hkl.apt={image.encode_apt_sources(aptproxy.sources_list(lab.controller))}")
    cmdline = " ".join(args)
    if len(cmdline) > CMDLINE_MAX:
        raise LabError(
            f"{host.name}: kernel command line too long ({len(cmdline)} > {CMDLINE_MAX}); fewer NICs"
        )
    return cmdline


def qemu_argv(lab: Lab, host: Host, img: image.VmImage, accel: str) -> list[str]:
    """qemu's command line (without the `ip netns exec` in front); accel is "kvm" or "tcg"."""
    if len(host.disks_mib) + 1 > MAX_DISKS:
        raise LabError(f"{host.name}: at most {MAX_DISKS - 1} data disks")
    links = nic_links(lab, host)
    if len(links) > MAX_NICS:
        raise LabError(f"{host.name}: at most {MAX_NICS - 1} topology NICs")
    d = vm_dir(host)
    argv = [
        QEMU,
        "-name",
        f"{host.name},process={model.PREFIX}-{host.name}",
        *QEMU_ACCEL_ARGS[accel],
        "-machine",
        "pc",
        "-smp",
        "1",
        "-m",
        str(host.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-kernel",
        str(img.kernel),
        "-initrd",
        str(img.initrd),
        "-append",
        kernel_cmdline(lab, host),
        "-device",
        f"virtio-rng-pci,addr={RNG_SLOT:#x}",
    ]
    for i, disk in enumerate([d / "root.qcow2", *disk_paths(host)]):
        argv += [
            "-drive",
            f"file={disk},if=none,id=disk{i},format=qcow2,cache=unsafe,discard=unmap",
            "-device",
            f"virtio-blk-pci,drive=disk{i},addr={FIRST_DISK_SLOT + i:#x}",
        ]
    for i, (iface, tap, _bridge) in enumerate(links):
        argv += [
            "-netdev",
            f"tap,id=net-{iface.name},ifname={tap},script=no,downscript=no",
            "-device",
            f"virtio-net-pci,netdev=net-{iface.name},id={iface.name},mac={iface.mac},addr={FIRST_NIC_SLOT + i:#x}",
        ]
    argv += [
        "-chardev",
        f"socket,id=serial0,path={serial_socket(host)},server=on,wait=off,logfile={console_log(host)},logappend=on",
        "-serial",
        "chardev:serial0",
        "-qmp",
        f"unix:{qmp_socket(host)},server=on,wait=off",
        "-daemonize",
        "-pidfile",
        str(pid_file(host)),
    ]
    return argv


# -- processes ---------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while `pid` runs; a zombie (waiting for its reaper) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def running_pid(host: Host) -> int | None:
    """qemu's pid from its pid file, if that process is this VM's qemu and still runs."""
    try:
        pid = int(pid_file(host).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if str(pid_file(host)).encode() not in cmdline or not _alive(pid):
        return None
    return pid


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and out.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


def _switch_exists() -> bool:
    return Path("/run/netns", SWITCH_NS).exists()


def create_taps(lab: Lab, host: Host) -> None:
    if not _switch_exists():
        raise LabError(
            f"the lab's switch namespace {SWITCH_NS} does not exist; bring the lab's network up first"
        )
    for _iface, tap, bridge in nic_links(lab, host):
        _ip("-n", SWITCH_NS, "link", "del", tap, check=False)
        _ip("-n", SWITCH_NS, "tuntap", "add", "dev", tap, "mode", "tap")
        _ip("-n", SWITCH_NS, "link", "set", tap, "master", bridge, "up")


def remove_taps(host: Host) -> None:
    if not _switch_exists():
        return
    names = [host.switch_link(i) for i in range(len(host.interfaces))] + [host.switch_link("m")]
    for tap in names:
        _ip("-n", SWITCH_NS, "link", "del", tap, check=False)


def _qemu_img(*args: str) -> None:
    out = subprocess.run(["qemu-img", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if out.returncode != 0:
        raise LabError(f"qemu-img {' '.join(args)}: {out.stderr.strip()}")


def _image_for(host: Host, img: image.VmImage) -> image.VmImage:
    """The image this VM's disk was made from: a kept disk stays bound to its own base."""
    record = vm_dir(host) / "image.json"
    if not (vm_dir(host) / "root.qcow2").exists() or not record.exists():
        return img
    old = json.loads(record.read_text())
    if old["base_qcow2"] == str(img.base_qcow2):
        return img
    kept = image.VmImage(
        kernel=Path(old["kernel"]),
        initrd=Path(old["initrd"]),
        base_qcow2=Path(old["base_qcow2"]),
        kernel_version=old["kernel_version"],
    )
    if not all(p.is_file() for p in (kept.kernel, kept.initrd, kept.base_qcow2)):
        raise LabError(
            f"{host.name}: its disk was made from {kept.base_qcow2}, which is gone; destroy the VM to start afresh"
        )
    return kept


def _ensure_disks(host: Host, img: image.VmImage) -> None:
    d = vm_dir(host)
    root = d / "root.qcow2"
    if not root.exists():
        tmp = d / "root.qcow2.tmp"
        _qemu_img("create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(img.base_qcow2), str(tmp))
        os.replace(tmp, root)
        record = {
            "base_qcow2": str(img.base_qcow2),
            "kernel": str(img.kernel),
            "initrd": str(img.initrd),
            "kernel_version": img.kernel_version,
        }
        (d / "image.json").write_text(json.dumps(record, indent=1) + "\n")
    for path, mib in zip(disk_paths(host), host.disks_mib, strict=True):
        if not path.exists():
            tmp = path.with_suffix(".tmp")
            _qemu_img("create", "-q", "-f", "qcow2", str(tmp), f"{mib}M")
            os.replace(tmp, path)


def start(lab: Lab, host: Host, image: VmImage) -> int:
    """Boot the VM (or find it running); returns qemu's pid without waiting for the guest."""
    if host.kind != "vm":
        raise LabError(f"{host.name} is a {host.kind!r} host, not a VM")
    pid = running_pid(host)
    if pid is not None:
        return pid
    d = vm_dir(host)
    d.mkdir(parents=True, exist_ok=True)
    img = _image_for(host, image)
    _ensure_disks(host, img)
    for stale in (pid_file(host), qmp_socket(host), serial_socket(host)):
        stale.unlink(missing_ok=True)
    accel = accelerator(img.kernel)
    argv = ["ip", "netns", "exec", SWITCH_NS, *qemu_argv(lab, host, img, accel)]
    create_taps(lab, host)
    # -daemonize: qemu detaches from us once it runs (so it never holds our stdout/stderr and is
    # never our zombie) and its exit status tells whether it started.
    with (d / "qemu.log").open("ab") as logf:
        logf.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} start\n".encode())
        logf.flush()
        rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, timeout=120).returncode
    pid = running_pid(host)
    if rc != 0 or pid is None:
        remove_taps(host)
        tail = (d / "qemu.log").read_text(errors="replace").splitlines()[-5:]
        raise LabError(f"{host.name}: qemu did not start (exit {rc}): " + " | ".join(tail))
    (d / "accel.txt").write_text(accel + "\n")
    return pid


def ssh_argv(host: Host, *command: str) -> list[str]:
    """ssh as root to the VM's management address, with the lab's key."""
    return ["ssh", "-i", str(paths.SSH_KEY), *SSH_OPTIONS, f"root@{host.mgmt.ip}", *command]


def console_tail(host: Host, lines: int = 15) -> str:
    try:
        text = console_log(host).read_bytes().decode(errors="replace")
    except OSError:
        return "(no console log)"
    return "\n".join(text.replace("\r", "").splitlines()[-lines:])


def wait_ssh(host: Host, timeout: float = 300.0) -> float:
    """Seconds (from this call) until `ssh root@<mgmt ip> true` works."""
    t0 = time.monotonic()
    while True:
        if running_pid(host) is None:
            raise LabError(f"{host.name}: qemu is not running; console:\n{console_tail(host)}")
        try:
            rc = subprocess.run(
                ssh_argv(host, "true"), stdin=subprocess.DEVNULL, capture_output=True, timeout=20
            ).returncode
        except subprocess.TimeoutExpired:
            rc = -1
        elapsed = time.monotonic() - t0
        if rc == 0:
            return elapsed
        if elapsed > timeout:
            raise LabError(
                f"{host.name}: no ssh to {host.mgmt.ip} within {timeout:.0f} s; console:\n{console_tail(host)}"
            )
        time.sleep(1.0)


def poweroff(host: Host, timeout: float = 15.0) -> None:
    """Pull the plug: end qemu by its pid file (the guest shuts nothing down), remove its taps.

    qemu gets SIGTERM first so that it closes the qcow2 files cleanly (what the guest wrote to its
    virtual disks stays; what it had only in its page cache is lost); SIGKILL if it lingers.
    """
    pid = running_pid(host)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = False
        while _alive(pid):
            if time.monotonic() > deadline:
                if killed:
                    raise LabError(f"{host.name}: qemu {pid} survives SIGKILL")
                os.kill(pid, signal.SIGKILL)
                killed = True
                deadline = time.monotonic() + timeout
            time.sleep(0.05)
    for p in (pid_file(host), qmp_socket(host), serial_socket(host)):
        p.unlink(missing_ok=True)
    remove_taps(host)


def destroy(host: Host) -> None:
    """poweroff + remove the VM's disks and everything else under its directory."""
    poweroff(host)
    d = vm_dir(host)
    if d.exists():
        for p in sorted(d.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() or p.is_symlink() else p.rmdir()
        d.rmdir()


# -- the monitor -------------------------------------------------------------------------------


def qmp(host: Host, command: str, timeout: float = 10.0, **arguments: object) -> object:
    """Run one QMP command on the VM's monitor; returns its "return" value."""
    if running_pid(host) is None:
        raise LabError(f"{host.name} is not running")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(qmp_socket(host)))
        f = s.makefile("rwb")

        def call(execute: str, args: dict | None = None) -> object:
            msg: dict = {"execute": execute}
            if args:
                msg["arguments"] = args
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            while True:
                line = f.readline()
                if not line:
                    raise LabError(f"{host.name}: the QMP monitor closed the connection")
                reply = json.loads(line)
                if "error" in reply:
                    raise LabError(
                        f"{host.name}: QMP {execute}: {reply['error'].get('desc', reply['error'])}"
                    )
                if "return" in reply:
                    return reply["return"]
                # anything else is an asynchronous event: skip it

        greeting = json.loads(f.readline() or b"{}")
        if "QMP" not in greeting:
            raise LabError(f"{host.name}: {qmp_socket(host)} did not greet as a QMP monitor")
        call("qmp_capabilities")
        return call(command, arguments)


def set_link(host: Host, ifname: str, up: bool) -> None:
    """Plug (up=True) or unplug a guest NIC's cable: the guest sees the carrier change."""
    names = [i.name for i in host.all_interfaces]
    if ifname not in names:
        raise LabError(f"{host.name} has no interface {ifname!r}; it has: {', '.join(names)}")
    qmp(host, "set_link", name=ifname, up=up)
