"""The uplink logic: frames on the wire, probe outcomes, the failover state machine (fake clock, fake
probe rounds) and the settings rules shared by the role's validation and the daemon."""

import socket
import struct

import pytest
from ansible_collections.hakit.cluster.plugins.module_utils import _uplink as uplink

NODE_MAC = bytes.fromhex("02000a500b0b")
GW_MAC = bytes.fromhex("02000a500101")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def reply_frame(request_frame, answer_ident=None):
    """What a gateway returns for an echo request frame: the reply from the target to the source."""
    ip = request_frame[14:]
    source, target = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    _t, _c, _s, ident, seq = struct.unpack("!BBHHH", ip[20:28])
    header = struct.pack("!BBHHH", 0, 0, 0, ident if answer_ident is None else answer_ident, seq)
    icmp = header[:2] + struct.pack("!H", uplink.checksum(header + ip[28:])) + header[4:] + ip[28:]
    return uplink.ethernet_frame(NODE_MAC, GW_MAC, uplink.ETH_P_IP, uplink.ipv4_packet(target, source, icmp))


# -- wire formats ------------------------------------------------------------------------------------


def test_checksums_verify_to_zero():
    packet = uplink.ipv4_packet("10.80.1.11", "10.80.100.1", uplink.echo_request(0x1234, 7))
    assert uplink.checksum(packet[:20]) == 0
    assert uplink.checksum(packet[20:]) == 0
    assert uplink.checksum(b"\x01") == uplink.checksum(b"\x01\x00")


def test_an_echo_reply_is_matched_by_identifier_and_destination():
    request = uplink.ethernet_frame(
        GW_MAC,
        NODE_MAC,
        uplink.ETH_P_IP,
        uplink.ipv4_packet("10.80.1.11", "10.80.100.1", uplink.echo_request(42, 9)),
    )
    assert uplink.parse_echo_reply(reply_frame(request), 42, "10.80.1.11") == ("10.80.100.1", 9)
    assert uplink.parse_echo_reply(reply_frame(request), 43, "10.80.1.11") is None
    assert uplink.parse_echo_reply(reply_frame(request), 42, "10.80.2.11") is None
    # Our own request (type 8) read back on the socket is no reply.
    assert uplink.parse_echo_reply(request, 42, "10.80.100.1") is None


def test_an_arp_reply_gives_the_gateways_mac():
    request = uplink.arp_request(NODE_MAC, "10.80.1.11", "10.80.1.1")
    assert request[:6] == b"\xff" * 6 and request[12:14] == b"\x08\x06"
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        0x0800,
        6,
        4,
        2,
        GW_MAC,
        socket.inet_aton("10.80.1.1"),
        NODE_MAC,
        socket.inet_aton("10.80.1.11"),
    )
    reply = uplink.ethernet_frame(NODE_MAC, GW_MAC, uplink.ETH_P_ARP, arp)
    assert uplink.parse_arp_reply(reply, "10.80.1.1") == GW_MAC
    assert uplink.parse_arp_reply(reply, "10.80.1.2") is None
    assert uplink.parse_arp_reply(request, "10.80.1.11") is None  # a request, not a reply
    assert uplink.format_mac(GW_MAC) == "02:00:0a:50:01:01"


# -- probe outcomes ------------------------------------------------------------------------------------


def test_summary_per_target_and_k_of_n():
    result = uplink.summarize(["a", "b", "c"], 4, {"a": [0.010, 0.020], "b": [0.004] * 4}, min_targets=2)
    a, b, c = result["targets"]
    assert (a["received"], a["loss_percent"], a["rtt_avg_ms"], a["rtt_max_ms"]) == (2, 50.0, 15.0, 20.0)
    assert (b["reachable"], b["loss_percent"]) == (True, 0.0)
    assert (c["reachable"], c["rtt_avg_ms"], c["loss_percent"]) == (False, None, 100.0)
    assert (result["reachable"], result["reachable_targets"], result["sent"], result["received"]) == (
        True,
        2,
        12,
        6,
    )
    assert result["loss_percent"] == 50.0
    # One dead target of two is no dead uplink with k=1, and is one with k=2.
    assert uplink.summarize(["a", "b"], 1, {"a": [0.01]}, min_targets=1)["reachable"] is True
    assert uplink.summarize(["a", "b"], 1, {"a": [0.01]}, min_targets=2)["reachable"] is False


class FakeWire:
    """Packet sockets on one interface: the gateway answers ARP and echoes for `alive` targets."""

    def __init__(self, alive, clock, rtt=0.003):
        self.alive, self.clock, self.rtt = set(alive), clock, rtt
        self.queue, self.sent = [], []

    def socket(self, family, kind, proto):
        assert family == socket.AF_PACKET
        return FakeSocket(self)

    def select(self, readers, _w, _x, timeout):
        if self.queue:
            return readers, [], []
        self.clock.advance(timeout)
        return [], [], []

    def transmit(self, frame):
        self.sent.append(frame)
        self.queue.append(
            (frame, ("eth0", 0, uplink.PACKET_OUTGOING, 1, NODE_MAC))
        )  # our own frame, seen back
        if frame[12:14] == b"\x08\x06":
            arp = struct.pack(
                "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, GW_MAC, frame[38:42], NODE_MAC, frame[28:32]
            )
            self.queue.append(
                (uplink.ethernet_frame(NODE_MAC, GW_MAC, uplink.ETH_P_ARP, arp), ("eth0", 0, 0, 1, GW_MAC))
            )
        elif socket.inet_ntoa(frame[30:34]) in self.alive:
            assert frame[:6] == GW_MAC, "probes go to the gateway's MAC"
            self.queue.append((reply_frame(frame), ("eth0", 0, 0, 1, GW_MAC)))


class FakeSocket:
    def __init__(self, wire):
        self.wire = wire

    def bind(self, where):
        self.where = where

    def send(self, frame):
        self.wire.transmit(frame)

    def recvfrom(self, _size):
        self.wire.clock.advance(self.wire.rtt)
        return self.wire.queue.pop(0)

    def recv(self, size):
        return self.recvfrom(size)[0]

    def close(self):
        pass


@pytest.fixture
def wire(monkeypatch):
    clock = FakeClock()
    fake = FakeWire({"10.80.100.1"}, clock)
    monkeypatch.setattr(uplink.socket, "socket", fake.socket)
    monkeypatch.setattr(uplink.select, "select", fake.select)
    monkeypatch.setattr(uplink, "interface_addresses", lambda name: (NODE_MAC, "10.80.1.11"))
    return fake


def test_the_prober_sends_to_the_gateways_mac_and_times_replies(wire):
    prober = uplink.UplinkProber("eth0", "10.80.1.1", clock=wire.clock)
    result = prober.probe(["10.80.100.1", "10.80.100.2"], count=2, timeout=0.5, interval=0.1)
    assert result["gateway_mac"] == "02:00:0a:50:01:01"
    alive, dead = result["targets"]
    assert (alive["received"], dead["received"], result["reachable"], result["loss_percent"]) == (
        2,
        0,
        True,
        50.0,
    )
    assert 0 < alive["rtt_avg_ms"] < 20
    requests = [f for f in wire.sent if f[12:14] == b"\x08\x00"]
    assert {socket.inet_ntoa(f[26:30]) for f in requests} == {"10.80.1.11"}
    assert len(requests) == 4


def test_the_prober_reports_a_silent_gateway_and_asks_again_next_time(wire, monkeypatch):
    prober = uplink.UplinkProber("eth0", "10.80.1.1", clock=wire.clock)
    wire.alive.clear()
    result = prober.probe(["10.80.100.1"], count=1, timeout=0.2)
    assert (result["reachable"], prober.gateway_mac) == (False, None)
    monkeypatch.setattr(FakeWire, "transmit", lambda self, frame: self.sent.append(frame))
    result = prober.probe(["10.80.100.1"], count=1, timeout=0.2)
    assert result["error"] == "gateway 10.80.1.1 does not answer ARP on eth0"
    assert result["loss_percent"] == 100.0


# -- the failover state machine ---------------------------------------------------------------------


def machine(**kwargs):
    clock = FakeClock()
    settings = dict(fail_rounds=3, good_rounds=4, hold_time=5.0, clock=clock)
    settings.update(kwargs)
    return uplink.UplinkFailover(["r1", "r2"], **settings), clock


def run(fsm, clock, rounds, step=0.25):
    """Feed (r1_up, r2_up) rounds `step` s apart; returns the transitions with their round index."""
    seen = []
    for i, (r1, r2) in enumerate(rounds):
        clock.advance(step)
        t = fsm.observe({"r1": r1, "r2": r2}, {"r1": "0/2 answered"})
        if t:
            seen.append((i, t))
    return seen


def test_switch_only_after_n_failed_rounds_with_a_reason():
    fsm, clock = machine()
    seen = run(fsm, clock, [(False, True)] * 2)
    assert not seen and fsm.active == "r1"
    seen = run(fsm, clock, [(False, True)])
    assert [(t.previous, t.active) for _, t in seen] == [("r1", "r2")]
    assert seen[0][1].reason == "r1 failed 3 consecutive rounds (0/2 answered); r2 answers"


def test_a_failed_round_between_good_ones_resets_the_count():
    fsm, clock = machine()
    assert run(fsm, clock, [(False, True), (False, True), (True, True)] * 5) == []


def test_return_needs_m_good_rounds_and_the_hold_time():
    fsm, clock = machine()
    run(fsm, clock, [(False, True)] * 3)
    # r1 answers again at once, but r2 must stay active for 5 s: 20 rounds of 0.25 s.
    seen = run(fsm, clock, [(True, True)] * 30)
    assert len(seen) == 1
    index, back = seen[0]
    assert (back.previous, back.active, index) == ("r2", "r1", 19)
    assert back.reason.startswith("r1 answered 20 consecutive rounds and r2 was active 5.0 s")
    # With no hold time, M good rounds decide.
    fsm, clock = machine(hold_time=0)
    run(fsm, clock, [(False, True)] * 3)
    assert [i for i, _ in run(fsm, clock, [(True, True)] * 10)] == [3]


def test_a_link_flapping_every_second_for_20_s_switches_at_most_twice():
    # 1 s down, 1 s up, 10 times, 4 rounds a second; then steady. M * interval (2 s) outlasts an up phase.
    fsm, clock = machine(good_rounds=8, hold_time=5.0)
    flapping = ([(False, True)] * 4 + [(True, True)] * 4) * 10
    seen = run(fsm, clock, flapping + [(True, True)] * 40)
    assert [(t.previous, t.active) for _, t in seen] == [("r1", "r2"), ("r2", "r1")]
    assert seen[1][0] >= len(flapping), "returned while the link still flapped"
    assert fsm.switches == 2


def test_no_switch_when_no_other_uplink_answers():
    fsm, clock = machine()
    assert run(fsm, clock, [(False, False)] * 6) == []
    assert fsm.active == "r1" and fsm.stranded
    seen = run(fsm, clock, [(False, True)])
    assert [(t.previous, t.active) for _, t in seen] == [("r1", "r2")] and not fsm.stranded


def test_the_most_preferred_answering_uplink_wins():
    clock = FakeClock()
    fsm = uplink.UplinkFailover(["a", "b", "c"], fail_rounds=1, good_rounds=2, hold_time=0, clock=clock)
    assert fsm.observe({"a": False, "b": True, "c": True}).active == "b"
    assert fsm.observe({"a": False, "b": False, "c": True}).active == "c"
    assert fsm.observe({"a": False, "b": True, "c": True}) is None
    assert fsm.observe({"a": False, "b": True, "c": True}).active == "b"
    with pytest.raises(ValueError):
        uplink.UplinkFailover(["a", "a"])


# -- settings ------------------------------------------------------------------------------------------

GOOD = {
    "uplinks": [
        {
            "name": "router1",
            "interface": "eth0",
            "gateway": "10.80.1.1",
            "targets": ["10.80.100.1", "10.80.100.2"],
            "min_targets": 1,
            "public_address": "10.80.11.2",
        },
        {
            "name": "router2",
            "interface": "eth1",
            "gateway": "10.80.2.1",
            "targets": ["10.80.100.1"],
            "public_address": "10.80.12.2",
            "service_address": "10.80.2.100/24",
        },
    ],
    "interfaces": ["lo", "eth0", "eth1", "eth2"],
    "interval": 0.25,
    "timeout": 0.25,
    "fail_rounds": 3,
    "good_rounds": 8,
    "hold_time": 5,
    "dyndns2": [
        {
            "url": "http://10.80.100.1:8245/nic/update",
            "hostname": "www.uplink.test",
            "username": "u",
            "password": "p",
        }
    ],
    "rfc2136": [
        {
            "server": "10.80.100.1",
            "zone": "uplink.test",
            "record": "www.uplink.test",
            "key_name": "k",
            "key_secret": "s",
        }
    ],
}


def with_changes(change):
    import copy

    cfg = copy.deepcopy(GOOD)
    change(cfg)
    return uplink.config_problems(cfg)


def test_good_settings_have_no_problem():
    assert uplink.config_problems(GOOD) == []


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda c: c["uplinks"].pop(), "uplink_failover_uplinks: list at least two uplinks"),
        (lambda c: c["uplinks"][1].update(name="router1"), "the name is used twice"),
        (lambda c: c["uplinks"][1].update(interface="eth7"), "interface eth7 does not exist on this host"),
        (lambda c: c["uplinks"][0].update(gateway="router1"), "gateway 'router1' is not an IPv4 address"),
        (lambda c: c["uplinks"][0]["targets"].append("10.80.1.1"), "the gateway itself is a target"),
        (
            lambda c: c["uplinks"][0].update(min_targets=3),
            "min_targets 3 must be between 1 and the number of targets (2)",
        ),
        (
            lambda c: c["uplinks"][0].update(service_address="10.80.1.100/24"),
            "service_address on the preferred uplink",
        ),
        (lambda c: c["uplinks"][1].update(service_address="10.80.2.100"), "must be ADDRESS/PREFIX"),
        (lambda c: c["uplinks"][1].pop("public_address"), "public_address is needed for the DNS updates"),
        (lambda c: c.update(timeout=0.5), "uplink_failover_timeout (0.5) must be above 0 and not above"),
        (lambda c: c["dyndns2"][0].update(password=""), "uplink_failover_dyndns2[0]: password is empty"),
        (
            lambda c: c["rfc2136"][0].update(key_secret=None),
            "uplink_failover_rfc2136[0]: key_secret is empty",
        ),
        (
            lambda c: c["rfc2136"][0].update(record="www.other.test"),
            "record www.other.test is not inside zone uplink.test",
        ),
    ],
)
def test_bad_settings_are_named_with_the_fix(change, expected):
    problems = with_changes(change)
    assert any(expected in p for p in problems), problems


def test_a_gratuitous_arp_announces_the_address_to_everyone():
    frame = uplink.gratuitous_arp(NODE_MAC, "10.80.2.100")
    assert frame[:6] == b"\xff" * 6
    assert frame[28:32] == frame[38:42] == socket.inet_aton("10.80.2.100")
    assert frame[22:28] == NODE_MAC
