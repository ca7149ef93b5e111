"""The pure IPVS helpers: ipvsadm output parsed, wanted state reconciled, -R batches planned.

Parser tests run on output captured from the real ipvsadm (tests/unit/fixtures/ipvsadm/<version>/),
each case built on a cleared table from tests/unit/fixtures/ipvsadm/cases/<case>.rules.
"""

from pathlib import Path

import pytest
from ansible_collections.hakit.cluster.plugins.module_utils import _ipvs as ipvs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ipvsadm"
VERSIONS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name[0].isdigit())
CASES = sorted(p.stem for p in (FIXTURES / "cases").glob("*.rules"))
CAPTURES = [pytest.param(v, c, id=f"ipvsadm-{v}-{c}") for v in VERSIONS for c in CASES]


def captured(version, case, what):
    """A captured output; a missing one fails the test (fixtures are never written by tests)."""
    return (FIXTURES / version / (f"{case}.{what}.txt")).read_text()


def rules(case):
    return (FIXTURES / "cases" / (f"{case}.rules")).read_text()


def live(version, case):
    return ipvs.read_table(captured(version, case, "Sn"), captured(version, case, "Ln-thresholds"))


def table(text):
    return ipvs.parse_rules(text)


def run(current_text, config, state):
    """The -R lines that take the table in ``current_text`` to ``config`` in ``state``."""
    current = table(current_text)
    return ipvs.plan(current, ipvs.reconcile(current, ipvs.wanted_services(config), state))


def svc(address="10.0.0.100", port=80, reals=None, protocol="tcp", **attrs):
    entry = dict(protocol=protocol, address=address, port=port, **attrs)
    if reals is not None:
        entry["real_servers"] = reals
    return entry


BASE = """\
-A -t 10.0.0.100:80 -s wrr
-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3
-a -t 10.0.0.100:80 -r 10.0.0.12:80 -g -w 1
-A -t 10.0.0.101:80 -s wlc -p 300
-a -t 10.0.0.101:80 -r 10.0.0.21:8080 -m -w 1
"""


# ---------------------------------------------------------------- captured output


def test_fixtures_exist_for_every_case():
    assert VERSIONS, f"no captured ipvsadm output under {FIXTURES}"
    for version in VERSIONS:
        for case in CASES:
            for what in ("Sn", "Ln-thresholds", "Ln"):
                assert (FIXTURES / version / (f"{case}.{what}.txt")).is_file(), (version, case, what)


@pytest.mark.parametrize("version, case", CAPTURES)
def test_parser_reads_back_the_table_that_was_restored(version, case):
    assert live(version, case) == table(rules(case))


@pytest.mark.parametrize("version, case", CAPTURES)
def test_rendered_rules_parse_back_to_the_same_table(version, case):
    current = live(version, case)
    assert table(ipvs.render_rules(current)) == current


@pytest.mark.parametrize("version, case", CAPTURES)
def test_gathered_table_fed_back_as_config_changes_nothing(version, case):
    current = live(version, case)
    for state in ("merged", "replaced", "overridden"):
        after = ipvs.reconcile(current, ipvs.wanted_services(current), state)
        assert after == current
        assert ipvs.plan(current, after) == []


@pytest.mark.parametrize("version", VERSIONS)
def test_save_format_leaves_thresholds_to_the_list_format(version):
    without = ipvs.parse_rules(captured(version, "thresholds", "Sn"))
    assert {(r["u_threshold"], r["l_threshold"]) for r in without[0]["real_servers"]} == {(0, 0)}
    reals = {r["address"]: r for r in live(version, "thresholds")[0]["real_servers"]}
    assert (reals["10.0.0.11"]["u_threshold"], reals["10.0.0.11"]["l_threshold"]) == (100, 10)
    assert (reals["10.0.0.12"]["u_threshold"], reals["10.0.0.12"]["l_threshold"]) == (50, 0)
    assert (reals["10.0.0.13"]["u_threshold"], reals["10.0.0.13"]["l_threshold"]) == (0, 0)


@pytest.mark.parametrize("version", VERSIONS)
def test_seed_002_direct_routing_in_full(version):
    assert live(version, "seed002_dr") == [
        {
            "protocol": "tcp",
            "address": "193.144.50.250",
            "port": 80,
            "fwmark": None,
            "family": "ipv4",
            "scheduler": "wrr",
            "scheduler_flags": [],
            "persistent": 0,
            "netmask": "255.255.255.255",
            "persistence_engine": None,
            "one_packet": False,
            "real_servers": [
                {
                    "address": "193.144.50.251",
                    "port": 80,
                    "forwarding": "gate",
                    "weight": 1,
                    "u_threshold": 0,
                    "l_threshold": 0,
                    "tunnel_type": None,
                    "tunnel_port": None,
                    "tunnel_checksum": None,
                },
                {
                    "address": "193.144.50.252",
                    "port": 80,
                    "forwarding": "gate",
                    "weight": 3,
                    "u_threshold": 0,
                    "l_threshold": 0,
                    "tunnel_type": None,
                    "tunnel_port": None,
                    "tunnel_checksum": None,
                },
            ],
        }
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_attributes_as_captured(version):
    fwmark = {s["fwmark"]: s for s in live(version, "fwmark")}
    assert fwmark[1]["family"] == "ipv4" and fwmark[1]["scheduler_flags"] == ["sh-fallback", "sh-port"]
    assert [(r["address"], r["port"], r["forwarding"]) for r in fwmark[1]["real_servers"]] == [
        ("10.0.1.11", 0, "gate"),
        ("10.0.1.12", 8080, "masq"),
    ]
    assert fwmark[2]["family"] == "ipv6" and fwmark[2]["scheduler"] == "mh"
    six = {s["protocol"]: s for s in live(version, "ipv6")}
    assert (six["tcp"]["address"], six["tcp"]["persistent"], six["tcp"]["netmask"]) == (
        "2001:db8::100",
        300,
        "64",
    )
    assert six["udp"]["real_servers"][0]["port"] == 5353
    persistent = {s["port"]: s for s in live(version, "persistent")}
    assert (persistent[443]["persistent"], persistent[443]["netmask"]) == (600, "255.255.255.0")
    assert persistent[80]["persistent"] == ipvs.DEFAULT_PERSISTENT_TIMEOUT
    assert persistent[0]["persistent"] == 1800
    udp = {s["port"]: s for s in live(version, "udp_ops_pe")}
    assert udp[53]["one_packet"] and udp[5060]["persistence_engine"] == "sip"
    gue = {r["address"]: r for r in live(version, "gue")[0]["real_servers"]}
    assert (gue["10.0.0.11"]["tunnel_type"], gue["10.0.0.11"]["tunnel_port"]) == ("gue", 6080)
    assert gue["10.0.0.11"]["tunnel_checksum"] == "csum"
    assert gue["10.0.0.12"]["tunnel_type"] == "ipip" and gue["10.0.0.12"]["tunnel_port"] is None
    assert gue["10.0.0.13"]["tunnel_checksum"] == "none"
    local = {r["port"]: r["forwarding"] for r in live(version, "local_masq")[0]["real_servers"]}
    assert local == {80: "gate", 8080: "masq"}  # no "Local" rewrite of the method (kernel 6.1)
    quiescent = live(version, "seed003_quiescent")[0]["real_servers"]
    assert [(r["address"], r["weight"]) for r in quiescent] == [
        ("127.0.0.1", 1),
        ("192.168.1.101", 0),
        ("192.168.1.102", 0),
    ]


# ---------------------------------------------------------------- parser details


def test_older_ipvsadm_spellings_and_long_options_parse():
    old = table("-A -u 10.0.0.1:5060 -s rr -p 60 pe sip ops\n-a -u 10.0.0.1:5060 -r 10.0.0.2:5060 -m -w 2\n")
    new = table(
        "ipvsadm --add-service --udp-service 10.0.0.1:5060 --scheduler=rr --persistent 60 --pe sip --ops\n"
        "ipvsadm --add-server --udp-service 10.0.0.1:5060 --real-server 10.0.0.2:5060 --masquerading --weight 2\n"
    )
    assert old == new
    assert old[0]["one_packet"] and old[0]["persistence_engine"] == "sip"


def test_comments_and_blank_lines_are_skipped():
    assert table("# saved\n\n-A -t 10.0.0.1:80 -s rr  # the web service\n") == table(
        "-A -t 10.0.0.1:80 -s rr\n"
    )


def test_netmask_is_read_only_with_persistence():
    assert table("-A -t 10.0.0.1:80 -s rr -M 255.255.0.0\n")[0]["netmask"] == "255.255.255.255"


@pytest.mark.parametrize(
    "text, message",
    [
        ("-A -t 10.0.0.1:80 -s rr -Z\n", "unexpected '-Z'"),
        ("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1\n", "before its -A line"),
        ("-A -t 10.0.0.1:http -s rr\n", "port 'http' is not a number"),
        ("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n", "defined twice"),
        ("-A -t www.example.org:80\n", "not an IP address"),
        ("-A -t 10.0.0.1\n", "has no port"),
        ("-C\n", "unexpected '-C'"),
        ("-A -s rr\n", "no virtual service"),
        ("-a -t 10.0.0.1:80 -w 1\n", "before its -A line"),
    ],
)
def test_parser_names_the_line_it_cannot_read(text, message):
    with pytest.raises(ipvs.IpvsError, match=r"line [12]") as error:
        table(text)
    assert message in str(error.value)


def test_thresholds_list_format_keys_services_and_reals_like_the_save_format():
    text = (
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn\n"
        "  -> RemoteAddress:Port\n"
        "UDP  [2001:db8::1]:53 rr\n"
        "  -> [2001:db8::11]:53            7          3          0          0\n"
        "FWM  3 IPv6 wlc\n"
        "  -> [2001:db8::12]:0             9          0          0          0\n"
    )
    assert ipvs.parse_thresholds(text) == {
        ("-u [2001:db8::1]:53", "[2001:db8::11]:53"): (7, 3),
        ("-f 3 -6", "[2001:db8::12]:0"): (9, 0),
    }


# ---------------------------------------------------------------- planning: merged


def test_add_service_on_an_empty_table_takes_ipvsadm_defaults():
    assert run("", [svc(reals=[{"address": "10.0.0.11"}])], "merged") == [
        "-A -t 10.0.0.100:80 -s wlc",
        "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 1",
    ]


def test_add_real_server_to_an_existing_service_adds_only_it():
    assert run(BASE, [svc(reals=[{"address": "10.0.0.13", "weight": 2}])], "merged") == [
        "-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 2"
    ]


def test_weight_change_edits_the_real_server_in_place():
    assert run(BASE, [svc(reals=[{"address": "10.0.0.11", "weight": 5}])], "merged") == [
        "-e -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 5"
    ]


def test_scheduler_change_edits_the_service_in_place_and_leaves_its_reals():
    assert run(BASE, [svc(scheduler="rr")], "merged") == ["-E -t 10.0.0.100:80 -s rr"]


def test_merged_keeps_what_is_not_given():
    # Only the weight is given: masq forwarding and port 8080 stay, so does persistence.
    config = [svc("10.0.0.101", reals=[{"address": "10.0.0.21", "port": 8080, "weight": 4}])]
    assert run(BASE, config, "merged") == ["-e -t 10.0.0.101:80 -r 10.0.0.21:8080 -m -w 4"]
    assert run(BASE, [svc("10.0.0.101", scheduler="wlc")], "merged") == []


def test_persistence_is_edited_in_place_and_turned_off_with_zero():
    assert run(BASE, [svc(persistent=600, netmask="24")], "merged") == [
        "-E -t 10.0.0.100:80 -s wrr -p 600 -M 255.255.255.0"
    ]
    assert run(BASE, [svc("10.0.0.101", persistent=0)], "merged") == ["-E -t 10.0.0.101:80 -s wlc"]


def test_merged_does_not_remove_unlisted_real_servers():
    assert run(BASE, [svc(reals=[{"address": "10.0.0.11", "weight": 3}])], "merged") == []


def test_forwarding_change_edits_in_place():
    assert run(BASE, [svc(reals=[{"address": "10.0.0.12", "forwarding": "masq"}])], "merged") == [
        "-e -t 10.0.0.100:80 -r 10.0.0.12:80 -m -w 1"
    ]


def test_thresholds_and_gue_tunnels_are_rendered_in_full_on_edit():
    config = [
        svc(
            reals=[
                {"address": "10.0.0.11", "u_threshold": 100, "l_threshold": 10},
                {"address": "10.0.0.12", "forwarding": "ipip", "tunnel_type": "gue", "tunnel_port": 6080},
            ]
        )
    ]
    assert run(BASE, config, "merged") == [
        "-e -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3 -x 100 -y 10",
        "-e -t 10.0.0.100:80 -r 10.0.0.12:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
    ]


def test_scheduler_flags_follow_their_scheduler():
    current = "-A -t 10.0.0.100:80 -s sh -b sh-port\n"
    assert run(current, [svc(scheduler="wlc")], "merged") == ["-E -t 10.0.0.100:80 -s wlc"]
    assert run(current, [svc(scheduler_flags=["sh-port", "sh-fallback"])], "merged") == [
        "-E -t 10.0.0.100:80 -s sh -b sh-fallback,sh-port"
    ]


# ---------------------------------------------------------------- planning: idempotence


@pytest.mark.parametrize("state", ["merged", "replaced", "overridden"])
def test_the_same_configuration_again_plans_nothing(state):
    config = [
        svc(scheduler="wrr", reals=[{"address": "10.0.0.11", "weight": 3}, {"address": "10.0.0.12"}]),
        svc(
            "10.0.0.101",
            scheduler="wlc",
            persistent=300,
            reals=[{"address": "10.0.0.21", "port": 8080, "forwarding": "masq"}],
        ),
    ]
    assert run(BASE, config, state) == []


def test_addresses_and_netmasks_compare_by_value_not_spelling():
    current = "-A -t [2001:db8::100]:443 -s wlc -p 300 -M 64\n-a -t [2001:db8::100]:443 -r [2001:db8::11]:443 -g -w 1\n"
    config = [
        svc(
            "2001:DB8:0:0::100",
            443,
            persistent=300,
            netmask="/64",
            reals=[{"address": "2001:db8:0000::11", "forwarding": "gate", "weight": 1}],
        )
    ]
    assert run(current, config, "replaced") == []
    assert (
        run("-A -t 10.0.0.1:80 -s rr -p 60 -M 255.255.0.0\n", [svc("10.0.0.1", netmask="16")], "merged") == []
    )


# ---------------------------------------------------------------- planning: replaced, overridden, deleted


def test_replaced_removes_unlisted_reals_and_resets_omitted_attributes():
    config = [svc("10.0.0.101", reals=[{"address": "10.0.0.22"}])]
    assert run(BASE, config, "replaced") == [
        "-E -t 10.0.0.101:80 -s wlc",
        "-a -t 10.0.0.101:80 -r 10.0.0.22:80 -g -w 1",
        "-d -t 10.0.0.101:80 -r 10.0.0.21:8080",
    ]


def test_replaced_leaves_unlisted_services_and_overridden_removes_them():
    config = [svc(scheduler="wrr", reals=[{"address": "10.0.0.11", "weight": 3}])]
    assert run(BASE, config, "replaced") == ["-d -t 10.0.0.100:80 -r 10.0.0.12:80"]
    assert run(BASE, config, "overridden") == ["-d -t 10.0.0.100:80 -r 10.0.0.12:80", "-D -t 10.0.0.101:80"]


def test_overridden_with_an_empty_list_clears_the_table():
    assert run(BASE, [], "overridden") == ["-D -t 10.0.0.100:80", "-D -t 10.0.0.101:80"]


def test_additions_come_before_edits_and_removals():
    # Swapping every real server never leaves the service empty.
    config = [
        svc(scheduler="rr", reals=[{"address": "10.0.0.13"}, {"address": "10.0.0.14"}]),
        svc("10.0.0.102", reals=[{"address": "10.0.0.31"}]),
    ]
    commands = run(BASE, config, "overridden")
    assert commands == [
        "-A -t 10.0.0.102:80 -s wlc",
        "-E -t 10.0.0.100:80 -s rr",
        "-a -t 10.0.0.100:80 -r 10.0.0.13:80 -g -w 1",
        "-a -t 10.0.0.100:80 -r 10.0.0.14:80 -g -w 1",
        "-a -t 10.0.0.102:80 -r 10.0.0.31:80 -g -w 1",
        "-d -t 10.0.0.100:80 -r 10.0.0.11:80",
        "-d -t 10.0.0.100:80 -r 10.0.0.12:80",
        "-D -t 10.0.0.101:80",
    ]


def test_deleted_removes_a_listed_service_or_only_its_listed_reals():
    assert run(BASE, [svc("10.0.0.101")], "deleted") == ["-D -t 10.0.0.101:80"]
    assert run(BASE, [svc(reals=[{"address": "10.0.0.12"}])], "deleted") == [
        "-d -t 10.0.0.100:80 -r 10.0.0.12:80"
    ]
    assert run(BASE, [svc("10.0.0.101", reals=[{"address": "10.0.0.21", "port": 8080}])], "deleted") == [
        "-d -t 10.0.0.101:80 -r 10.0.0.21:8080"
    ]


def test_deleted_without_config_clears_and_absent_things_are_no_ops():
    assert run(BASE, None, "deleted") == ["-D -t 10.0.0.100:80", "-D -t 10.0.0.101:80"]
    assert run(BASE, [svc("10.9.9.9"), svc(reals=[{"address": "10.0.0.99"}])], "deleted") == []
    assert run("", None, "deleted") == []


# ---------------------------------------------------------------- planning: fwmark, udp, sctp, IPv6


def test_fwmark_service_reals_default_to_port_zero():
    config = [
        {"protocol": "fwmark", "fwmark": 1, "scheduler": "sh", "real_servers": [{"address": "10.0.1.11"}]}
    ]
    assert run("", config, "merged") == ["-A -f 1 -s sh", "-a -f 1 -r 10.0.1.11:0 -g -w 1"]
    six = [
        {"protocol": "fwmark", "fwmark": 2, "family": "ipv6", "real_servers": [{"address": "2001:db8::11"}]}
    ]
    assert run("", six, "merged") == ["-A -f 2 -6 -s wlc", "-a -f 2 -6 -r [2001:db8::11]:0 -g -w 1"]


def test_udp_one_packet_and_sip_persistence():
    config = [svc(port=5060, protocol="udp", persistent=120, persistence_engine="sip", one_packet=True)]
    assert run("", config, "merged") == ["-A -u 10.0.0.100:5060 -s wlc -p 120 --pe sip -o"]


def test_sctp_and_ipv6_services_are_named_like_ipvsadm_names_them():
    config = [
        svc(port=3868, protocol="sctp"),
        svc("2001:db8::100", 443, reals=[{"address": "2001:db8::11", "forwarding": "masq", "port": 8443}]),
    ]
    assert run("", config, "merged") == [
        "-A -t [2001:db8::100]:443 -s wlc",
        "-A --sctp-service 10.0.0.100:3868 -s wlc",
        "-a -t [2001:db8::100]:443 -r [2001:db8::11]:8443 -m -w 1",
    ]


def test_ipip_may_cross_address_families():
    config = [svc("2001:db8::100", 80, reals=[{"address": "10.0.0.11", "forwarding": "ipip"}])]
    assert run("", config, "merged")[-1] == "-a -t [2001:db8::100]:80 -r 10.0.0.11:80 -i -w 1"


# ---------------------------------------------------------------- wanted state the kernel would refuse


@pytest.mark.parametrize(
    "config, message",
    [
        ([svc(), svc()], r"config\[1\]: virtual service -t 10.0.0.100:80 is already listed in config\[0\]"),
        (
            [svc(reals=[{"address": "10.0.0.11"}, {"address": "10.0.0.11", "port": 80}])],
            r"real_servers\[1\]: real server 10.0.0.11:80 .* already listed",
        ),
        ([svc(reals=[{"address": "10.0.0.11", "port": 8080}])], "cannot use another port than the service"),
        (
            [svc(reals=[{"address": "10.0.0.11", "u_threshold": 5, "l_threshold": 9}])],
            "above its u_threshold",
        ),
        ([svc(one_packet=True)], "one_packet scheduling is only for udp and fwmark"),
        ([svc(port=0)], "port 0 .* only with persistent"),
        ([svc(netmask="255.255.255.0")], "netmask needs persistent"),
        ([svc(scheduler="wlc", scheduler_flags=["sh-port"])], "does not apply to scheduler wlc"),
        ([{"protocol": "fwmark", "fwmark": 1, "address": "10.0.0.1"}], "has no address or port"),
        ([{"protocol": "fwmark"}], "needs fwmark"),
        ([{"protocol": "tcp", "address": "10.0.0.1"}], "needs address and port"),
        ([svc(family="ipv6")], "does not match address"),
        ([svc(reals=[{"address": "2001:db8::11"}])], "only forwarding ipip crosses address families"),
        ([svc(reals=[{"address": "10.0.0.11", "tunnel_type": "gue"}])], "applies only to forwarding ipip"),
        (
            [svc(reals=[{"address": "10.0.0.11", "forwarding": "ipip", "tunnel_type": "gue"}])],
            "needs tunnel_port",
        ),
        (
            [svc(reals=[{"address": "10.0.0.11", "forwarding": "ipip", "tunnel_port": 1}])],
            "only to tunnel_type gue",
        ),
        ([svc(persistent=10, netmask="33")], "neither a dotted netmask nor a prefix length"),
        ([svc(reals=[{"address": "10.0.0.11", "weight": 70000}])], "weight 70000 is outside"),
        ([svc("not-an-ip")], "is not an IP address"),
    ],
)
def test_wanted_state_the_kernel_would_refuse_fails_with_a_message(config, message):
    with pytest.raises(ipvs.IpvsError, match=message):
        current = table(BASE)
        ipvs.reconcile(current, ipvs.wanted_services(config), "replaced")


def test_merge_is_checked_after_combining_with_the_live_table():
    # The live service is persistent with a /24 granularity; turning persistence off drops the
    # netmask instead of failing, but naming a netmask then is an error.
    current = "-A -t 10.0.0.100:80 -s wlc -p 300 -M 255.255.255.0\n"
    assert run(current, [svc(persistent=0)], "merged") == ["-E -t 10.0.0.100:80 -s wlc"]
    with pytest.raises(ipvs.IpvsError, match="netmask needs persistent"):
        run(current, [svc(persistent=0, netmask="24")], "merged")
