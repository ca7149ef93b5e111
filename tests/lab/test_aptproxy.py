"""The lab's package proxy: caching, HEAD, 404, concurrency against a fake upstream on loopback,
then real apt through it (upstream Debian, apt in a throwaway directory tree)."""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import os
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hakit_lab import aptindex, aptproxy, paths

POOL = "/debian/pool/main/h/hello/hello_2.10-3_amd64.deb"
BIG = bytes(range(256)) * 4096 * 3  # 3 MiB, sent slowly in chunks


class FakeArchive(BaseHTTPRequestHandler):
    """A Debian archive with a handful of files; counts the requests per path."""

    protocol_version = "HTTP/1.1"
    files: dict[str, bytes] = {}
    counts: dict[tuple[str, str], int] = {}
    lock = threading.Lock()
    release_version = 0

    def log_message(self, *args: object) -> None:
        pass

    def _count(self) -> None:
        with self.lock:
            key = (self.command, self.path)
            self.counts[key] = self.counts.get(key, 0) + 1

    def do_HEAD(self) -> None:
        self.do_GET(head=True)

    def do_GET(self, head: bool = False) -> None:
        self._count()
        path = self.path
        if path == "/debian/dists/bookworm/InRelease":
            FakeArchive.release_version += 1
            body = f"release {FakeArchive.release_version}\n".encode()
            if self.headers.get("If-Modified-Since"):
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        elif path == "/debian/pool/main/t/truncated/truncated_1_all.deb":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.close_connection = True
            return
        elif path in self.files:
            body = self.files[path]
        else:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
        self.end_headers()
        if head:
            return
        if path.endswith("slow.deb"):
            for i in range(0, len(body), 256 * 1024):
                self.wfile.write(body[i : i + 256 * 1024])
                time.sleep(0.02)
        else:
            self.wfile.write(body)


@pytest.fixture
def upstream():
    FakeArchive.files = {
        POOL: b"a debian package\n" * 100,
        "/debian/pool/main/s/slow/slow.deb": BIG,
        "/debian/pool/main/e/epoch/epoch_1%3a2.0_all.deb": b"epoch\n",
        "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc": b"index\n",
        "/debian-security/pool/updates/main/o/openssl/libssl3.deb": b"security\n",
    }
    FakeArchive.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeArchive)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream, tmp_path):
    with aptproxy.serving(upstream=upstream, cache=tmp_path / "cache") as base:
        yield base, tmp_path / "cache"


def request(base: str, path: str, method: str = "GET", headers: dict | None = None):
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp, body


def temp_files(cache: Path) -> list[Path]:
    return list(cache.rglob(".*.tmp"))


def cached(path: Path, timeout: float = 5.0) -> bool:
    """Whether `path` is in the cache: the proxy renames it there just after the last byte went out."""
    deadline = time.monotonic() + timeout
    while not path.is_file():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_pool_file_is_fetched_once_and_served_from_the_cache(proxy):
    base, cache = proxy
    first, body1 = request(base, POOL)
    second, body2 = request(base, POOL)
    assert first.status == second.status == 200
    assert body1 == body2 == FakeArchive.files[POOL]
    assert int(second.getheader("Content-Length")) == len(body1)
    assert FakeArchive.counts[("GET", POOL)] == 1
    assert cached(cache / "debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
    assert (cache / "debian/pool/main/h/hello/hello_2.10-3_amd64.deb").read_bytes() == body1
    assert not temp_files(cache)


def test_by_hash_indexes_are_cached_but_release_files_pass_through(proxy):
    base, _cache = proxy
    by_hash = "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc"
    request(base, by_hash)
    request(base, by_hash)
    assert FakeArchive.counts[("GET", by_hash)] == 1
    _, r1 = request(base, "/debian/dists/bookworm/InRelease")
    _, r2 = request(base, "/debian/dists/bookworm/InRelease")
    assert r1 != r2  # not cached: each request reached upstream
    resp, body = request(
        base,
        "/debian/dists/bookworm/InRelease",
        headers={"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"},
    )
    assert resp.status == 304 and body == b""


def test_head_gives_the_length_without_a_body(proxy):
    base, cache = proxy
    resp, body = request(base, POOL, "HEAD")
    assert resp.status == 200 and body == b""
    assert int(resp.getheader("Content-Length")) == len(FakeArchive.files[POOL])
    assert not (cache / "debian/pool/main/h/hello").exists()  # HEAD does not fill the cache
    request(base, POOL)
    assert cached(cache / "debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
    resp, body = request(base, POOL, "HEAD")
    assert resp.status == 200 and body == b""
    assert int(resp.getheader("Content-Length")) == len(FakeArchive.files[POOL])


def test_missing_files_are_404_and_not_cached(proxy):
    base, cache = proxy
    missing = "/debian/pool/main/n/nope/nope_1_all.deb"
    for _ in range(2):
        resp, _ = request(base, missing)
        assert resp.status == 404
    assert FakeArchive.counts[("GET", missing)] == 2
    assert not list(cache.rglob("nope*"))


@pytest.mark.parametrize(
    "path",
    ["/ubuntu/pool/x.deb", "/debian/pool/../../../etc/passwd", "/debian/pool/%2e%2e/x", "/", "/debian/"],
)
def test_paths_outside_the_archives_are_refused(proxy, path):
    base, _cache = proxy
    resp, _ = request(base, path)
    assert resp.status == 404
    assert not FakeArchive.counts


def test_quoted_names_reach_upstream_as_sent(proxy):
    base, cache = proxy
    resp, body = request(base, "/debian/pool/main/e/epoch/epoch_1%3a2.0_all.deb")
    assert resp.status == 200 and body == b"epoch\n"
    assert cached(cache / "debian/pool/main/e/epoch/epoch_1:2.0_all.deb")


def test_security_archive(proxy):
    base, cache = proxy
    resp, body = request(base, "/debian-security/pool/updates/main/o/openssl/libssl3.deb")
    assert resp.status == 200 and body == b"security\n"
    assert cached(cache / "debian-security/pool/updates/main/o/openssl/libssl3.deb")


def test_concurrent_requests_for_one_file_download_it_once(proxy):
    base, cache = proxy
    path = "/debian/pool/main/s/slow/slow.deb"
    results: list[bytes] = []

    def get() -> None:
        results.append(request(base, path)[1])

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 8
    assert all(hashlib.sha256(r).digest() == hashlib.sha256(BIG).digest() for r in results)
    assert FakeArchive.counts[("GET", path)] == 1
    assert cached(cache / "debian/pool/main/s/slow/slow.deb")
    assert (cache / "debian/pool/main/s/slow/slow.deb").read_bytes() == BIG
    assert not temp_files(cache)


def test_a_truncated_download_is_not_cached(proxy):
    base, cache = proxy
    path = "/debian/pool/main/t/truncated/truncated_1_all.deb"
    with pytest.raises(http.client.IncompleteRead):
        request(base, path)
    assert not (cache / "debian/pool/main/t/truncated").exists() or not list(
        (cache / "debian/pool/main/t/truncated").iterdir()
    )
    with pytest.raises(http.client.IncompleteRead):
        request(base, path)
    assert FakeArchive.counts[("GET", path)] == 2  # retried upstream, not served from a bad cache


def test_an_unreachable_upstream_is_a_502_apt_can_show(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
    with aptproxy.serving(upstream=dead, cache=tmp_path) as base:
        resp, _ = request(base, POOL)
        assert resp.status == 502
        assert "unreachable" in resp.reason
        resp, _ = request(base, "/debian/dists/bookworm/InRelease")
        assert resp.status == 502


def test_sources_list_is_the_same_for_every_spelling_of_the_address(monkeypatch):
    assert aptproxy.sources_list("10.77.0.1").splitlines()[1:] == [
        "deb [trusted=yes] http://10.77.0.1:3142 hakit-lab/"
    ]
    monkeypatch.setenv("HAKIT_LAB_APT_INDEX", "full")
    text = aptproxy.sources_list("10.77.0.1")
    assert text == aptproxy.sources_list(ipaddress.IPv4Interface("10.77.0.1/24"))
    assert text == aptproxy.sources_list(ipaddress.IPv4Address("10.77.0.1"))
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert lines == [
        "deb http://10.77.0.1:3142/debian bookworm main",
        "deb http://10.77.0.1:3142/debian bookworm-updates main",
        "deb http://10.77.0.1:3142/debian-security bookworm-security main",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab_state(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "STATE", tmp_path / "state")
    monkeypatch.setattr(paths, "APT_CACHE", tmp_path / "apt")
    yield tmp_path
    aptproxy.stop()


def test_start_runs_a_detached_proxy_and_stop_ends_it(lab_state, upstream):
    port = _free_port()
    pid = aptproxy.start("127.0.0.1", port, upstream=upstream)
    assert (paths.STATE / "aptproxy.pid").read_text().strip() == str(pid)
    assert os.getsid(pid) == pid  # its own session: not tied to our terminal or process group
    assert aptproxy.start("127.0.0.1", port, upstream=upstream) == pid  # idempotent
    resp, body = request(f"http://127.0.0.1:{port}", POOL)
    assert resp.status == 200 and body == FakeArchive.files[POOL]
    assert cached(paths.APT_CACHE / "debian/pool/main/h/hello/hello_2.10-3_amd64.deb")
    assert aptproxy.stop() is True
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not (paths.STATE / "aptproxy.pid").exists()
    assert aptproxy.stop() is False


def test_start_reports_a_port_in_use(lab_state, upstream):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        with pytest.raises(aptproxy.LabError, match="exited at start"):
            aptproxy.start("127.0.0.1", s.getsockname()[1], upstream=upstream)
    assert not (paths.STATE / "aptproxy.pid").exists()


def _debian_reachable() -> bool:
    try:
        socket.getaddrinfo("deb.debian.org", 80)
        return True
    except OSError:
        return False


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get")
@pytest.mark.skipif(not _debian_reachable(), reason="needs Debian's archive")
@pytest.mark.parametrize("index", ["lab", "full"])
def test_real_apt_update_and_download_through_the_proxy(tmp_path, monkeypatch, index):
    """apt-get update + download hello, in a throwaway apt tree, through the proxy on loopback:
    from the lab's cut-down index (built here first) and from Debian's whole one."""
    monkeypatch.setenv("HAKIT_LAB_APT_INDEX", index)
    t_index = time.monotonic()
    aptindex.ensure(aptproxy.UPSTREAM)
    t_index = time.monotonic() - t_index
    root = tmp_path / "apt"
    for d in (
        "etc/sources.list.d",
        "etc/preferences.d",
        "state/lists/partial",
        "cache/archives/partial",
        "dl",
    ):
        (root / d).mkdir(parents=True)
    port = _free_port()
    with aptproxy.serving("127.0.0.1", port, upstream=aptproxy.UPSTREAM) as base:
        (root / "etc/sources.list").write_text(aptproxy.sources_list("127.0.0.1", port))
        opts = [
            f"-oDir::Etc::SourceList={root}/etc/sources.list",
            f"-oDir::Etc::SourceParts={root}/etc/sources.list.d",
            f"-oDir::Etc::PreferencesParts={root}/etc/preferences.d",
            f"-oDir::State={root}/state",
            f"-oDir::Cache={root}/cache",
            "-oDir::State::status=/dev/null",
            "-oAcquire::Languages=none",
            "-oDebug::NoLocking=1",
            "-oAPT::Sandbox::User=root",
        ]
        env = dict(os.environ, LC_ALL="C")
        t0 = time.monotonic()
        up = subprocess.run(
            ["apt-get", *opts, "update"], capture_output=True, text=True, env=env, timeout=600
        )
        assert up.returncode == 0, up.stdout + up.stderr
        assert "W:" not in up.stderr and "E:" not in up.stderr, up.stderr
        if index == "full":
            assert f"{base}/debian bookworm InRelease" in up.stdout
            assert f"{base}/debian-security bookworm-security InRelease" in up.stdout
        else:
            assert f"{base} hakit-lab/ Packages" in up.stdout
        t1 = time.monotonic()
        dl = subprocess.run(
            ["apt-get", *opts, "download", "hello"],
            capture_output=True,
            text=True,
            env=env,
            cwd=root / "dl",
            timeout=300,
        )
        assert dl.returncode == 0, dl.stdout + dl.stderr
        debs = list((root / "dl").glob("hello_*_amd64.deb"))
        assert len(debs) == 1
        assert subprocess.run(["dpkg-deb", "-I", str(debs[0])], capture_output=True).returncode == 0
        print(
            f"{index} index: built or checked in {t_index:.1f} s, apt-get update {t1 - t0:.1f} s, "
            f"download hello {time.monotonic() - t1:.1f} s"
        )
