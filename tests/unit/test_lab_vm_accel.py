"""The VMs' accelerator: KVM only when /dev/kvm answers and qemu really runs guest code with it."""

import errno
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from hakit_lab import cli, image, model, orchestrator, paths, vm
from hakit_lab.model import LabError

# What qemu 7.2 says on this project's machines (kvm-pvm): `-cpu host` aborts before the guest runs.
PVM_STDERR = (
    "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69\n"
    "qemu-system-x86_64: ../../target/i386/kvm/kvm.c:3183: kvm_buf_set_msrs: "
    "Assertion `ret == cpu->kvm_msr_buf->nmsrs' failed.\n"
)
KERNEL_PANIC = (
    '[    0.61] VFS: Cannot open root device "hakit-lab-none" or unknown-block(0,0): error -6\n'
    "[    0.61] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n"
)
# A kvm-pvm /dev/kvm on an Intel host takes `-cpu host` and runs the firmware, then crawls through
# the stock kernel in its instruction emulator (shared/research/vm-lab/REPORT.md).
PVM_CRAWL = "[   16.20] Booting paravirtualized kernel on bare hardware\n"
KERNEL = Path("/var/cache/hakit-lab/vm/k1/vmlinuz")


class Machine:
    """A fake /dev/kvm and qemu: what each probe step answers, and which steps ran."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
        self.device = tmp_path / "kvm"
        self.device.touch()
        self.api_version: int | OSError = vm.KVM_API_VERSION
        self.qemu = subprocess.CompletedProcess([], vm.PROBE_EXIT_STATUS, "", "")
        # What the VMs' kernel prints under KVM before qemu ends; None: it never ends (times out).
        self.kernel_console: str | None = KERNEL_PANIC
        self.boot_id = "boot-1"
        self.ioctls = 0
        self.runs: list[list[str]] = []
        self.kernel_runs: list[list[str]] = []
        monkeypatch.setattr(vm, "KVM_DEVICE", self.device)
        monkeypatch.setattr(vm, "ACCEL_VERDICTS", tmp_path / "accel-verdicts.json")
        monkeypatch.setattr(vm, "_boot_id", lambda: self.boot_id)
        monkeypatch.setattr(vm.fcntl, "ioctl", self.ioctl)
        monkeypatch.setattr(vm.subprocess, "run", self.run)

    def ioctl(self, fd: int, request: int) -> int:
        assert request == vm.KVM_GET_API_VERSION
        self.ioctls += 1
        if isinstance(self.api_version, OSError):
            raise self.api_version
        return self.api_version

    def run(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        if "-kernel" in argv:
            return self.boot_kernel(argv, **kwargs)
        firmware = Path(argv[argv.index("-bios") + 1]).read_bytes()
        assert len(firmware) == 0x10000 and firmware[0xFFF0:].startswith(vm.PROBE_CODE)
        self.runs.append(argv)
        return self.qemu

    def boot_kernel(self, argv: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        self.kernel_runs.append(argv)
        assert "-no-reboot" in argv and "panic=-1" in argv[argv.index("-append") + 1]
        if self.kernel_console is None:
            raise subprocess.TimeoutExpired(argv, kwargs["timeout"])
        serial = argv[argv.index("-serial") + 1].removeprefix("file:")
        Path(serial).write_text(self.kernel_console)
        return subprocess.CompletedProcess(argv, 0, b"", b"")


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.delenv(vm.ACCEL_ENV, raising=False)
    vm._accelerator.cache_clear()
    yield Machine(tmp_path, monkeypatch)
    vm._accelerator.cache_clear()


def test_kvm_when_it_runs_guest_code_with_the_vms_cpu_and_only_probed_once(machine):
    assert vm.accelerator() == "kvm"
    assert vm.accelerator() == "kvm"
    assert machine.ioctls == 1 and len(machine.runs) == 1
    argv = machine.runs[0]
    assert argv[0] == vm.QEMU and "-accel kvm -cpu host -machine pc" in " ".join(argv)


def test_kvm_when_the_vms_kernel_boots_with_it_remembered_for_this_boot_of_the_machine(machine):
    assert vm.accelerator(KERNEL) == "kvm"
    assert len(machine.runs) == 1 and len(machine.kernel_runs) == 1
    argv = " ".join(machine.kernel_runs[0])
    assert "-accel kvm -cpu host -machine pc" in argv and f"-kernel {KERNEL}" in argv
    vm._accelerator.cache_clear()  # the next `hakit-lab up`: no probe again
    assert vm.accelerator(KERNEL) == "kvm"
    assert len(machine.runs) == 1 and len(machine.kernel_runs) == 1
    vm._accelerator.cache_clear()
    machine.boot_id = "boot-2"  # after a reboot of the machine: probed again
    assert vm.accelerator(KERNEL) == "kvm"
    assert len(machine.kernel_runs) == 2


@pytest.mark.parametrize(("console", "last"), [(PVM_CRAWL, "Booting paravirtualized"), (None, "nothing")])
def test_tcg_when_kvm_runs_the_firmware_but_not_the_vms_kernel(machine, console, last):
    """A CI run met this: both VMs silent on their consoles, no SSH within 600 s."""
    machine.kernel_console = console
    assert vm.accelerator(KERNEL) == "tcg"
    problem = vm.kvm_problem(KERNEL)
    assert problem.startswith(f"qemu-system-x86_64 -accel kvm did not boot {KERNEL.name} to its root-mount")
    assert last in problem
    vm._accelerator.cache_clear()
    assert vm.accelerator(KERNEL) == "tcg"  # remembered
    assert len(machine.kernel_runs) == 2  # the two above, none for the remembered verdict


def test_tcg_without_dev_kvm(machine):
    machine.device.unlink()
    assert vm.kvm_problem() == f"{machine.device} does not exist"
    assert vm.accelerator() == "tcg"
    assert machine.ioctls == 0 and machine.runs == []


def test_tcg_when_dev_kvm_cannot_be_opened(machine):
    machine.device.unlink()
    machine.device.mkdir()  # opening it O_RDWR fails, for root too
    assert "cannot be opened: Is a directory" in vm.kvm_problem()
    assert vm.accelerator() == "tcg"
    assert machine.runs == []


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (OSError(errno.ENOTTY, "Inappropriate ioctl for device"), "KVM_GET_API_VERSION fails"),
        (11, "API version 11, not 12"),
    ],
)
def test_tcg_when_the_api_version_ioctl_fails_or_differs(machine, answer, problem):
    machine.api_version = answer
    assert problem in vm.kvm_problem()
    assert vm.accelerator() == "tcg"
    assert machine.runs == []


def test_tcg_when_qemu_cannot_run_a_guest_with_kvm(machine):
    machine.qemu = subprocess.CompletedProcess([], -6, "", PVM_STDERR)
    problem = vm.kvm_problem()
    assert problem.startswith("qemu-system-x86_64 -accel kvm -cpu host fails (signal 6): ")
    assert "failed to set MSR 0x10a" in problem and "Assertion" in problem
    assert vm.accelerator() == "tcg"


def test_tcg_when_qemu_runs_no_guest_code_in_time(machine, monkeypatch):
    def hang(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    monkeypatch.setattr(vm.subprocess, "run", hang)
    assert "ran no guest code within" in vm.kvm_problem()
    assert vm.accelerator() == "tcg"


def test_override_tcg_skips_the_probe(machine, monkeypatch):
    monkeypatch.setenv(vm.ACCEL_ENV, "tcg")
    assert vm.accelerator() == "tcg"
    assert machine.ioctls == 0 and machine.runs == []


def test_override_kvm_uses_a_working_kvm_and_refuses_a_broken_one(machine, monkeypatch):
    monkeypatch.setenv(vm.ACCEL_ENV, "kvm")
    assert vm.accelerator() == "kvm"
    vm._accelerator.cache_clear()
    machine.qemu = subprocess.CompletedProcess([], -6, "", PVM_STDERR)
    with pytest.raises(
        LabError, match=r"HAKIT_LAB_ACCEL=kvm but KVM does not work here: .*MSR.*unset HAKIT_LAB_ACCEL"
    ):
        vm.accelerator()


def test_override_refuses_an_unknown_accelerator(machine, monkeypatch):
    monkeypatch.setenv(vm.ACCEL_ENV, "hvf")
    with pytest.raises(LabError, match="HAKIT_LAB_ACCEL='hvf': use kvm or tcg"):
        vm.accelerator()


@pytest.mark.skipif(shutil.which(vm.QEMU) is None, reason=f"needs {vm.QEMU}")
def test_the_probe_firmware_runs_and_exits_under_tcg():
    """The probe's yes on a real qemu: its firmware (no disk, no network, 16 MiB) exits in ~40 ms."""
    assert vm._guest_problem("tcg") is None


# -- where the choice shows --------------------------------------------------------------------


def vm_lab() -> model.Lab:
    mgmt = model.Network("mgmt", ipaddress.IPv4Network("10.77.0.0/24"), 0)
    lan = model.Network("lan", ipaddress.IPv4Network("10.77.1.0/24"), 1)
    nic = model.Interface("eth0", "lan", ipaddress.IPv4Interface("10.77.1.11/24"))
    hosts = [
        model.Host("vm1", "vm", 1, ipaddress.IPv4Interface("10.77.0.11/24"), (nic,), (), 512),
        model.Host("vm2", "vm", 2, ipaddress.IPv4Interface("10.77.0.12/24")),
        model.Host("ns1", "ns", 3, ipaddress.IPv4Interface("10.77.0.13/24")),
    ]
    return model.Lab({"lan": lan}, {h.name: h for h in hosts}, mgmt)


def test_qemu_argv_takes_kvm_with_the_host_cpu_or_tcg_as_before():
    lab = vm_lab()
    img = image.VmImage(Path("/img/vmlinuz"), Path("/img/initrd.img"), Path("/img/base.qcow2"), "6.1")
    kvm = vm.qemu_argv(lab, lab.hosts["vm1"], img, "kvm")
    tcg = vm.qemu_argv(lab, lab.hosts["vm1"], img, "tcg")
    assert kvm[3:7] == ["-accel", "kvm", "-cpu", "host"] and "tcg" not in " ".join(kvm)
    assert tcg[3:7] == ["-accel", f"tcg,thread=multi,tb-size={vm.TB_SIZE_MIB}", "-cpu", "max"]
    assert kvm[7:] == tcg[7:]


def test_status_shows_the_accelerator_each_vm_started_with(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "VMS", tmp_path)
    monkeypatch.setattr(orchestrator.state, "require_lab", vm_lab)
    monkeypatch.setattr(orchestrator, "powered_on", lambda host: False)
    (tmp_path / "vm1").mkdir()
    (tmp_path / "vm1" / "accel.txt").write_text("kvm\n")
    assert {s.name: s.accel for s in orchestrator.status(check_ssh=False)} == {
        "vm1": "kvm",
        "vm2": "-",  # never started
        "ns1": "-",
    }
    assert cli._dispatch(cli._parser().parse_args(["status", "--no-ssh"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["HOST", "KIND", "POWER", "MGMT", "SSH", "ACCEL"]
    assert lines[1].split() == ["vm1", "vm", "off", "10.77.0.11", "-", "kvm"]
