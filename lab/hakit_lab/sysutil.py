"""Small system helpers: running commands, namespaces (setns/unshare via libc), processes in /proc."""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from .model import LabError

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NETNS_DIR = Path("/run/netns")

_libc = ctypes.CDLL(None, use_errno=True)


def run(
    argv: Sequence[str], check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command (argv list, LC_ALL=C); a failure raises LabError with its stderr."""
    proc = subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        env=dict(os.environ, LC_ALL="C"),
        check=False,
    )
    if check and proc.returncode != 0:
        raise LabError(f"command failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr.strip()}")
    return proc


def setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def unshare(flags: int) -> None:
    if _libc.unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(name: str) -> Iterator[None]:
    """Run the block with this thread in network namespace `name` (e.g. to write its sysctls)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(NETNS_DIR / name, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(target, CLONE_NEWNET)
        try:
            yield
        finally:
            setns(own, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


def netns_sysctl(name: str, settings: dict[str, str]) -> None:
    """Write net.* sysctls of network namespace `name` (/proc/sys/net is per namespace)."""
    with in_netns(name):
        for key, value in settings.items():
            Path("/proc/sys", *key.split(".")).write_text(f"{value}\n")


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except FileNotFoundError:
        return None


# -- processes -----------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (with the pid, identifies a process)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None = None) -> bool:
    """True while `pid` runs and (if given) is still the process that started at `started`.

    A zombie counts as gone: it holds no namespace, mount or memory any more.
    """
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:
    """Wait until every pid is gone or a zombie; returns those still running at the timeout."""
    pending = list(pids)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [p for p in pending if alive(p)]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return pending


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def ns_inode(pid: int, kind: str) -> int | None:
    """Inode of namespace `kind` (net, mnt, pid, ...) of process `pid`, None if unreadable."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def processes_in_netns(inodes: set[int]) -> list[int]:
    """Running processes whose network namespace is one of `inodes`."""
    me = os.getpid()
    return [p for p in pids() if p != me and ns_inode(p, "net") in inodes and alive(p)]


def processes_with_root_mount(source_prefix: str) -> list[int]:
    """Running processes whose root filesystem is a mount with a source starting with `source_prefix`.

    Finds an ns host's processes even when its network namespace is already gone.
    """
    found = []
    for pid in pids():
        try:
            with open(f"/proc/{pid}/mountinfo") as f:
                for line in f:
                    fields = line.split()
                    if fields[4] == "/":
                        sep = fields.index("-")
                        if fields[sep + 2].startswith(source_prefix):
                            found.append(pid)
                        break
        except (OSError, ValueError, IndexError):
            continue
    return [p for p in found if alive(p)]


@contextlib.contextmanager
def locked(lockfile: Path) -> Iterator[None]:
    """Hold an exclusive flock on lockfile (made if missing): one process at a time, across labs."""
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with lockfile.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
