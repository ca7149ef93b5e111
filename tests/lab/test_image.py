"""Base images: the cache's rules (content key, `complete` marker, atomic builds), the initramfs
writer, and (marked `lab`) the real rootfs and VM image."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hakit_lab import image, paths
from hakit_lab.model import LabError

# -- the cache -------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path / "cache")
    monkeypatch.setattr(paths, "SSH_KEY", tmp_path / "cache" / "ssh" / "id_ed25519")
    return tmp_path / "cache"


def test_a_build_runs_once_and_lands_complete(cache):
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "payload").write_text("x")

    entry = image._cached_build("thing", "k1", build)
    assert entry == cache / "thing" / "k1"
    assert (entry / "payload").read_text() == "x" and (entry / "complete").is_file()
    assert image._cached_build("thing", "k1", build) == entry
    assert len(calls) == 1
    assert calls[0].parent == entry.parent  # built next to its place, then renamed


def test_an_entry_without_its_marker_is_rebuilt_from_scratch(cache):
    half = cache / "thing" / "k1"
    half.mkdir(parents=True)
    (half / "leftover").write_text("half-built")

    def build(tmp: Path) -> None:
        (tmp / "payload").write_text("fresh")

    entry = image._cached_build("thing", "k1", build)
    assert not (entry / "leftover").exists()
    assert (entry / "payload").read_text() == "fresh"


def test_a_failed_build_leaves_nothing_behind(cache):
    def build(tmp: Path) -> None:
        (tmp / "payload").write_text("partial")
        raise LabError("debootstrap failed")

    with pytest.raises(LabError, match="debootstrap failed"):
        image._cached_build("thing", "k1", build)
    assert [p.name for p in (cache / "thing").iterdir()] == [".lock"]


def test_concurrent_callers_share_one_build(cache):
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        time.sleep(0.3)
        (tmp / "payload").write_text("x")

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(image._cached_build("thing", "k1", build)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1


def test_the_rootfs_key_covers_packages_suite_config_and_key_but_not_the_mirror(cache, monkeypatch):
    base = image.rootfs_key()
    assert image.rootfs_key() == base
    monkeypatch.setattr(image, "MIRROR", "http://example.invalid/debian")
    assert image.rootfs_key() == base
    for attr, value in (
        ("PACKAGES", (*image.PACKAGES, "curl")),
        ("SUITE", "trixie"),
        ("ROOTFS_CONFIG_VERSION", image.ROOTFS_CONFIG_VERSION + 1),
    ):
        with monkeypatch.context() as m:
            m.setattr(image, attr, value)
            assert image.rootfs_key() != base, attr
    # package order does not matter
    with monkeypatch.context() as m:
        m.setattr(image, "PACKAGES", tuple(reversed(image.PACKAGES)))
        assert image.rootfs_key() == base
    paths.SSH_KEY.with_suffix(".pub").write_text("ssh-ed25519 AAAA other\n")
    assert image.rootfs_key() != base


def test_the_vm_image_key_covers_the_kernel_version(cache):
    a = image.vm_image_key("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert a == image.vm_image_key("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert a != image.vm_image_key("linux-image-6.1.0-56-amd64", "6.1.192-3")


def test_the_ssh_key_is_generated_once(cache):
    key = image.ensure_ssh_key()
    first = key.read_text()
    assert key == paths.SSH_KEY and key.with_suffix(".pub").read_text().startswith("ssh-ed25519 ")
    assert key.stat().st_mode & 0o077 == 0
    assert image.ensure_ssh_key().read_text() == first


def test_the_kernel_resolution_is_remembered_until_the_apt_lists_change(cache, monkeypatch, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("1")
    monkeypatch.setattr(image, "APT_LISTS", lists)
    answers = iter([("linux-image-6.1.0-56-amd64", "6.1.192-2"), ("linux-image-6.1.0-57-amd64", "6.1.193-1")])
    monkeypatch.setattr(image, "_resolve_kernel_package", lambda: next(answers))
    assert image.kernel_package() == ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    assert image.kernel_package() == ("linux-image-6.1.0-56-amd64", "6.1.192-2")
    (lists / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("22")
    assert image.kernel_package() == ("linux-image-6.1.0-57-amd64", "6.1.193-1")


# -- initramfs pieces ------------------------------------------------------------------------


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    """name -> (mode, data, (rdevmajor, rdevminor)) of a newc cpio archive."""
    out, pos = {}, 0
    while True:
        assert data[pos : pos + 6] == b"070701"
        f = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[pos + 110 : pos + 110 + namesize - 1].decode()
        pos += 110 + namesize
        pos += -pos % 4
        body = data[pos : pos + size]
        pos += size + (-size % 4)
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, (rmaj, rmin))


def test_cpio_writer_round_trips():
    c = image._Cpio()
    c.dir("bin")
    c.file("bin/x", b"abc", 0o755)
    c.chardev("dev/console", 5, 1)
    entries = parse_newc(c.finish())
    assert entries["bin"][0] == 0o040755
    assert entries["bin/x"][:2] == (0o100755, b"abc")
    assert entries["dev/console"][0] == 0o020600 and entries["dev/console"][2] == (5, 1)


def test_busybox_cpio_reads_what_we_write(tmp_path):
    c = image._Cpio()
    c.dir("d")
    c.file("d/f", b"hello\n")
    (tmp_path / "a.cpio").write_bytes(c.finish())
    listing = subprocess.run(
        ["busybox", "cpio", "-t"], stdin=(tmp_path / "a.cpio").open("rb"), capture_output=True, text=True
    )
    assert listing.stdout.split() == ["d", "d/f"]


def test_module_closure_loads_dependencies_first(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/fs/mbcache.ko:\n"
        "kernel/lib/crc16.ko:\n"
        "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko "
        "kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
        "kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n"
        "kernel/drivers/virtio/virtio_ring.ko:\n"
        "kernel/drivers/virtio/virtio.ko:\n"
    )
    names = [p.name for p in image._modules_closure(tmp_path, ["virtio_pci", "ext4", "jbd2"])]
    assert names == [
        "virtio.ko",
        "virtio_ring.ko",
        "virtio_pci_modern_dev.ko",
        "virtio_pci.ko",
        "jbd2.ko",
        "mbcache.ko",
        "crc16.ko",
        "ext4.ko",
    ]
    with pytest.raises(LabError, match="nope"):
        image._modules_closure(tmp_path, ["nope"])


def test_static_binary_detection():
    assert image._is_static(Path("/bin/busybox"))
    assert not image._is_static(Path(sys.executable).resolve())


def test_the_guest_scripts_parse():
    for script in (image.VM_SETUP,):
        assert subprocess.run(["sh", "-n"], input=script, text=True).returncode == 0
    assert (
        subprocess.run(["sh", "-n"], input=image.INITRAMFS_INIT.format(modules="a.ko"), text=True).returncode
        == 0
    )


# -- the real images (build once, then cached) -----------------------------------------------

ROLE_PACKAGES = ("heartbeat", "apache2", "drbd-utils", "ipvsadm", "ldirectord", "curl", "keepalived")


@pytest.fixture(scope="module")
def rootfs() -> Path:
    t0 = time.monotonic()
    root = image.ensure_rootfs()
    print(f"ensure_rootfs {time.monotonic() - t0:.1f} s")
    return root


@pytest.mark.lab
def test_rootfs_has_the_minimal_server_and_not_the_roles_packages(rootfs):
    manifest = {ln.split()[0] for ln in (rootfs.parent / "manifest.txt").read_text().splitlines()}
    assert set(image.PACKAGES) <= manifest
    assert not manifest & set(ROLE_PACKAGES)
    for tool in ("usr/bin/tini", "usr/sbin/sshd", "usr/bin/python3", "sbin/ifup", "usr/bin/ping", "sbin/ip"):
        assert (rootfs / tool).exists(), tool


@pytest.mark.lab
def test_rootfs_configuration(rootfs):
    assert (rootfs / "root/.ssh/authorized_keys").read_text() == paths.SSH_KEY.with_suffix(".pub").read_text()
    assert (rootfs / "root/.ssh").stat().st_mode & 0o077 == 0
    sshd = (rootfs / "etc/ssh/sshd_config.d/hakit-lab.conf").read_text()
    assert "PermitRootLogin prohibit-password" in sshd and "UseDNS no" in sshd
    assert (rootfs / "etc/apt/sources.list").read_text() == ""
    assert not list((rootfs / "etc/apt/sources.list.d").iterdir())
    assert not list((rootfs / "var/lib/apt/lists").glob("*_Packages"))
    # Older than any cache_valid_time: a play's first `update_cache` really updates.
    assert (rootfs / "var/lib/apt/lists").stat().st_mtime == 0
    assert not list((rootfs / "var/cache/apt/archives").glob("*.deb"))
    assert not [p for p in (rootfs / "usr/share/doc").iterdir()]
    assert not list((rootfs / "usr/share/man").iterdir())
    assert (rootfs / "etc/resolv.conf").read_text() == ""
    check = subprocess.run(["chroot", str(rootfs), "python3", "-c", "import apt_pkg"], capture_output=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.lab
def test_rootfs_cached_call_builds_nothing(rootfs):
    complete = rootfs.parent / "complete"
    before = complete.stat().st_mtime_ns
    t0 = time.monotonic()
    assert image.ensure_rootfs() == rootfs
    print(f"cached ensure_rootfs {time.monotonic() - t0:.3f} s")
    assert complete.stat().st_mtime_ns == before


@pytest.mark.lab
def test_vm_image(rootfs):
    t0 = time.monotonic()
    img = image.ensure_vm_image()
    built = time.monotonic() - t0
    t0 = time.monotonic()
    assert image.ensure_vm_image() == img
    cached = time.monotonic() - t0
    print(f"ensure_vm_image {built:.1f} s, cached {cached:.2f} s")
    assert cached < 1.0
    assert (img.base_qcow2.parent / "complete").is_file()
    assert img.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage
    info = subprocess.run(["qemu-img", "info", str(img.base_qcow2)], capture_output=True, text=True).stdout
    assert "file format: qcow2" in info
    initrd = parse_newc(gzip.decompress(img.initrd.read_bytes()))
    assert {"init", "bin/busybox", "dev/console", "lib/modules/virtio_blk.ko", "lib/modules/ext4.ko"} <= set(
        initrd
    )
    assert img.kernel_version.endswith("-amd64")
