"""hakit.cluster.ipvs with ipvsadm replaced by a script of expected calls and their answers."""

import json
from collections import namedtuple
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible_collections.hakit.cluster.plugins.modules import ipvs as module

from .scripted import run_scripted

IPVSADM = "/usr/sbin/ipvsadm"
Call = namedtuple("Call", "args stdin rc out err")

BEFORE = """\
-A -t 10.0.0.100:80 -s wrr
-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3
-a -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 1
"""
AFTER = BEFORE + "-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2\n"
THRESHOLDS = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn
  -> RemoteAddress:Port
TCP  10.0.0.100:80 wrr
  -> 10.0.0.11:80                 100        10         0          0
  -> 10.0.0.12:80                 0          0          0          0
"""
ADD_ONE = [{"address": "10.0.0.100", "port": 80, "real_servers": [{"address": "10.0.0.13", "weight": 2}]}]


def reads(save, thresholds=""):
    """The two commands the module reads the table with, answering ``save`` and ``thresholds``."""
    return [Call(["-Sn"], None, 0, save, ""), Call(["-Ln", "--thresholds"], None, 0, thresholds, "")]


def restore(lines, rc=0, err=""):
    return Call(["-R"], "".join(line + "\n" for line in lines), rc, "", err)


def bin_path(name):
    assert name == "ipvsadm"
    return IPVSADM


def run(args, calls, check_mode=False, diff=False):
    """Run the module; every call must come in order, with the C locale and the expected stdin."""
    result = run_scripted(
        module,
        args,
        calls,
        expected=lambda call: ([IPVSADM, *call.args], call.stdin),
        bin_path=bin_path,
        check_mode=check_mode,
        diff=diff,
    )
    json.dumps(result)  # what a module returns must serialise
    return result


def test_gathered_reads_both_formats_and_changes_nothing():
    result = run({"state": "gathered"}, reads(BEFORE, THRESHOLDS))
    assert not result["changed"] and result["commands"] == []
    reals = result["gathered"][0]["real_servers"]
    assert [(r["address"], r["weight"], r["u_threshold"], r["l_threshold"]) for r in reals] == [
        ("10.0.0.11", 3, 100, 10),
        ("10.0.0.12", 1, 0, 0),
    ]


def test_merged_applies_one_batch_then_checks_the_table():
    lines = ["-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"]
    result = run({"config": ADD_ONE}, [*reads(BEFORE), restore(lines), *reads(AFTER)])
    assert result["changed"] and not result["failed"]
    assert result["commands"] == lines
    assert [r["address"] for r in result["after"][0]["real_servers"]] == [
        "10.0.0.11",
        "10.0.0.12",
        "10.0.0.13",
    ]
    assert len(result["before"][0]["real_servers"]) == 2
    assert "diff" not in result


def test_second_run_reads_and_does_nothing():
    result = run({"config": ADD_ONE}, reads(AFTER))
    assert not result["changed"] and result["commands"] == []
    assert len(result["before"][0]["real_servers"]) == 3 and "after" not in result


def test_check_mode_predicts_without_running_the_batch():
    result = run({"config": ADD_ONE}, reads(BEFORE), check_mode=True)
    assert result["changed"]
    assert result["commands"] == ["-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"]
    assert len(result["after"][0]["real_servers"]) == 3


def test_diff_shows_the_table_as_rules_with_thresholds():
    result = run({"config": ADD_ONE}, reads(BEFORE, THRESHOLDS), check_mode=True, diff=True)
    (table,) = result["diff"]
    assert table["before"].splitlines()[1] == "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3 -x 100 -y 10"
    assert table["after"].endswith("-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2\n")


def test_batch_that_does_not_reach_the_table_fails_even_with_rc_0():
    # ipvsadm -R returns the status of its last line only: an earlier failure shows on stderr.
    lines = ["-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"]
    calls = [*reads(BEFORE), restore(lines, err="Memory allocation problem\n"), *reads(BEFORE)]
    result = run({"config": ADD_ONE}, calls)
    assert result["failed"]
    assert "still to do: -a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2" in result["msg"]
    assert "Memory allocation problem" in result["msg"]


def test_batch_failing_outright_reports_ipvsadm_error():
    lines = ["-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"]
    result = run({"config": ADD_ONE}, [*reads(BEFORE), restore(lines, rc=2, err="Service not defined\n")])
    assert result["failed"] and result["rc"] == 2
    assert result["msg"] == "/usr/sbin/ipvsadm -R failed (rc=2): Service not defined"


def test_overridden_purges_and_replaced_does_not():
    other = "-A -u 10.0.0.100:53 -s rr\n"
    config = [
        {"address": "10.0.0.100", "port": 80, "scheduler": "wrr", "real_servers": [{"address": "10.0.0.11"}]}
    ]
    replaced = run({"config": config, "state": "replaced"}, reads(BEFORE + other), check_mode=True)
    assert replaced["commands"] == [
        "-e -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 1",
        "-d -t 10.0.0.100:80 -r 10.0.0.12:80",
    ]
    overridden = run({"config": config, "state": "overridden"}, reads(BEFORE + other), check_mode=True)
    assert overridden["commands"] == [*replaced["commands"], "-D -u 10.0.0.100:53"]


def test_deleted_without_config_removes_every_service():
    result = run({"state": "deleted"}, [*reads(BEFORE), restore(["-D -t 10.0.0.100:80"]), *reads("")])
    assert result["changed"] and result["after"] == []


def test_persist_file_holds_the_table_and_is_rewritten_only_when_it_differs(tmp_path):
    path = tmp_path / "ipvsadm.rules"
    args = {"config": ADD_ONE, "persist_file": str(path)}
    predicted = run(args, reads(BEFORE, THRESHOLDS), check_mode=True, diff=True)
    assert predicted["changed"] and not path.exists()
    assert predicted["diff"][1]["after_header"] == str(path)

    lines = ["-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"]
    run(args, [*reads(BEFORE, THRESHOLDS), restore(lines), *reads(AFTER, THRESHOLDS)])
    text = path.read_text()
    assert text.startswith("# ")
    assert text.splitlines()[1:] == [
        "-A -t 10.0.0.100:80 -s wrr",
        "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3 -x 100 -y 10",
        "-a -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2",
    ]
    again = run(args, reads(AFTER, THRESHOLDS))
    assert not again["changed"]

    path.write_text("stale\n")
    repaired = run(args, reads(AFTER, THRESHOLDS))
    assert repaired["changed"] and repaired["commands"] == [] and path.read_text() == text


def test_rendered_and_parsed_work_offline():
    with mock.patch.object(basic.AnsibleModule, "get_bin_path", side_effect=AssertionError("no ipvsadm")):
        config = [{"protocol": "udp", "address": "10.0.0.100", "port": 53, "one_packet": True}]
        rendered = run({"config": config, "state": "rendered"}, [])
        parsed = run({"running_config": BEFORE, "state": "parsed"}, [])
    assert rendered["rendered"] == ["-A -u 10.0.0.100:53 -s wlc -o"] and not rendered["changed"]
    assert parsed["parsed"][0]["scheduler"] == "wrr" and len(parsed["parsed"][0]["real_servers"]) == 2


def test_configuration_errors_fail_before_any_command():
    duplicate = [{"address": "10.0.0.100", "port": 80, "real_servers": [{"address": "10.0.0.11"}] * 2}]
    result = run({"config": duplicate}, [])
    assert result["failed"]
    assert "real server 10.0.0.11:80 of -t 10.0.0.100:80 is already listed" in result["msg"]


def test_configuration_errors_found_against_the_live_table_fail_before_changing_it():
    config = [{"address": "10.0.0.100", "port": 80, "scheduler_flags": ["sh-port"]}]
    result = run({"config": config}, reads(BEFORE))
    assert result["failed"] and "does not apply to scheduler wrr" in result["msg"]


@pytest.mark.parametrize(
    "args, message",
    [
        (
            {"config": [{"protocol": "fwmark"}]},
            "protocol is fwmark but all of the following are missing: fwmark",
        ),
        ({"config": [{"address": "10.0.0.1"}]}, "protocol is tcp but all of the following are missing: port"),
        ({"config": [{"fwmark": 1, "address": "10.0.0.1", "protocol": "fwmark"}]}, "mutually exclusive"),
        ({"state": "merged"}, "state is merged but all of the following are missing: config"),
        ({"state": "parsed"}, "state is parsed but all of the following are missing: running_config"),
        (
            {"config": [{"address": "10.0.0.1", "port": 80, "scheduler": "fifo"}]},
            "value of scheduler must be one of",
        ),
    ],
)
def test_argument_spec_rejects_incomplete_input(args, message):
    result = run(args, [])
    assert result["failed"] and message in result["msg"]


def test_empty_config_is_given_config():
    # `config: []` is a list: overridden clears the table, merged only (re)writes persist_file.
    result = run({"config": [], "state": "overridden"}, reads(BEFORE), check_mode=True)
    assert result["commands"] == ["-D -t 10.0.0.100:80"]
    assert not run({"config": []}, reads(BEFORE))["changed"]
