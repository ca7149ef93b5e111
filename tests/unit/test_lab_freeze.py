"""The freeze fault without a lab: which processes are stopped, and that they are always resumed."""

import ipaddress
import signal

import pytest
from hakit_lab import faults, model, sysutil


def ns_host(kind: str = "ns") -> model.Host:
    return model.Host("ns1", kind, 1, ipaddress.IPv4Interface("10.77.0.11/24"))


class Host:
    """A fake host: its processes (per listing round), and the signals they got."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, rounds: list[list[int]]):
        self.rounds = rounds
        self.signals: list[tuple[int, int]] = []
        self.slept: list[float] = []
        monkeypatch.setattr(faults, "powered_on", lambda host: True)
        monkeypatch.setattr(sysutil, "netns_inode", lambda name: 4026532000)
        monkeypatch.setattr(sysutil, "processes_in_netns", self.listing)
        monkeypatch.setattr(sysutil, "kill", lambda pid, sig: self.signals.append((pid, sig)))
        monkeypatch.setattr(faults.time, "sleep", self.slept.append)

    def listing(self, inodes: set[int]) -> list[int]:
        return self.rounds.pop(0) if len(self.rounds) > 1 else self.rounds[0]


def test_every_process_is_stopped_even_one_forked_while_the_list_was_read(monkeypatch):
    # Round 2 finds 13, forked by 12 before 12 was stopped; round 3 finds nothing new.
    host = Host(monkeypatch, [[1, 12], [1, 12, 13], [1, 12, 13]])
    faults.freeze(ns_host(), 2.5)
    stops = [pid for pid, sig in host.signals if sig == signal.SIGSTOP]
    conts = [pid for pid, sig in host.signals if sig == signal.SIGCONT]
    assert stops == [1, 12, 13] and conts == [1, 12, 13]
    assert host.slept == [2.5]


def test_the_host_is_resumed_when_the_freeze_is_interrupted(monkeypatch):
    host = Host(monkeypatch, [[1, 12]])

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(faults.time, "sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        faults.freeze(ns_host(), 10)
    assert [pid for pid, sig in host.signals if sig == signal.SIGCONT] == [1, 12]


def test_a_host_that_never_stops_forking_is_resumed_and_refused(monkeypatch):
    host = Host(monkeypatch, [[n, n + 1] for n in range(1, 100, 2)])
    with pytest.raises(model.LabError, match="still forking new processes"):
        faults.freeze(ns_host(), 1)
    stopped = {pid for pid, sig in host.signals if sig == signal.SIGSTOP}
    assert stopped == {pid for pid, sig in host.signals if sig == signal.SIGCONT}


@pytest.mark.parametrize("seconds", [0, -1])
def test_freeze_needs_a_positive_duration(seconds):
    with pytest.raises(model.LabError, match="positive number of seconds"):
        faults.freeze(ns_host(), seconds)


def test_a_powered_off_host_cannot_be_frozen(monkeypatch):
    monkeypatch.setattr(faults, "powered_on", lambda host: False)
    with pytest.raises(model.LabError, match="powered off"):
        faults.freeze(ns_host(), 1)
