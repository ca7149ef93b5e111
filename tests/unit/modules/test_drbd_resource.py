"""hakit.cluster.drbd_resource with drbdadm, wipefs and dmesg replaced by a script of expected calls."""

from collections import namedtuple
from pathlib import Path
from unittest import mock

from ansible_collections.hakit.cluster.plugins.modules import drbd_resource as module

from .scripted import ANY_STDIN, run_scripted

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drbd" / "9.22.0"
BIN = {"drbdadm": "/usr/sbin/drbdadm", "wipefs": "/usr/sbin/wipefs", "dmesg": "/usr/bin/dmesg"}
Call = namedtuple("Call", "argv rc out err")


def fixture(name):
    return (FIXTURES / name).read_text().replace("rc=0\n", "")


def drbdadm(*args, rc=0, out="", err=""):
    return Call([BIN["drbdadm"], *args], rc, out, err)


def status(case, node="node1"):
    return drbdadm("status", "r0", out=fixture(f"{case}.{node}.drbdadm-status.txt"))


DOWN = drbdadm("status", "r0", rc=10, err="r0: No such resource\n")


def disk(case):
    return [
        drbdadm("sh-ll-dev", "r0", out="/dev/vdb\n"),
        Call([BIN["wipefs"], "-J", "/dev/vdb"], 0, fixture(case), ""),
    ]


def run(args, calls, check_mode=False, diff=False):
    return run_scripted(
        module,
        args,
        calls,
        expected=lambda call: (call.argv, ANY_STDIN),
        bin_path=BIN.__getitem__,
        check_mode=check_mode,
        diff=diff,
        patches=[mock.patch.object(module.time, "sleep")],
    )


def argvs(result):
    return [c["argv"][1:] for c in result["commands"]]


def test_new_disk_gets_metadata_and_comes_up():
    result = run(
        {"name": "r0"},
        [
            DOWN,
            *disk("empty.node1.wipefs.txt"),
            drbdadm("create-md", "r0"),
            drbdadm("up", "r0"),
            status("waiting"),
        ],
    )
    assert not result["failed"] and result["changed"]
    assert argvs(result) == [["create-md", "r0"], ["up", "r0"]]
    assert result["status"]["connection"] == "Connecting"


def test_check_mode_on_a_new_disk_runs_nothing():
    result = run({"name": "r0"}, [DOWN, *disk("empty.node1.wipefs.txt")], check_mode=True, diff=True)
    assert result["changed"] and argvs(result) == [["create-md", "r0"], ["up", "r0"]]
    assert "up: False" in result["diff"]["before"] and "up: True" in result["diff"]["after"]


def test_create_md_refused_over_a_filesystem():
    ext4 = (
        '{"signatures": [{"device": "vdb", "offset": "0x438", "type": "ext4", "uuid": "x", "label": null}]}'
    )
    calls = [
        DOWN,
        drbdadm("sh-ll-dev", "r0", out="/dev/vdb\n"),
        Call([BIN["wipefs"], "-J", "/dev/vdb"], 0, ext4, ""),
    ]
    result = run({"name": "r0"}, calls)
    assert result["failed"] and "holds ext4 and no DRBD metadata" in result["msg"]
    assert result["commands"] == []


def test_existing_metadata_is_only_brought_up():
    result = run(
        {"name": "r0"},
        [DOWN, *disk("metadata.node1.wipefs.txt"), drbdadm("up", "r0"), status("connected_secondary")],
    )
    assert argvs(result) == [["up", "r0"]]


def test_running_and_unchanged_is_left_alone():
    result = run(
        {"name": "r0"},
        [
            status("connected_primary"),
            *disk("filesystem_on_drbd.node1.wipefs.txt"),
            drbdadm("-d", "adjust", "r0", out=fixture("adjust-unchanged.node1.txt")),
        ],
    )
    assert not result["changed"] and result["commands"] == []


def test_changed_net_option_is_adjusted():
    calls = [
        status("connected_primary"),
        *disk("filesystem_on_drbd.node1.wipefs.txt"),
        drbdadm("-d", "adjust", "r0", out=fixture("adjust-net-changed.node1.txt")),
        drbdadm("adjust", "r0"),
        status("connected_primary"),
    ]
    result = run({"name": "r0"}, calls)
    assert result["changed"] and argvs(result) == [["adjust", "r0"]]


def test_initial_promotion_runs_once_and_second_run_is_plain():
    first = run(
        {"name": "r0", "role": "primary", "allow_initial_promotion": True},
        [
            status("secondary_inconsistent"),
            *disk("metadata.node1.wipefs.txt"),
            drbdadm("-d", "adjust", "r0"),
            drbdadm("primary", "--force", "r0"),
            status("connected_primary"),
        ],
    )
    assert argvs(first) == [["primary", "--force", "r0"]]
    second = run(
        {"name": "r0", "role": "primary", "allow_initial_promotion": True},
        [status("connected_primary"), *disk("metadata.node1.wipefs.txt"), drbdadm("-d", "adjust", "r0")],
    )
    assert not second["changed"]


def test_split_brain_is_reported():
    calls = [
        status("split_brain"),
        drbdadm("sh-minor", "r0", out="0\n"),
        Call([BIN["dmesg"]], 0, fixture("split_brain.node1.dmesg.txt"), ""),
        *disk("metadata.node1.wipefs.txt"),
    ]
    result = run({"name": "r0", "state": "gathered"}, calls)
    assert result["status"]["split_brain"] and not result["changed"]


def test_slow_drbdadm_is_checked_by_reading_back():
    calls = [
        DOWN,
        *disk("metadata.node1.wipefs.txt"),
        drbdadm(
            "up", "r0", rc=20, err="Command 'drbdsetup-84 connect r0 ...' did not terminate within 5 seconds"
        ),
        status("waiting"),
    ]
    result = run({"name": "r0"}, calls)
    assert not result["failed"] and result["status"]["up"]


def test_wait_for_connection_times_out():
    calls = [
        status("waiting"),
        *disk("metadata.node1.wipefs.txt"),
        drbdadm("-d", "adjust", "r0"),
        status("waiting"),
        status("waiting"),
    ]
    with mock.patch.object(module.time, "monotonic", side_effect=[0, 0, 10]):
        result = run({"name": "r0", "wait": "connected", "timeout": 5}, calls)
    assert result["failed"] and "did not become connected within 5 s" in result["msg"]
