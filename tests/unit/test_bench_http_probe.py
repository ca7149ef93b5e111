"""bench/http_probe.py against a page on loopback: --expect ends it, and --armed-by-signal holds
that back until SIGUSR1 (answers from before a fault took effect must not end a measurement)."""

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[2] / "bench" / "http_probe.py"


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<p>served-by node2</p>\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def probe(url, *extra):
    argv = [sys.executable, str(PROBE), url, "--interval", "0.05", "--duration", "60", "--expect", "node2"]
    return subprocess.Popen([*argv, *extra], stdout=subprocess.PIPE, text=True)


def samples(out):
    return [json.loads(line) for line in out.splitlines() if '"t"' in line]


def test_expect_ends_the_probe_after_five_answers_in_a_row(url):
    proc = probe(url)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert len(samples(out)) >= 5 and all(s["ok"] for s in samples(out))


def test_an_armed_probe_counts_only_requests_sent_after_sigusr1(url):
    proc = probe(url, "--armed-by-signal")
    assert '"ready"' in proc.stdout.readline()
    time.sleep(1.0)  # about 20 answers from node2, none of which may end it
    assert proc.poll() is None
    armed_at = time.time()
    proc.send_signal(signal.SIGUSR1)
    out, _ = proc.communicate(timeout=30)
    after = [s for s in samples(out) if s["sent"] >= armed_at]
    assert proc.returncode == 0 and len(after) >= 5, out
