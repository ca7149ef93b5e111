"""Where a takeover's seconds go: the survivor's heartbeat log, each line stamped with the wall
time at which it was written, split into detection, heartbeat's own work and each resource
agent's start.

heartbeat 3.0.6 stamps its log lines to the second; ResourceManager starts a group's resources one
after the other and logs "Running <agent> <args> start" before each. A small watcher on the
survivor (WATCH, plain python3 reading the file it tails, no fork per poll) stamps every new line
to ~50 ms, so the time between two of those lines is the first agent's start. The lab's hosts
share the controller's clock (namespaces and uml kernels read the host's time), so the stamps
compare with the fault's wall time directly.

    with takeover.LogWatch(standby, seconds=150) as watch:
        measured, samples = lvs.fault_under_probe(("poweroff", active), ...)
        print(takeover.describe(takeover.breakdown(watch.lines(), measured)))
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass

from outage import Outage

HA_LOG = "/var/log/ha-log"
DEAD = re.compile(r"node (\S+): is dead")
RUNNING = re.compile(r"Running (\S+)(.*?)\s+start\s*$")
DONE = re.compile(r"takeover complete|Initial resource acquisition complete")

WATCH = r"""
import json, os, re, sys, time
path, seconds = sys.argv[1], float(sys.argv[2])
done = re.compile(sys.argv[3])
log = open(path, errors="replace")
log.seek(0, os.SEEK_END)
print(json.dumps({"ready": True}), flush=True)
end, rest = time.time() + seconds, ""
while time.time() < end:
    chunk = log.read()
    if not chunk:
        time.sleep(0.05)
        continue
    now = time.time()
    *lines, rest = (rest + chunk).split("\n")
    for line in lines:
        print(json.dumps({"t": now, "line": line}), flush=True)
        if done.search(line):
            sys.exit(0)
"""


@dataclass(frozen=True)
class Step:
    what: str
    seconds: float


class LogWatch:
    """Tails `logfile` on lab host `host` for at most `seconds` (or until a takeover completes),
    from the moment the context is entered."""

    def __init__(self, host: str, seconds: float, logfile: str = HA_LOG) -> None:
        self.host, self.seconds, self.logfile = host, seconds, logfile
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LogWatch:
        from webpair import LabFailure, _env

        argv = [sys.executable, "-m", "hakit_lab", "exec", self.host, "--", "python3", "-c", WATCH]
        argv += [self.logfile, str(self.seconds), DONE.pattern]
        self.proc = subprocess.Popen(
            argv,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # Its own process group: ending it ends the ssh under `hakit-lab exec` too, which
            # would otherwise hold the pipe open until the remote watcher's own deadline.
            start_new_session=True,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if '"ready"' not in line:
            self._kill()
            raise LabFailure(f"the log watcher on {self.host} did not start: {line}{self.proc.stderr.read()}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None and exc[0] is not None:
            self._kill()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def lines(self, grace: float = 10.0) -> list[tuple[float, str]]:
        """Every line the survivor logged, with the wall time it appeared. Call it once the client
        sees the survivor: the watcher has seen the takeover complete and ended by then; one that
        has not after `grace` s is ended, and what it printed is kept."""
        assert self.proc is not None, "use LogWatch as a context manager"
        try:
            out, _ = self.proc.communicate(timeout=grace)
        except subprocess.TimeoutExpired:
            self._kill()
            out, _ = self.proc.communicate()
        stamped = [json.loads(x) for x in out.splitlines() if x.startswith("{") and x.endswith("}")]
        return [(s["t"], s["line"]) for s in stamped if "t" in s]


def breakdown(lines: list[tuple[float, str]], measured: Outage) -> list[Step]:
    """The takeover's steps from the survivor's stamped log and the client's view of the fault.

    detection: the fault to "node X: is dead"; heartbeat: from there to the first agent's start;
    one step per agent, until the next one starts or heartbeat says the takeover is complete;
    client: from that to the client's first answer from the survivor. When the client was
    answered before heartbeat finished (the last agent's service answers while heartbeat still
    logs), the steps end at that answer, so they add up to the outage the client saw. Steps
    whose lines never appeared are left out.
    """
    fault_at = measured.fault_at
    if fault_at is None:
        raise ValueError("the outage carries no fault time (outage.measure sets it)")
    after = [(t, line) for t, line in lines if t >= fault_at - 1.0]
    dead = next((t for t, line in after if DEAD.search(line)), None)
    if dead is None:
        return []
    points = [("detection", fault_at), ("heartbeat", dead)]
    for t, line in after:
        match = RUNNING.search(line) if t >= dead else None
        if match:
            args = match.group(2).split()
            points.append((" ".join([os.path.basename(match.group(1)), *args[:1]]), t))
    done = next((t for t, line in after if t >= dead and DONE.search(line)), None)
    # The answer that ended the client's outage; before a takeover the expected server may have
    # answered too (a director dies while the real servers stay up).
    back = measured.back_s if measured.back_s is not None else measured.to_expected_s
    answered = None if back is None else fault_at + back
    if done is not None:
        points.append(("client", done))
    ends = [t for _, t in points[1:]] + [answered]
    steps = []
    for (what, start), end in zip(points, ends, strict=True):
        if what == "heartbeat" and len(points) == 2:
            break  # no agent started: nothing to time after the detection
        if end is None or (answered is not None and start >= answered):
            break
        steps.append(Step(what, round(max(min(end, answered or end) - start, 0.0), 2)))
    return steps


def tail(lines: list[tuple[float, str]], fault_at: float | None, count: int = 25) -> str:
    """The last lines the watcher saw, stamped relative to the fault (for a breakdown that came
    out incomplete)."""
    base = fault_at or 0.0
    return "\n".join(f"{t - base:+8.2f}  {line}" for t, line in lines[-count:])


def describe(steps: list[Step]) -> str:
    """'detection 3.05 s + heartbeat 0.40 s + drbddisk r0 1.20 s + ... = 13.70 s'."""
    if not steps:
        return "no takeover in the survivor's log"
    total = sum(s.seconds for s in steps)
    return " + ".join(f"{s.what} {s.seconds:.2f} s" for s in steps) + f" = {total:.2f} s"
