#!/usr/bin/python3
"""A small dyndns2 endpoint for the uplink lab (test infrastructure, standard library only).

GET /nic/update?hostname=H&myip=A   basic auth; records the update (JSON line with wall time,
                                    hostname, myip, the peer's address) and answers like No-IP:
                                    good A | nochg A | badauth | nohost | notfqdn
GET /record/H                       the address last recorded for H (empty if none)
GET /dns/H                          H's A record as the lab's BIND serves it (dig)
GET /whoami                         the address the request came from (which router NATted it)

dyndns2_endpoint.py --bind ADDR --port P --user U --password-file F --hosts H[,H..] --log FILE
"""

import argparse
import base64
import json
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
RECORDS = {}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password-file", required=True)
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--dns-server", required=True)
    args = parser.parse_args()
    with open(args.password_file) as f:
        password = f.read().strip()
    expected = "Basic " + base64.b64encode((f"{args.user}:{password}").encode()).decode()
    hosts = set(args.hosts.split(","))

    class Handler(BaseHTTPRequestHandler):
        def answer(self, code, text):
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            peer = self.client_address[0]
            if url.path == "/whoami":
                return self.answer(200, peer)
            if url.path.startswith("/record/"):
                with LOCK:
                    return self.answer(200, RECORDS.get(url.path[len("/record/") :], ""))
            if url.path.startswith("/dns/"):
                name = url.path[len("/dns/") :]
                out = subprocess.run(
                    ["dig", "+short", "+time=1", "+tries=1", "@" + args.dns_server, name, "A"],
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout.strip()
                return self.answer(200, out)
            if url.path != "/nic/update":
                return self.answer(404, "not found")
            if self.headers.get("Authorization") != expected:
                return self.answer(401, "badauth")
            query = urllib.parse.parse_qs(url.query)
            hostname, myip = query.get("hostname", [""])[0], query.get("myip", [peer])[0]
            if "." not in hostname:
                return self.answer(200, "notfqdn")
            if hostname not in hosts:
                return self.answer(200, "nohost")
            with LOCK:
                same = RECORDS.get(hostname) == myip
                RECORDS[hostname] = myip
                with open(args.log, "a") as f:
                    f.write(
                        json.dumps({"t": time.time(), "hostname": hostname, "myip": myip, "peer": peer})
                        + "\n"
                    )
            self.answer(200, ("nochg " if same else "good ") + myip)

        def log_message(self, *_):
            pass

    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
