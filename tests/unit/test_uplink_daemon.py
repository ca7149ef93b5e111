"""hakit-uplinkd (roles/uplink_failover/files/hakit_uplinkd.py) without a network: the switch
actions as `ip` commands, dyndns2 against a local HTTP server, the nsupdate input, retries, and the
configuration check the role's `validate:` runs."""

import base64
import importlib.util
import json
import logging
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible_collections.hakit.cluster.plugins.module_utils import _uplink

# The role installs module_utils/_uplink.py as hakit_uplink.py next to the daemon.
sys.modules.setdefault("hakit_uplink", _uplink)
DAEMON = Path(__file__).resolve().parents[2] / "roles" / "uplink_failover" / "files" / "hakit_uplinkd.py"
spec = importlib.util.spec_from_file_location("hakit_uplinkd", DAEMON)
uplinkd = importlib.util.module_from_spec(spec)
spec.loader.exec_module(uplinkd)

SECRET = "s3cret-never-logged"
UPLINKS = [
    {
        "name": "router1",
        "interface": "eth0",
        "gateway": "10.80.1.1",
        "targets": ["10.80.100.1"],
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
]


class FakeIp:
    """Records `ip` commands; `addresses` is what `ip -4 -o addr show dev X` reports."""

    def __init__(self):
        self.calls, self.addresses = [], {"eth0": [], "eth1": []}

    def __call__(self, argv, **_):
        self.calls.append(argv)
        out = ""
        if argv[1:4] == ["-4", "-o", "addr"]:
            out = "".join(
                f"3: {argv[-1]} inet {a} brd + scope global {argv[-1]}\n" for a in self.addresses[argv[-1]]
            )
        elif argv[1:3] == ["addr", "add"]:
            self.addresses[argv[-1]].append(argv[3])
        elif argv[1:3] == ["addr", "del"]:
            self.addresses[argv[-1]].remove(argv[3])
        return subprocess.CompletedProcess(argv, 0, out, "")

    def changes(self):
        return [c for c in self.calls if c[1] in ("route", "addr")]


def test_a_switch_moves_the_default_route_and_the_backup_service_address(monkeypatch):
    announced = []
    monkeypatch.setattr(
        _uplink, "announce_address", lambda interface, address: announced.append((interface, address))
    )
    ip = FakeIp()
    network = uplinkd.Network(UPLINKS, run=ip)
    network.activate("router2")
    assert ip.changes() == [
        ["ip", "route", "replace", "default", "via", "10.80.2.1", "dev", "eth1"],
        ["ip", "addr", "add", "10.80.2.100/24", "dev", "eth1"],
    ]
    assert announced == [("eth1", "10.80.2.100")]
    ip.calls.clear()
    network.activate("router2")  # again: the address is there already
    assert ip.changes() == [["ip", "route", "replace", "default", "via", "10.80.2.1", "dev", "eth1"]]
    ip.calls.clear()
    network.activate("router1")
    assert ip.changes() == [
        ["ip", "route", "replace", "default", "via", "10.80.1.1", "dev", "eth0"],
        ["ip", "addr", "del", "10.80.2.100/24", "dev", "eth1"],
    ]


def result(reachable):
    return {"reachable": reachable, "reachable_targets": int(reachable), "targets": [{}], "error": None}


def test_the_daemon_switches_after_failed_rounds_logs_the_reason_and_announces(monkeypatch, caplog):
    clock = [0.0]
    cfg = {
        "uplinks": UPLINKS,
        "fail_rounds": 2,
        "good_rounds": 3,
        "hold_time": 1.0,
        "interval": 0.2,
        "timeout": 0.2,
    }
    daemon = uplinkd.Daemon(cfg, {}, clock=lambda: clock[0])
    ip = FakeIp()
    daemon.network = uplinkd.Network(UPLINKS, run=ip)
    monkeypatch.setattr(_uplink, "announce_address", lambda *a: None)
    announced = []
    daemon.announcer.announce = lambda *args: announced.append(args)
    caplog.set_level(logging.INFO, logger="hakit-uplinkd")
    assert daemon.step({"router1": result(False), "router2": result(True)}) is None
    switch = daemon.step({"router1": result(False), "router2": result(True)})
    assert (switch.previous, switch.active) == ("router1", "router2")
    assert (
        "switch router1 -> router2: router1 failed 2 consecutive rounds (0/1 targets answered); router2 answers"
        in caplog.text
    )
    assert ["ip", "route", "replace", "default", "via", "10.80.2.1", "dev", "eth1"] in ip.calls
    assert announced == [("router2", "router1", switch.reason)]
    # Both down: it stays, and says so once.
    for _ in range(3):
        daemon.step({"router1": result(False), "router2": result(False)})
    assert caplog.text.count("no other uplink answers") == 1
    for _ in range(3):
        clock[0] += 0.5
        back = daemon.step({"router1": result(True), "router2": result(True)})
    assert (back.previous, back.active) == ("router2", "router1")
    assert daemon.transitions[-1]["reason"].startswith("router1 answered 3 consecutive rounds")


class Dyndns2Server:
    """A dyndns2 provider on 127.0.0.1 answering like No-IP; `answer` overrides the reply."""

    def __init__(self):
        self.requests, self.answer = [], None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(
                    (self.path, self.headers.get("Authorization"), self.headers.get("User-Agent"))
                )
                body = (outer.answer or "good 10.80.12.2").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/nic/update"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def provider():
    server = Dyndns2Server()
    yield server
    server.server.shutdown()


def test_dyndns2_sends_basic_auth_and_myip(provider):
    entry = {"url": provider.url, "hostname": "www.uplink.test", "username": "hakit"}
    ok, answer = uplinkd.Dyndns2(entry, SECRET).update("10.80.12.2")
    assert (ok, answer) == (True, "good 10.80.12.2")
    path, auth, agent = provider.requests[0]
    assert path == "/nic/update?hostname=www.uplink.test&myip=10.80.12.2"
    assert base64.b64decode(auth.split()[1]).decode() == f"hakit:{SECRET}"
    assert agent.startswith("hakit-uplinkd/")
    provider.answer = "badauth"
    assert uplinkd.Dyndns2(entry, "wrong").update("10.80.12.2") == (False, "badauth")


def test_dns_updates_are_retried_until_they_succeed_and_never_log_secrets(provider, caplog):
    caplog.set_level(logging.INFO, logger="hakit-uplinkd")
    provider.answer = "911"
    entry = {"url": provider.url, "hostname": "www.uplink.test", "username": "hakit"}
    announcer = uplinkd.Announcer(
        [uplinkd.Dyndns2(entry, SECRET)], None, {"router2": "10.80.12.2"}, retry=0.05
    )
    announcer.start()
    announcer.announce("router2", "router1", "test")
    deadline = time.monotonic() + 5
    while len(provider.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    provider.answer = None
    while announcer.status["ok"] is not True and time.monotonic() < deadline:
        time.sleep(0.01)
    assert announcer.status["address"] == "10.80.12.2" and announcer.status["ok"] is True
    assert "dns dyndns2 www.uplink.test -> 10.80.12.2: failed (911" in caplog.text
    assert "dns dyndns2 www.uplink.test -> 10.80.12.2: ok (good 10.80.12.2" in caplog.text
    assert (
        SECRET not in caplog.text and base64.b64encode(f"hakit:{SECRET}".encode()).decode() not in caplog.text
    )


def test_rfc2136_feeds_nsupdate_on_stdin_with_the_key_in_a_file(monkeypatch):
    seen = {}

    def fake_run(argv, **kwargs):
        seen.update(argv=argv, input=kwargs["input"])
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(uplinkd.subprocess, "run", fake_run)
    entry = {
        "server": "10.80.100.1",
        "zone": "uplink.test",
        "record": "www.uplink.test",
        "ttl": 30,
        "key_file": "/etc/k.key",
    }
    assert uplinkd.Rfc2136(entry).update("10.80.12.2") == (True, "NOERROR")
    assert seen["argv"] == ["nsupdate", "-k", "/etc/k.key", "-t", "5"]
    assert seen["input"] == (
        "server 10.80.100.1 53\nzone uplink.test\nupdate delete www.uplink.test A\n"
        "update add www.uplink.test 30 A 10.80.12.2\nsend\n"
    )


def test_the_configuration_check_uses_the_roles_rules(tmp_path, capsys):
    cfg = {
        "uplinks": UPLINKS,
        "interval": 0.2,
        "timeout": 0.2,
        "fail_rounds": 3,
        "good_rounds": 5,
        "hold_time": 4,
    }
    good = tmp_path / "good.json"
    good.write_text(json.dumps(cfg))
    assert uplinkd.main(["--check-config", str(good)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(dict(cfg, timeout=0.5, uplinks=[dict(UPLINKS[0], gateway="router1"), UPLINKS[1]]))
    )
    assert uplinkd.main(["--check-config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "uplinks[0] (router1): gateway 'router1' is not an IPv4 address" in err
    assert "timeout (0.5) must be above 0 and not above interval (0.2)" in err
