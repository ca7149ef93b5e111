"""The lab hosts' only package source: a caching proxy of Debian's archive on the controller.

Lab hosts have no route to the Internet. The controller runs this proxy on its management
address; hosts use it with the apt lines of `sources_list()`:

    /debian/...           -> <upstream>/debian/...
    /debian-security/...  -> <upstream>/debian-security/...

Files that never change once published (`pool/...`, `.../by-hash/...`) are cached on disk under
paths.APT_CACHE, written to a temporary file and renamed, one download per file however many
hosts ask at once. Everything else (`dists/.../InRelease`) is passed through. apt checks Debian's
signatures itself, so bytes pass unchanged; upstream statuses (404, 304, ...) are relayed, and
upstream failures become 502/504 with a reason apt prints.

Run in the foreground with `python3 -m hakit_lab.aptproxy --bind ADDR --port PORT`, or detached
with start()/stop().
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from . import aptindex, paths
from .model import LabError

UPSTREAM = "http://deb.debian.org"
ARCHIVES = ("debian", "debian-security")
SUITE = "bookworm"
HEALTH_PATH = "/hakit-lab-aptproxy/health"
# The cut-down index's files (aptindex.py), served from the cache directory.
INDEX_PATHS = {f"/{aptindex.NAME}/Packages", f"/{aptindex.NAME}/Release"}
CHUNK = 256 * 1024
UPSTREAM_TIMEOUT = 60.0
MAX_REDIRECTS = 3
# Request headers relayed upstream for passed-through (non-cached) files.
RELAYED_REQUEST_HEADERS = ("If-Modified-Since", "If-None-Match", "Range", "If-Range", "User-Agent")
# Response headers relayed to the client.
RELAYED_RESPONSE_HEADERS = (
    "Content-Type",
    "Last-Modified",
    "ETag",
    "Content-Range",
    "Accept-Ranges",
    "Cache-Control",
    "Expires",
)

log = logging.getLogger("hakit_lab.aptproxy")


def sources_list(
    controller_ip: str | ipaddress.IPv4Address | ipaddress.IPv4Interface, port: int = paths.APT_PROXY_PORT
) -> str:
    """The apt sources every lab host writes (ns hosts, uml hosts and VMs alike): the lab's cut-down
    index (aptindex.py), or with HAKIT_LAB_APT_INDEX=full Debian's whole archive."""
    ip = ipaddress.ip_interface(str(controller_ip)).ip
    base = f"http://{ip}:{port}"
    if aptindex.enabled():
        return (
            "# hakit-lab: Debian's packages the lab installs, through the lab's package proxy\n"
            f"deb [trusted=yes] {base} {aptindex.NAME}/\n"
        )
    return (
        "# hakit-lab: Debian's archive through the lab's package proxy on the controller\n"
        f"deb {base}/debian {SUITE} main\n"
        f"deb {base}/debian {SUITE}-updates main\n"
        f"deb {base}/debian-security {SUITE}-security main\n"
    )


def is_immutable(rel: str) -> bool:
    """Whether an archive path names content that never changes once published."""
    return rel.startswith("pool/") or "/by-hash/" in rel


def _split(url_path: str) -> tuple[str, str, str] | None:
    """'/debian/pool/x%3a1.deb?q' -> ('debian', 'pool/x%3a1.deb', 'pool/x:1.deb'); None if not served."""
    raw = urllib.parse.urlsplit(url_path).path
    archive, _, rel_raw = raw.lstrip("/").partition("/")
    if archive not in ARCHIVES or not rel_raw:
        return None
    rel = urllib.parse.unquote(rel_raw)
    parts = rel.split("/")
    if "\0" in rel or any(p in ("", ".", "..") for p in parts) or parts[-1].startswith("."):
        return None
    return archive, rel_raw, rel


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], upstream: str, cache: Path) -> None:
        super().__init__(address, Handler)
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise LabError(f"apt proxy upstream must be an http:// URL, not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self.cache = cache
        self._locks: dict[Path, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def handle_error(self, request: object, client_address: tuple) -> None:
        # A client closing its keep-alive connection is normal, not worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            log.debug("%s: %r", client_address, exc)
            return
        super().handle_error(request, client_address)

    def lock_for(self, path: Path) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(path, threading.Lock())


class UpstreamError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _open_upstream(
    url: str, method: str, headers: dict[str, str]
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """Send one request upstream, following redirects; the caller closes the connection."""
    for _ in range(MAX_REDIRECTS + 1):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise UpstreamError(502, f"upstream redirected to unsupported URL {url}")
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=UPSTREAM_TIMEOUT)
        try:
            conn.request(method, target, headers=headers)
            resp = conn.getresponse()
        except TimeoutError as e:
            conn.close()
            raise UpstreamError(504, f"upstream {parts.hostname} timed out: {e}") from e
        except OSError as e:
            conn.close()
            raise UpstreamError(502, f"upstream {parts.hostname} unreachable: {e}") from e
        except http.client.HTTPException as e:
            conn.close()
            raise UpstreamError(502, f"upstream {parts.hostname} sent a bad answer: {e!r}") from e
        if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
            url = urllib.parse.urljoin(url, resp.getheader("Location"))
            conn.close()
            continue
        return conn, resp
    raise UpstreamError(502, f"upstream redirected more than {MAX_REDIRECTS} times")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer
    server_version = "hakit-lab-aptproxy"
    sys_version = ""

    def log_message(self, format: str, *args: object) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    # -- request dispatch ------------------------------------------------------------------

    def _handle(self, head: bool) -> None:
        if self.path == HEALTH_PATH:
            self._send_bytes(200, b"ok\n", "text/plain", head)
            return
        if self.path in INDEX_PATHS:
            index = self.server.cache / aptindex.NAME / self.path.rsplit("/", 1)[1]
            if index.is_file():
                self._send_file(index, head)
            else:
                self._send_error(404, f"the lab's package index has no {index.name}: run hakit-lab up")
            return
        split = _split(self.path)
        if split is None:
            self._send_error(404, f"not served by the lab's apt proxy: {self.path}")
            return
        archive, rel_raw, rel = split
        url = f"{self.server.upstream}/{archive}/{rel_raw}"
        try:
            if is_immutable(rel):
                self._cached(url, self.server.cache / archive / rel, head)
            else:
                self._pass_through(url, head)
        except UpstreamError as e:
            log.warning("%s %s: %s", self.command, self.path, e.reason)
            self._send_error(e.status, e.reason)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # -- responses -------------------------------------------------------------------------

    def _send_error(self, status: int, reason: str) -> None:
        # send_error() writes the reason into the status line, which apt shows the user.
        reason = reason.replace("\r", " ").replace("\n", " ")[:200]
        self.send_error(status, reason)

    def _send_bytes(self, status: int, body: bytes, ctype: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, path: Path, head: bool) -> None:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(st.st_size))
            self.send_header("Last-Modified", self.date_time_string(int(st.st_mtime)))
            self.end_headers()
            if not head and st.st_size:
                self.wfile.flush()
                self.connection.sendfile(f)

    def _relay_head(self, resp: http.client.HTTPResponse, length: str | None) -> None:
        self.send_response(resp.status, resp.reason)
        for name in RELAYED_RESPONSE_HEADERS:
            value = resp.getheader(name)
            if value is not None:
                self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", length)
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

    def _pass_through(self, url: str, head: bool) -> None:
        headers = {h: v for h in RELAYED_REQUEST_HEADERS if (v := self.headers.get(h)) is not None}
        conn, resp = _open_upstream(url, "HEAD" if head else "GET", headers)
        try:
            bodyless = head or resp.status in (204, 304) or 100 <= resp.status < 200
            length = resp.getheader("Content-Length")
            self._relay_head(resp, "0" if bodyless and length is None else length)
            if bodyless:
                return
            sent = 0
            while chunk := resp.read(CHUNK):
                self.wfile.write(chunk)
                sent += len(chunk)
            if length is not None and sent != int(length):
                log.warning("%s: upstream sent %d of %s bytes", url, sent, length)
                self.close_connection = True
        except (TimeoutError, http.client.HTTPException, OSError) as e:
            # Headers are out: the only honest signal left is a short body and a closed connection.
            log.warning("%s: upstream failed mid-body: %r", url, e)
            self.close_connection = True
        finally:
            conn.close()

    def _cached(self, url: str, path: Path, head: bool) -> None:
        if path.is_file():
            log.debug("HIT %s", path)
            self._send_file(path, head)
            return
        if head:
            self._pass_through(url, head=True)
            return
        # One download per file: later requests wait here and are served from the cache.
        with self.server.lock_for(path):
            if path.is_file():
                self._send_file(path, head)
                return
            self._download(url, path)

    def _download(self, url: str, path: Path) -> None:
        """Fetch `url` into the cache at `path` while streaming it to the client."""
        conn, resp = _open_upstream(url, "GET", {})
        tmp: Path | None = None
        try:
            length = resp.getheader("Content-Length")
            if resp.status != 200:
                self._relay_head(resp, length)
                while chunk := resp.read(CHUNK):
                    self.wfile.write(chunk)
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            self._relay_head(resp, length)
            client_ok = True
            received = 0
            with tmp.open("wb") as out:
                try:
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        if client_ok:
                            try:
                                self.wfile.write(chunk)
                            except (BrokenPipeError, ConnectionResetError):
                                # Keep downloading: the next request is served from the cache.
                                client_ok = False
                                self.close_connection = True
                except (TimeoutError, http.client.HTTPException, OSError) as e:
                    log.warning("%s: upstream failed mid-body after %d bytes: %r", url, received, e)
                    self.close_connection = True
                    return
            if length is not None and received != int(length):
                log.warning("%s: upstream sent %d of %s bytes; not cached", url, received, length)
                self.close_connection = True
                return
            os.replace(tmp, path)
            tmp = None
            log.info("MISS %s cached (%d bytes)", path, received)
        finally:
            conn.close()
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()


def make_server(bind: str, port: int, upstream: str = UPSTREAM, cache: Path | None = None) -> ProxyServer:
    """A proxy server bound to (bind, port); port 0 picks a free one (see .server_address)."""
    cache = paths.APT_CACHE if cache is None else cache
    cache.mkdir(parents=True, exist_ok=True)
    return ProxyServer((bind, port), upstream, cache)


@contextlib.contextmanager
def serving(bind: str = "127.0.0.1", port: int = 0, upstream: str = UPSTREAM, cache: Path | None = None):
    """Run a proxy in a thread of this process for the block; yields its base URL."""
    server = make_server(bind, port, upstream, cache)
    thread = threading.Thread(target=server.serve_forever, name="aptproxy", daemon=True)
    thread.start()
    try:
        host, real_port = server.server_address[:2]
        yield f"http://{host}:{real_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# -- the detached proxy process ------------------------------------------------------------


def _pid_file() -> Path:
    return paths.STATE / "aptproxy.pid"


def _log_file() -> Path:
    return paths.STATE / "aptproxy.log"


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _is_proxy(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"hakit_lab.aptproxy" in cmdline and _alive(pid)


def running_pid() -> int | None:
    """The recorded proxy's pid if that process is still the proxy, else None."""
    try:
        pid = int(_pid_file().read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _is_proxy(pid) else None


def answers(bind_address: str, port: int, timeout: float = 2.0) -> bool:
    try:
        conn = http.client.HTTPConnection(bind_address, port, timeout=timeout)
        conn.request("GET", HEALTH_PATH, headers={"Connection": "close"})
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except (OSError, http.client.HTTPException):
        return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start(
    bind_address: str,
    port: int = paths.APT_PROXY_PORT,
    upstream: str = UPSTREAM,
    timeout: float = 15.0,
) -> int:
    """Run the proxy as a detached process on (bind_address, port); returns its pid once it answers.

    Idempotent: a proxy already recorded and answering there is kept.
    """
    pid = running_pid()
    if pid is not None:
        if answers(bind_address, port):
            return pid
        stop()
    paths.STATE.mkdir(parents=True, exist_ok=True)
    paths.APT_CACHE.mkdir(parents=True, exist_ok=True)
    pkg_parent = str(Path(__file__).resolve().parent.parent)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [pkg_parent, os.environ.get("PYTHONPATH")]))
    )
    argv = [
        sys.executable,
        "-m",
        "hakit_lab.aptproxy",
        "--bind",
        bind_address,
        "--port",
        str(port),
        "--upstream",
        upstream,
        "--cache",
        str(paths.APT_CACHE),
    ]
    with _log_file().open("ab") as logf:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd="/",
            env=env,
        )
    _pid_file().write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pid_file().unlink(missing_ok=True)
            tail = _log_file().read_text(errors="replace").splitlines()[-5:]
            raise LabError(
                f"the apt proxy on {bind_address}:{port} exited at start ({proc.returncode}): "
                + " | ".join(tail)
            )
        if answers(bind_address, port, timeout=1.0):
            return proc.pid
        time.sleep(0.05)
    stop()
    raise LabError(
        f"the apt proxy on {bind_address}:{port} did not answer within {timeout:.0f} s; see {_log_file()}"
    )


def stop(timeout: float = 5.0) -> bool:
    """End the recorded proxy by its pid; True if one was running."""
    pid = running_pid()
    _pid_file().unlink(missing_ok=True)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        _reap(pid)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)
    _reap(pid)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m hakit_lab.aptproxy", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--bind", required=True, help="address to listen on (the controller's management address)"
    )
    parser.add_argument("--port", type=int, default=paths.APT_PROXY_PORT)
    parser.add_argument("--upstream", default=UPSTREAM, help="base URL holding /debian and /debian-security")
    parser.add_argument("--cache", type=Path, default=paths.APT_CACHE, help="where pool files are kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = make_server(args.bind, args.port, args.upstream, args.cache)

    def _term(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _term)
    log.info("serving %s on %s:%d, cache %s", args.upstream, args.bind, args.port, args.cache)
    try:
        server.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
