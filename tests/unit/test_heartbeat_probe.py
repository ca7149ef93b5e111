"""The heartbeat role's first probe (roles/heartbeat/tasks/configure.yml: whether heartbeat runs,
holds resources and sees its peer), rendered and run against a fake cl_status. Its output is read
as JSON, so every state cl_status can print, with whatever exit status, must give valid JSON."""

import json
import shlex
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

TASKS = Path(__file__).resolve().parents[2] / "roles" / "heartbeat" / "tasks" / "configure.yml"

# heartbeat 3.0.6's cl_status: `nodestatus NODE` prints the state and exits 1 for a dead node;
# `rscstatus` prints all/local/foreign/none/transition.
FAKE = """#!/bin/sh
case "$1" in
hbstatus) [ "$HB" = running ] ;;
rscstatus) [ -n "$RSC" ] && echo "$RSC" ;;
nodestatus) [ -n "$PEER" ] && echo "$PEER"; [ "$PEER" = active ] ;;
esac
"""


def probe(tmp_path: Path, **env: str) -> dict:
    task = next(
        t for t in yaml.safe_load(TASKS.read_text()) if t["name"].startswith("Find out whether heartbeat")
    )
    fake = tmp_path / "cl_status"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    template = jinja2.Environment(undefined=jinja2.StrictUndefined)
    template.filters["quote"] = shlex.quote
    script = template.from_string(task["ansible.builtin.shell"]["cmd"]).render(
        __heartbeat_cl_status=str(fake), __heartbeat_peer="node2"
    )
    done = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


@pytest.mark.parametrize(
    ("rsc", "peer", "expected"),
    [
        ("all", "dead", {"running": True, "resources": "all", "peer": "dead"}),
        ("local", "active", {"running": True, "resources": "local", "peer": "active"}),
        ("transition", "", {"running": True, "resources": "transition", "peer": "unknown"}),
        ("", "up", {"running": True, "resources": "unknown", "peer": "up"}),
    ],
)
def test_every_state_is_valid_json(tmp_path, rsc, peer, expected):
    # A dead peer made the probe print "dead" and then "unknown" inside one JSON string: the
    # role could not converge the survivor of a failure (issue 17).
    assert probe(tmp_path, HB="running", RSC=rsc, PEER=peer) == expected


def test_heartbeat_down(tmp_path):
    assert probe(tmp_path, HB="stopped") == {"running": False, "resources": "none", "peer": "unknown"}
