"""DRBD parsers and planning (plugins/module_utils/_drbd.py) on output captured from the real tools."""

from pathlib import Path

import pytest
from ansible_collections.hakit.cluster.plugins.module_utils._drbd import (
    DrbdError,
    adjust_commands,
    disk_contents,
    parse_proc_drbd,
    parse_status,
    parse_wipefs,
    plan_role,
    plan_up,
    split_brain_seen,
    summary,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "drbd" / "9.22.0"


def fixture(name):
    return (FIXTURES / name).read_text()


def state(case, node):
    return summary(parse_status(fixture(f"{case}.{node}.drbdadm-status.txt")))


# case, node: role, disk, connection, peer_role, peer_disk, up_to_date_somewhere
STATES = [
    ("waiting", "node1", "Secondary", "Inconsistent", "Connecting", None, None, None),
    (
        "secondary_inconsistent",
        "node1",
        "Secondary",
        "Inconsistent",
        "Connected",
        "Secondary",
        "Inconsistent",
        False,
    ),
    (
        "secondary_inconsistent",
        "node2",
        "Secondary",
        "Inconsistent",
        "Connected",
        "Secondary",
        "Inconsistent",
        False,
    ),
    ("connected_primary", "node1", "Primary", "UpToDate", "Connected", "Secondary", "UpToDate", True),
    ("connected_primary", "node2", "Secondary", "UpToDate", "Connected", "Primary", "UpToDate", True),
    ("connected_secondary", "node1", "Secondary", "UpToDate", "Connected", "Secondary", "UpToDate", True),
    ("standalone", "node1", "Secondary", "UpToDate", "StandAlone", None, None, True),
    ("standalone", "node2", "Secondary", "UpToDate", "Connecting", None, None, True),
    ("split_brain", "node1", "Primary", "UpToDate", "StandAlone", None, None, True),
    ("diskless", "node1", "Primary", "UpToDate", "Connected", "Secondary", "Diskless", True),
    ("diskless", "node2", "Secondary", "Diskless", "Connected", "Primary", "UpToDate", True),
    ("attach_failed", "node1", "Secondary", "Diskless", "StandAlone", None, None, None),
]


@pytest.mark.parametrize("case, node, role, disk, connection, peer_role, peer_disk, somewhere", STATES)
def test_status_of_each_captured_state(case, node, role, disk, connection, peer_role, peer_disk, somewhere):
    got = state(case, node)
    assert got["up"]
    assert (got["role"], got["disk"], got["connection"], got["peer_role"], got["peer_disk"]) == (
        role,
        disk,
        connection,
        peer_role,
        peer_disk,
    )
    assert got["up_to_date_somewhere"] == somewhere


CASES = [row[:2] for row in STATES]


@pytest.mark.parametrize("case, node", CASES)
def test_verbose_status_agrees_with_plain_status(case, node):
    verbose = summary(parse_status(fixture(f"{case}.{node}.drbdsetup-status.txt")))
    assert verbose == state(case, node)


@pytest.mark.parametrize("case, node", CASES)
def test_proc_drbd_agrees_with_status(case, node):
    proc = parse_proc_drbd(fixture(f"{case}.{node}.proc-drbd.txt"))
    assert proc["version"] == "8.4.11"
    device = proc["devices"][0]
    got = state(case, node)
    if device["connection"] != "Unconfigured":
        assert (device["role"], device["disk"]) == (got["role"], got["disk"])
    if got["connection"] == "Connected":
        assert (device["connection"], device["peer_disk"]) == ("Connected", got["peer_disk"])
        assert device["out_of_sync_kib"] == 0 or got["peer_disk"] != "UpToDate"


def test_waiting_proc_shows_all_blocks_out_of_sync():
    device = parse_proc_drbd(fixture("waiting.node1.proc-drbd.txt"))["devices"][0]
    assert (device["connection"], device["protocol"], device["out_of_sync_kib"]) == (
        "WFConnection",
        "C",
        131032,
    )


def test_attach_failed_proc_is_unconfigured():
    assert (
        parse_proc_drbd(fixture("attach_failed.node1.proc-drbd.txt"))["devices"][0]["connection"]
        == "Unconfigured"
    )


def test_resync_progress_line_of_proc_drbd():
    # DRBD 8.4's resync lines (drbd/drbd_proc.c); the lab's resync ended before a capture caught it.
    text = (
        "version: 8.4.11 (api:1/proto:86-101)\n"
        " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n"
        "    ns:10240 nr:0 dw:0 dr:10240 al:8 bm:0 lo:0 pe:1 ua:0 ap:0 ep:1 wo:f oos:120792\n"
        "\t[>...................] sync'ed:  7.9% (117/127)M\n"
        "\tfinish: 0:00:58 speed: 2,048 (2,048) K/sec\n"
    )
    device = parse_proc_drbd(text)["devices"][0]
    assert (device["connection"], device["done"], device["speed_kib"], device["out_of_sync_kib"]) == (
        "SyncSource",
        7.9,
        2048,
        120792,
    )


def test_split_brain_only_from_the_kernel_log():
    for node in ("node1", "node2"):
        log = fixture(f"split_brain.{node}.dmesg.txt")
        assert split_brain_seen(log, "r0", "0")
        assert not split_brain_seen(log, "r0", "1")
        got = summary(parse_status(fixture(f"split_brain.{node}.drbdadm-status.txt")), split_brain=True)
        assert (got["connection"], got["split_brain"]) == ("StandAlone", True)


def test_a_later_connection_supersedes_the_split_brain():
    log = fixture("split_brain.node1.dmesg.txt") + "[ 700.1] drbd r0: conn( WFReportParams -> Connected )\n"
    assert not split_brain_seen(log, "r0", "0")


def test_a_connected_resource_is_never_in_split_brain():
    assert not summary(parse_status(fixture("connected_primary.node1.drbdadm-status.txt")), split_brain=True)[
        "split_brain"
    ]


def test_down_resource():
    assert parse_status("") is None
    assert summary(None)["up"] is False


def test_backing_disk_contents():
    assert disk_contents(parse_wipefs(fixture("empty.node1.wipefs.txt").replace("rc=0", ""))) == dict(
        metadata=False, other=[]
    )
    assert disk_contents(parse_wipefs(fixture("metadata.node1.wipefs.txt").replace("rc=0", ""))) == dict(
        metadata=True, other=[]
    )
    # libblkid stops at DRBD's metadata: the ext4 made on /dev/drbd0 is not reported.
    assert disk_contents(
        parse_wipefs(fixture("filesystem_on_drbd.node1.wipefs.txt").replace("rc=0", ""))
    ) == dict(metadata=True, other=[])


def test_wipefs_garbage_is_an_error():
    with pytest.raises(DrbdError):
        parse_wipefs("wipefs: error: /dev/vdb: probing initialization failed")


def test_adjust_lists_what_differs():
    assert adjust_commands(fixture("adjust-unchanged.node1.txt")) == []
    changed = adjust_commands(fixture("adjust-net-changed.node1.txt"))
    assert (
        len(changed) == 1
        and changed[0].startswith("drbdsetup-84 net-options ")
        and "--ping-timeout=9" in changed[0]
    )
    assert adjust_commands(fixture("adjust-applied.node1.txt")) == []


EXT4 = dict(metadata=False, other=["ext4"])
EMPTY = dict(metadata=False, other=[])
WITH_MD = dict(metadata=True, other=[])


def test_plan_up_creates_metadata_only_on_an_empty_disk():
    down = summary(None)
    assert plan_up("r0", down, metadata=EMPTY) == [["create-md", "r0"], ["up", "r0"]]
    assert plan_up("r0", down, metadata=WITH_MD) == [["up", "r0"]]
    with pytest.raises(DrbdError, match="holds ext4 and no DRBD metadata"):
        plan_up("r0", down, metadata=EXT4)
    assert plan_up("r0", down, metadata=EXT4, force=True) == [["--force", "create-md", "r0"], ["up", "r0"]]


def test_plan_up_adjusts_only_on_a_difference():
    up = state("connected_primary", "node1")
    assert plan_up("r0", up, adjust=[]) == []
    assert plan_up("r0", up, adjust=["drbdsetup-84 net-options ..."]) == [["adjust", "r0"]]


def test_initial_promotion_only_while_no_node_has_data():
    fresh = state("secondary_inconsistent", "node1")
    with pytest.raises(DrbdError, match="initial promotion"):
        plan_role("r0", fresh, "primary")
    assert plan_role("r0", fresh, "primary", allow_initial_promotion=True) == [["primary", "--force", "r0"]]
    with pytest.raises(DrbdError, match="peer's data is unknown"):
        plan_role("r0", state("waiting", "node1"), "primary", allow_initial_promotion=True)


def test_a_synced_resource_is_never_forced():
    # A second converge of a pair that synced once: plain primary, never --force.
    synced = state("connected_secondary", "node1")
    assert plan_role("r0", synced, "primary", allow_initial_promotion=True) == [["primary", "r0"]]
    assert plan_role("r0", state("connected_primary", "node1"), "primary", allow_initial_promotion=True) == []
    diskless = state("diskless", "node2")
    with pytest.raises(DrbdError, match="refusing primary --force"):
        plan_role("r0", diskless, "primary", allow_initial_promotion=True)


def test_demotion_and_leaving_the_role_alone():
    primary = state("connected_primary", "node1")
    assert plan_role("r0", primary, "secondary") == [["secondary", "r0"]]
    assert plan_role("r0", state("connected_secondary", "node1"), "secondary") == []
    assert plan_role("r0", primary, None) == []
