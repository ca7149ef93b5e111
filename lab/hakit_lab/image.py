"""Base images of the lab hosts, built once and cached by content hash under paths.CACHE.

ensure_rootfs()    a minimal Debian bookworm root (debootstrap --variant=minbase plus what a fresh
                   minimal server has and the lab needs). ns hosts use it as their lower layer.
ensure_uml_image() Debian's user-mode-linux kernel and an ext4 image made from a copy of that root
                   plus the kernel's modules and the uml hosts' init (uml_init.sh). Every uml host
                   boots it through a COW file of its own (see uml.py).
ensure_vm_image()  Debian's stock kernel, a busybox initramfs and an ext4/qcow2 image made from a
                   copy of that root plus the kernel's modules and the VM boot configuration. Every
                   VM boots the same image and reads its identity from the kernel command line
                   (see vm_cmdline() and the guest script VM_SETUP below).

Layout:  CACHE/rootfs/<key>/{root/, manifest.txt, build.log, complete}
         CACHE/uml/<key>/{base.img, kernel_version, complete}
         CACHE/vm/<key>/{vmlinuz, initrd.img, base.qcow2, kernel_version, complete}

`complete` is written last: an entry without it is a half-built one and is rebuilt from scratch.
Builds happen in a temporary directory next to the entry and are renamed into place, under a lock,
so concurrent callers never see or use a partial build.

Packages the roles install (heartbeat, apache2, drbd-utils, ipvsadm, ldirectord, curl, ...) are
deliberately NOT in the image: a role that forgets one fails in the lab as it would on a server.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import aptproxy, paths
from .model import LabError
from .sysutil import locked

log = logging.getLogger("hakit_lab.image")

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What a fresh minimal server has, plus what the lab needs (sshd, python3 for Ansible, tini as the
# ns hosts' PID 1, ifupdown as the Debian installer sets it up). debootstrap does not resolve
# virtual packages: a dependency that only a virtual package satisfies needs its provider listed.
PACKAGES = (
    "systemd-sysv",
    "udev",
    "dbus",
    "kmod",
    "openssh-server",
    "python3",
    "python3-apt",
    "iproute2",
    "iputils-ping",
    "ifupdown",
    "procps",
    "netbase",
    "tini",
    "ca-certificates",
    "less",
)
# Bump when the rootfs configuration below changes (the cache key covers it).
ROOTFS_CONFIG_VERSION = 3
# Bump when the VM image configuration (modules, initramfs, guest boot scripts) changes.
VM_CONFIG_VERSION = 4
VM_DISK_SIZE = "4G"
KERNEL_META_PACKAGE = "linux-image-amd64"

# Kernel module trees not needed in a virtio VM (keeps the image ~250 MB smaller).
PRUNED_MODULE_DIRS = (
    "sound",
    "drivers/gpu",
    "drivers/media",
    "drivers/infiniband",
    "drivers/iio",
    "drivers/usb",
    "drivers/comedi",
    "drivers/staging",
    "drivers/hwmon",
    "drivers/net/wireless",
    "drivers/net/can",
    "drivers/bluetooth",
    "drivers/isdn",
    "drivers/mtd",
    "drivers/thunderbolt",
    "drivers/nfc",
    "drivers/video",
    "drivers/w1",
    "drivers/spi",
    "drivers/i2c",
    "drivers/input/touchscreen",
    "drivers/leds",
    "drivers/power",
    "drivers/platform",
    "net/wireless",
    "net/mac80211",
    "net/bluetooth",
)
# What the initramfs loads before mounting /dev/vda (dependencies are added from modules.dep).
INITRAMFS_MODULES = ("virtio_pci", "virtio_blk", "crc32c_generic", "ext4")


@dataclass(frozen=True)
class VmImage:
    kernel: Path
    initrd: Path
    base_qcow2: Path
    kernel_version: str  # e.g. 6.1.0-56-amd64 (the module directory name)


# -- helpers --------------------------------------------------------------------------------


def _run(argv: list[str], *, logfile: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run a command with C locale; on failure raise LabError with its last output lines."""
    env = dict(os.environ, LC_ALL="C", LANG="C", DEBIAN_FRONTEND="noninteractive")
    env.update(kw.pop("env", {}))
    out = subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        **kw,
    )
    if logfile is not None:
        with logfile.open("a") as f:
            f.write(f"$ {' '.join(argv)}\n{out.stdout}")
    if out.returncode != 0:
        tail = "\n".join(out.stdout.splitlines()[-15:])
        raise LabError(f"{argv[0]} failed ({out.returncode}): {' '.join(argv)}\n{tail}")
    return out


def _sha256(*parts: object) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _complete(entry: Path) -> bool:
    return (entry / "complete").is_file()


def _cached_build(kind: str, key: str, build) -> Path:
    """CACHE/<kind>/<key>, built by build(tmpdir) in a temp dir next to it if not complete."""
    top = paths.CACHE / kind
    entry = top / key
    if _complete(entry):
        return entry
    with locked(top / ".lock"):
        if _complete(entry):
            return entry
        # Leftovers of interrupted builds (we hold the lock: nobody else is building).
        for stale in top.glob(".build-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if entry.exists():
            log.info("%s: %s is incomplete, rebuilding it from scratch", kind, entry)
            shutil.rmtree(entry)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{key}-", dir=top))
        try:
            build(tmp)
            (tmp / "complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z\n"))
            os.rename(tmp, entry)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return entry


def ensure_ssh_key() -> Path:
    """paths.SSH_KEY (ed25519, root's key on every lab host), generated once."""
    key = paths.SSH_KEY
    if key.is_file() and key.with_suffix(".pub").is_file():
        return key
    with locked(key.parent / ".lock"):
        if key.is_file() and key.with_suffix(".pub").is_file():
            return key
        tmp = Path(tempfile.mkdtemp(prefix=".keygen-", dir=key.parent))
        try:
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hakit-lab", "-f", str(tmp / "k")])
            os.chmod(key.parent, 0o700)
            os.replace(tmp / "k.pub", key.with_suffix(".pub"))
            os.replace(tmp / "k", key)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return key


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


# -- root filesystem ------------------------------------------------------------------------

SSHD_CONFIG = """\
# hakit-lab: key-only root login for the controller, no DNS (the lab has none)
PermitRootLogin prohibit-password
UseDNS no
"""

# Translation indexes are 6 MB to fetch and 32 MB to unpack and hash on every `apt-get update`;
# under TCG that is most of its time, and no role needs package descriptions in other languages.
APT_CONF = """\
// hakit-lab: no translated package descriptions
Acquire::Languages "none";
"""

DPKG_NODOC = """\
# hakit-lab: no documentation, manual pages or translations (as Debian's slim images)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
"""


def rootfs_key() -> str:
    pub = ensure_ssh_key().with_suffix(".pub").read_text().strip()
    return _sha256("rootfs", SUITE, sorted(PACKAGES), ROOTFS_CONFIG_VERSION, pub)


def ensure_rootfs(mirror: str | None = None) -> Path:
    """The minimal bookworm root directory (CACHE/rootfs/<key>/root), built once.

    mirror: a Debian mirror URL for debootstrap. By default debootstrap goes through an apt
    proxy run in this process, so the packages land in paths.APT_CACHE and are reused by rebuilds
    and by the lab hosts.
    """
    entry = _cached_build("rootfs", rootfs_key(), lambda tmp: _build_rootfs(tmp, mirror))
    return entry / "root"


def _build_rootfs(work: Path, mirror: str | None) -> None:
    root = work / "root"
    logfile = work / "build.log"
    t0 = time.monotonic()
    if mirror is None:
        with aptproxy.serving() as base:
            _debootstrap(root, f"{base}/debian", logfile)
    else:
        _debootstrap(root, mirror, logfile)
    log.info("rootfs: debootstrap %.0f s", time.monotonic() - t0)
    _configure_rootfs(root, logfile)
    manifest = _run(["chroot", str(root), "dpkg-query", "-W", "-f", "${Package} ${Version}\\n"]).stdout
    (work / "manifest.txt").write_text(manifest)
    log.info("rootfs: %d packages, built in %.0f s", len(manifest.splitlines()), time.monotonic() - t0)


def _debootstrap(root: Path, mirror: str, logfile: Path) -> None:
    argv = [
        "debootstrap",
        "--variant=minbase",
        "--components=main",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(root),
        mirror,
    ]
    try:
        _run(argv, logfile=logfile)
    except LabError as e:
        detail = ""
        dlog = root / "debootstrap" / "debootstrap.log"
        if dlog.is_file():
            detail = "\n" + "\n".join(dlog.read_text(errors="replace").splitlines()[-10:])
        raise LabError(f"{e}{detail}") from None


def _configure_rootfs(root: Path, logfile: Path) -> None:
    pub = ensure_ssh_key().with_suffix(".pub").read_text()
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    _write(ssh_dir / "authorized_keys", pub, 0o600)
    _write(root / "etc/ssh/sshd_config.d/hakit-lab.conf", SSHD_CONFIG)
    # The lab writes its package source when a host starts (aptproxy.sources_list()).
    _write(root / "etc/apt/sources.list", "")
    for f in (root / "etc/apt/sources.list.d").glob("*"):
        f.unlink()
    _write(root / "etc/dpkg/dpkg.cfg.d/hakit-lab-nodoc", DPKG_NODOC)
    _write(root / "etc/apt/apt.conf.d/90hakit-lab", APT_CONF)
    _write(root / "etc/hostname", "localhost\n")
    _write(root / "etc/hosts", "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n")
    # No resolver in the lab; the host machine's must not leak in (debootstrap copies it).
    _write(root / "etc/resolv.conf", "")
    _run(["chroot", str(root), "apt-get", "clean"], logfile=logfile)
    for pattern in (
        "var/lib/apt/lists/*",
        "var/cache/apt/*.bin",
        "usr/share/doc/*",
        "usr/share/man/*",
        "usr/share/info/*",
        "usr/share/locale/*",
        "usr/share/lintian/*",
        "var/log/*.log",
        "var/log/apt/*",
        "tmp/*",
    ):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()
    _write(root / "usr/share/locale/locale.alias", "")
    # Emptying the lists touched their directory, and apt's cache_valid_time reads that mtime when
    # no update ever succeeded: a play's `update_cache: true, cache_valid_time: 3600` would skip the
    # update on an image younger than an hour and find no package. Dated 1970, the lists are stale.
    os.utime(root / "var/lib/apt/lists", (0, 0))


# -- kernel ----------------------------------------------------------------------------------


APT_LISTS = Path("/var/lib/apt/lists")


def _apt_lists_signature() -> str:
    """Changes whenever the controller's apt package lists do."""
    try:
        entries = sorted(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in APT_LISTS.glob("*_Packages*")
        )
    except OSError:
        return ""
    return _sha256(entries)


def kernel_package() -> tuple[str, str]:
    """(package, version) of the kernel the meta package linux-image-amd64 depends on.

    Remembered (CACHE/vm/kernel.json) until the controller's apt lists change: apt-cache takes
    seconds, and the answer is part of every cached ensure_vm_image() call.
    """
    memo = paths.CACHE / "vm" / "kernel.json"
    signature = _apt_lists_signature()
    with contextlib.suppress(OSError, ValueError, KeyError):
        known = json.loads(memo.read_text())
        if signature and known["signature"] == signature:
            return known["package"], known["version"]
    pkg, version = _resolve_kernel_package()
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(
        json.dumps({"signature": _apt_lists_signature(), "package": pkg, "version": version}) + "\n"
    )
    os.replace(tmp, memo)
    return pkg, version


def _resolve_kernel_package() -> tuple[str, str]:

    def resolve() -> tuple[str, str] | None:
        out = subprocess.run(
            ["apt-cache", "depends", KERNEL_META_PACKAGE],
            capture_output=True,
            text=True,
            env={"LC_ALL": "C", **os.environ},
        ).stdout
        pkg = next((ln.split()[-1] for ln in out.splitlines() if "Depends: linux-image-" in ln), None)
        if pkg is None:
            return None
        pol = subprocess.run(["apt-cache", "policy", pkg], capture_output=True, text=True).stdout
        ver = next((ln.split()[-1] for ln in pol.splitlines() if ln.strip().startswith("Candidate:")), None)
        return (pkg, ver) if ver and ver != "(none)" else None

    found = resolve()
    if found is None:
        log.info("kernel: updating the controller's apt lists to find %s", KERNEL_META_PACKAGE)
        _run(["apt-get", "update", "-q"])
        found = resolve()
    if found is None:
        raise LabError(
            f"cannot resolve {KERNEL_META_PACKAGE} with the controller's apt; is Debian's archive in its sources?"
        )
    return found


def _fetch_kernel(pkg: str, version: str, dest: Path) -> None:
    """apt-get download the kernel package and unpack it into dest."""
    dl = dest / "deb"
    dl.mkdir(parents=True)
    try:
        _run(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=dl)
    except LabError:
        # The security archive drops superseded kernels: refresh the lists once and retry.
        _run(["apt-get", "update", "-q"])
        _run(["apt-get", "download", "-q", f"{pkg}={version}"], cwd=dl)
    deb = next(dl.glob("*.deb"))
    _run(["dpkg-deb", "-x", str(deb), str(dest / "x")])
    shutil.rmtree(dl)


# -- initramfs -------------------------------------------------------------------------------


def _modules_closure(moddir: Path, names: Iterable[str]) -> list[Path]:
    """Module files for `names` and their dependencies, in load order (dependencies first)."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
        by_name[Path(mod).name.split(".ko")[0].replace("-", "_")] = mod
    order: list[str] = []

    def visit(mod: str) -> None:
        if mod in order:
            return
        # modules.dep lists a module's dependencies with the ones to load last first.
        for dep in reversed(deps.get(mod, [])):
            visit(dep)
        order.append(mod)

    for name in names:
        mod = by_name.get(name.replace("-", "_"))
        if mod is None:
            raise LabError(f"kernel module {name} not found in {moddir}")
        visit(mod)
    return [moddir / m for m in order]


def _is_static(binary: Path) -> bool:
    """An ELF executable without a program interpreter."""
    data = binary.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


INITRAMFS_INIT = """\
#!/bin/busybox sh
# hakit-lab initramfs: load virtio + ext4, mount root= read-write, switch_root to its init.
export PATH=/bin
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in {modules}; do /bin/busybox insmod /lib/modules/$m 2>/dev/null; done
root=/dev/vda
for a in $(/bin/busybox cat /proc/cmdline); do case $a in root=*) root=${{a#root=}};; esac; done
i=0; while [ ! -b $root ] && [ $i -lt 200 ]; do /bin/busybox sleep 0.05; i=$((i+1)); done
if ! /bin/busybox mount -t ext4 -o rw $root /newroot; then
    echo "hakit-lab initramfs: cannot mount $root"; exec /bin/busybox sh
fi
/bin/busybox umount /proc /sys
/bin/busybox mount --move /dev /newroot/dev 2>/dev/null || /bin/busybox umount /dev
exec /bin/busybox switch_root /newroot /sbin/init
"""


class _Cpio:
    """A minimal writer of the 'newc' cpio format the kernel unpacks."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        nameb = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0)
        self.ino += 1
        self.buf.write(b"070701" + b"".join(f"{v:08x}".encode() for v in fields))
        self.buf.write(nameb)
        self.buf.write(b"\0" * (-(110 + len(nameb)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, 0o020600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initramfs(moddir: Path, out: Path, busybox: Path = Path("/bin/busybox")) -> None:
    if not busybox.is_file() or not _is_static(busybox):
        raise LabError(f"{busybox} is not a static busybox; install the Debian package busybox-static")
    mods = _modules_closure(moddir, INITRAMFS_MODULES)
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "newroot", "lib", "lib/modules"):
        cpio.dir(d)
    cpio.chardev("dev/console", 5, 1)
    cpio.chardev("dev/null", 1, 3)
    cpio.file("bin/busybox", busybox.read_bytes(), 0o755)
    for m in mods:
        cpio.file(f"lib/modules/{m.name}", m.read_bytes())
    init = INITRAMFS_INIT.format(modules=" ".join(m.name for m in mods))
    cpio.file("init", init.encode(), 0o755)
    out.write_bytes(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))


# -- the VM image ----------------------------------------------------------------------------

FSTAB = (
    "# hakit-lab VM: root is the virtio disk the initramfs mounted\n/dev/vda / ext4 defaults,noatime 0 0\n"
)

SERIAL_AUTOLOGIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200,57600,38400,9600 %I $TERM
"""

NETWORK_INTERFACES = """\
# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback
"""

# The guest's identity from the kernel command line (written by vm.kernel_cmdline()):
#   hkl.hostname=NAME  hkl.mgmt=MAC,ADDR/LEN  hkl.nic=NAME,MAC,ADDR/LEN[,GATEWAY] (one per NIC)
#   hkl.apt=BASE64(sources.list)
# Runs before udev so its .link files name the NICs (by permanent MAC) when they appear.
VM_SETUP = r"""#!/bin/sh
# hakit-lab: this VM's identity from the kernel command line. One image serves every VM.
set -eu
hostname= mgmt= apt= nics=
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        hkl.hostname=*) hostname=${arg#*=} ;;
        hkl.mgmt=*) mgmt=${arg#*=} ;;
        hkl.nic=*) nics="$nics ${arg#*=}" ;;
        hkl.apt=*) apt=${arg#*=} ;;
    esac
done
first_boot=
[ -e /var/lib/hakit-lab/first-boot-done ] || first_boot=yes

# NIC names by MAC: topology NICs eth0, eth1, ... in inventory order, the management NIC mgmt0.
mkdir -p /run/systemd/network /run/hakit-lab
link() {
    printf '[Match]\nPermanentMACAddress=%s\n\n[Link]\nName=%s\n' "$2" "$1" \
        > "/run/systemd/network/10-hakit-lab-$1.link"
}
if [ -n "$mgmt" ]; then
    link mgmt0 "${mgmt%%,*}"
    echo "${mgmt#*,}" > /run/hakit-lab/mgmt-address
fi
: > /run/hakit-lab/nics
for nic in $nics; do
    IFS=, read -r name mac addr gw <<EOF
$nic
EOF
    link "$name" "$mac"
    echo "$name" >> /run/hakit-lab/nics
    # Initial addresses go to /etc/network/interfaces once, where the Debian installer puts them,
    # and only for a NIC without a stanza: the roles own that file afterwards.
    if [ -n "$first_boot" ] && ! grep -qsE "^[[:space:]]*iface[[:space:]]+$name[[:space:]]" \
            /etc/network/interfaces /etc/network/interfaces.d/*; then
        {
            printf '\nauto %s\niface %s inet static\n    address %s\n' "$name" "$name" "$addr"
            [ -z "$gw" ] || printf '    gateway %s\n' "$gw"
        } >> /etc/network/interfaces
    fi
done

if [ -n "$hostname" ]; then
    hostname "$hostname"
    echo "$hostname" > /etc/hostname
    if [ -n "$first_boot" ]; then
        printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n' \
            "$hostname" > /etc/hosts
    fi
fi
# The lab's package source, at every boot (the controller's address may change between labs).
[ -z "$apt" ] || echo "$apt" | base64 -d > /etc/apt/sources.list

mkdir -p /var/lib/hakit-lab
touch /var/lib/hakit-lab/first-boot-done
"""

VM_SETUP_UNIT = """\
[Unit]
Description=hakit-lab: VM identity from the kernel command line
DefaultDependencies=no
After=systemd-remount-fs.service
Before=systemd-udevd.service systemd-udev-trigger.service network-pre.target sysinit.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hakit-lab-vm-setup

[Install]
WantedBy=sysinit.target
"""

# Debian's ifupdown-pre runs a global `udevadm settle` before networking.service when
# /etc/network/interfaces has auto NICs: 10+ s under TCG. Waiting for the VM's own NICs is the
# part that matters (virtual interfaces a role defines do not exist before ifup).
IFUPDOWN_PRE_DROPIN = """\
[Service]
ExecStart=
ExecStart=/bin/sh -c 'for n in $(cat /run/hakit-lab/nics 2>/dev/null); do udevadm wait --timeout=600 /sys/class/net/$n || true; done'
"""

# mgmt0 lives outside /etc/network/interfaces, so a role rewriting that file (or `ifdown -a`)
# never cuts the controller off. The unit waits for udev to have named the NIC itself: a
# dependency on the device unit would time out (90 s) when a loaded controller makes the
# guest's coldplug slow, and leave the VM unreachable.
MGMT_UNIT = """\
[Unit]
Description=hakit-lab: management NIC mgmt0 (the controller's way in)
After=hakit-lab-vm-setup.service systemd-udevd.service
ConditionPathExists=/run/hakit-lab/mgmt-address

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=infinity
ExecStart=/bin/sh -c 'until [ -e /sys/class/net/mgmt0 ]; do sleep 0.5; done; ip link set mgmt0 up && ip addr replace "$(cat /run/hakit-lab/mgmt-address)" brd + dev mgmt0'

[Install]
WantedBy=multi-user.target
"""

# Units a throwaway test VM does not want running on its own under TCG (they would also hold
# apt's lock while a role installs packages).
DISABLED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "man-db.timer",
)


def vm_image_key(kernel_pkg: str, kernel_version: str) -> str:
    return _sha256("vm", rootfs_key(), kernel_pkg, kernel_version, VM_CONFIG_VERSION, INITRAMFS_MODULES)


def ensure_vm_image() -> VmImage:
    """The VM boot files (CACHE/vm/<key>/), built once per rootfs, kernel version and config."""
    pkg, version = kernel_package()
    rootfs = ensure_rootfs()
    entry = _cached_build(
        "vm", vm_image_key(pkg, version), lambda tmp: _build_vm_image(tmp, rootfs, pkg, version)
    )
    return VmImage(
        kernel=entry / "vmlinuz",
        initrd=entry / "initrd.img",
        base_qcow2=entry / "base.qcow2",
        kernel_version=(entry / "kernel_version").read_text().strip(),
    )


def _build_vm_image(work: Path, rootfs: Path, pkg: str, version: str) -> None:
    t0 = time.monotonic()
    kdir = work / "kernel"
    _fetch_kernel(pkg, version, kdir)
    kv = pkg.removeprefix("linux-image-")
    moddir = kdir / "x/lib/modules" / kv
    if not moddir.is_dir():
        raise LabError(f"{pkg} {version} has no lib/modules/{kv}")
    shutil.copy2(kdir / f"x/boot/vmlinuz-{kv}", work / "vmlinuz")
    log.info("vm image: kernel %s (%s) in %.0f s", kv, version, time.monotonic() - t0)

    root = work / "root"
    _run(["cp", "-a", "--reflink=auto", str(rootfs), str(root)])
    target = root / "lib/modules" / kv
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-a", str(moddir), str(target)])
    for d in PRUNED_MODULE_DIRS:
        shutil.rmtree(target / "kernel" / d, ignore_errors=True)
    for ko in (target / "kernel/drivers/net/ethernet").rglob("*.ko"):
        ko.unlink()
    _run(["chroot", str(root), "depmod", "-a", kv])  # the controller need not have kmod
    (root / "boot").mkdir(exist_ok=True)
    shutil.copy2(kdir / f"x/boot/config-{kv}", root / "boot" / f"config-{kv}")

    shutil.rmtree(kdir)
    _configure_vm_root(root)
    # The package has no modules.dep (its postinst makes it): use the depmod'ed copy.
    build_initramfs(target, work / "initrd.img")

    raw = work / "base.raw"
    _ext4_image_of(root, raw, VM_DISK_SIZE)
    _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(work / "base.qcow2")])
    raw.unlink()
    (work / "base.qcow2").chmod(0o444)
    (work / "kernel_version").write_text(f"{kv}\n")
    (work / "kernel_package").write_text(f"{pkg} {version}\n")
    log.info("vm image: built in %.0f s", time.monotonic() - t0)


def _ext4_image_of(root: Path, raw: Path, size: str) -> None:
    """A sparse raw ext4 image of `size` holding the directory `root` (removed afterwards)."""
    with raw.open("wb") as f:
        f.truncate(_size_bytes(size))
    _run(
        [
            "mkfs.ext4", "-q", "-F", "-L", "hkl-root", "-m", "1",
            "-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
            "-d", str(root), str(raw),
        ]
    )  # fmt: skip
    shutil.rmtree(root)


def _size_bytes(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(size[:-1]) * units[size[-1]] if size[-1] in units else int(size)


def _configure_vm_root(root: Path) -> None:
    _write(root / "etc/fstab", FSTAB)
    _write(root / "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", SERIAL_AUTOLOGIN)
    _write(root / "etc/network/interfaces", NETWORK_INTERFACES)
    (root / "etc/network/interfaces.d").mkdir(parents=True, exist_ok=True)
    _write(root / "usr/local/sbin/hakit-lab-vm-setup", VM_SETUP, 0o755)
    _write(root / "etc/systemd/system/hakit-lab-vm-setup.service", VM_SETUP_UNIT)
    _write(root / "etc/systemd/system/hakit-lab-mgmt.service", MGMT_UNIT)
    _write(root / "etc/systemd/system/ifupdown-pre.service.d/hakit-lab.conf", IFUPDOWN_PRE_DROPIN)
    _write(root / "etc/sysctl.d/10-hakit-lab-console.conf", "kernel.printk = 4 4 1 7\n")
    _run(["chroot", str(root), "systemctl", "enable", "hakit-lab-vm-setup.service", "hakit-lab-mgmt.service"])
    for unit in DISABLED_UNITS:
        subprocess.run(["chroot", str(root), "systemctl", "disable", unit], capture_output=True)
    # /etc/machine-id stays as debootstrap made it: emptying it would make systemd treat every
    # boot as the first and apply presets. Each VM gets its own id via systemd.machine_id=.


def encode_apt_sources(text: str) -> str:
    """sources.list text as the guest's hkl.apt= kernel parameter carries it."""
    return base64.b64encode(text.encode()).decode()


# -- the uml image ---------------------------------------------------------------------------

UML_KERNEL = Path("/usr/bin/linux.uml")
UML_MODULES = Path("/usr/lib/uml/modules")
UML_INIT = "/usr/local/sbin/hakit-lab-uml-init"
UML_INIT_SOURCE = Path(__file__).with_name("uml_init.sh")
# The kernel runs with this preloaded (uml_xstate.c says why): built with the image, beside base.img.
UML_XSTATE_SOURCE = Path(__file__).with_name("uml_xstate.c")
UML_XSTATE = "uml_xstate.so"
# Bump when the uml image configuration below changes (uml_init.sh is in the key by content).
UML_CONFIG_VERSION = 1
UML_DISK_SIZE = "4G"
UML_FSTAB = "# hakit-lab uml host: root is the first ubd disk\n/dev/ubda / ext4 defaults,noatime 0 0\n"


@dataclass(frozen=True)
class UmlImage:
    kernel: Path
    base: Path  # raw ext4, read-only; each host writes to a COW file over it

    @property
    def preload(self) -> Path:
        """The FPU-state wrapper the kernel runs with (uml_xstate.c), built beside the base image."""
        return self.base.with_name(UML_XSTATE)


def uml_kernel_version() -> str:
    """The module directory of the installed user-mode-linux package (e.g. 6.1.176)."""
    versions = sorted(p.name for p in UML_MODULES.glob("*") if (p / "modules.dep").is_file())
    if not UML_KERNEL.is_file() or not versions:
        raise LabError(
            f"uml hosts need Debian's user-mode-linux package ({UML_KERNEL}, {UML_MODULES}): "
            "`apt-get install user-mode-linux` (make setup installs it)"
        )
    return versions[-1]


def ensure_uml_image() -> UmlImage:
    """The uml hosts' base image (CACHE/uml/<key>/base.img), built once per rootfs, kernel and config."""
    version = uml_kernel_version()
    rootfs = ensure_rootfs()
    kernel_id = (UML_KERNEL.stat().st_size, UML_KERNEL.stat().st_mtime_ns)
    key = _sha256(
        "uml",
        rootfs_key(),
        version,
        kernel_id,
        UML_CONFIG_VERSION,
        UML_INIT_SOURCE.read_text(),
        UML_XSTATE_SOURCE.read_text(),
    )
    entry = _cached_build("uml", key, lambda tmp: _build_uml_image(tmp, rootfs, version))
    return UmlImage(kernel=UML_KERNEL, base=entry / "base.img")


def _build_uml_image(work: Path, rootfs: Path, version: str) -> None:
    t0 = time.monotonic()
    root = work / "root"
    _run(["cp", "-a", "--reflink=auto", str(rootfs), str(root)])
    target = root / "lib/modules" / version
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(["cp", "-a", str(UML_MODULES / version), str(target)])
    _write(root / "etc/fstab", UML_FSTAB)
    _write(root / UML_INIT.lstrip("/"), UML_INIT_SOURCE.read_text(), 0o755)
    _write(root / "etc/sysctl.d/10-hakit-lab-console.conf", "kernel.printk = 4 4 1 7\n")
    raw = work / "base.img"
    _ext4_image_of(root, raw, UML_DISK_SIZE)
    raw.chmod(0o444)
    cc = ["cc", "-O2", "-Wall", "-shared", "-fPIC"]
    _run([*cc, "-o", str(work / UML_XSTATE), str(UML_XSTATE_SOURCE), "-ldl"])
    (work / "kernel_version").write_text(f"{version}\n")
    log.info("uml image: kernel %s, built in %.0f s", version, time.monotonic() - t0)


# -- measuring -------------------------------------------------------------------------------


def _du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def main(argv: list[str] | None = None) -> int:
    """`python3 -m hakit_lab.image [--rebuild]`: build (or find) the images; print times and sizes."""
    import argparse

    parser = argparse.ArgumentParser(prog="python3 -m hakit_lab.image")
    parser.add_argument("--rebuild", action="store_true", help="drop the cached rootfs and VM image first")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.rebuild:
        for kind in ("rootfs", "vm"):
            shutil.rmtree(paths.CACHE / kind, ignore_errors=True)
    t0 = time.monotonic()
    rootfs = ensure_rootfs()
    t1 = time.monotonic()
    img = ensure_vm_image()
    t2 = time.monotonic()
    ensure_rootfs()
    ensure_vm_image()
    t3 = time.monotonic()
    mib = 1 << 20
    print(f"rootfs      {rootfs}  {_du(rootfs) / mib:.0f} MiB  ({t1 - t0:.1f} s)")
    print(f"vm image    {img.base_qcow2.parent}  kernel {img.kernel_version}  ({t2 - t1:.1f} s)")
    print(
        f"  base.qcow2 {img.base_qcow2.stat().st_size / mib:.0f} MiB, vmlinuz {img.kernel.stat().st_size / mib:.1f} MiB, "
        f"initrd {img.initrd.stat().st_size / mib:.1f} MiB"
    )
    print(f"cached call (both) {t3 - t2:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
