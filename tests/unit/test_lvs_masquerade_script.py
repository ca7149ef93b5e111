"""The masquerading init script (roles/lvs_director/templates/hakit-lvs-masquerade.init.j2), both
backends, rendered and run against fake nft / iptables-legacy that record their calls and keep
the state a kernel would: loading twice adds the jump once, stop removes what start added,
status answers like an LSB script."""

import os
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

ROLE = Path(__file__).resolve().parents[2] / "roles" / "lvs_director"

# A kernel's view in files: whether the jump, the chain (iptables) or the table (nft) exist.
FAKE_IPTABLES = """#!/bin/sh
echo "iptables-legacy $*" >> "$STATE/calls"
case "$*" in
*" -C POSTROUTING "*) [ -f "$STATE/jump" ] ;;
*" -A POSTROUTING "*) touch "$STATE/jump" ;;
*" -D POSTROUTING "*) [ -f "$STATE/jump" ] && rm "$STATE/jump" ;;
*" -X "*) rm -f "$STATE/chain" ;;
esac
"""
FAKE_RESTORE = """#!/bin/sh
echo "iptables-legacy-restore $*" >> "$STATE/calls"
touch "$STATE/chain"
"""
FAKE_NFT = """#!/bin/sh
echo "nft $*" >> "$STATE/calls"
case "$1" in
-f) touch "$STATE/table" ;;
delete) [ -f "$STATE/table" ] && rm "$STATE/table" ;;
list) [ -f "$STATE/table" ] ;;
esac
"""


def render(backend: str, bin_dir: Path) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(ROLE / "templates"), undefined=jinja2.StrictUndefined
    )
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in text.splitlines())
    variables = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    context = {
        "ansible_managed": "Ansible managed",
        "lvs_director_masquerade_backend": backend,
        "__lvs_director_masq_files": variables["__lvs_director_masq_files"],
        "__lvs_director_masq_chain": variables["__lvs_director_masq_chain"],
    }
    text = env.get_template("hakit-lvs-masquerade.init.j2").render(context)
    return text.replace("/usr/sbin/", f"{bin_dir}/")


@pytest.fixture
def fake(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    for name, body in (
        ("iptables-legacy", FAKE_IPTABLES),
        ("iptables-legacy-restore", FAKE_RESTORE),
        ("nft", FAKE_NFT),
    ):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)

    def run(backend: str, action: str) -> subprocess.CompletedProcess:
        script = tmp_path / f"init-{backend}"
        script.write_text(render(backend, bin_dir))
        script.chmod(0o755)
        env = dict(os.environ, STATE=str(state))
        return subprocess.run([str(script), action], env=env, capture_output=True, text=True, check=False)

    def calls() -> list[str]:
        path = state / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return lines

    return run, calls, state


def test_iptables_legacy_start_twice_adds_one_jump_and_stop_removes_it(fake):
    run, calls, state = fake
    assert run("iptables-legacy", "status").returncode == 3
    calls()
    assert run("iptables-legacy", "start").returncode == 0
    first = calls()
    assert first[0] == "iptables-legacy-restore -w --noflush /etc/iptables-hakit-lvs.rules"
    assert "iptables-legacy -w -t nat -A POSTROUTING -j HAKIT-LVS-MASQ" in first
    assert run("iptables-legacy", "reload").returncode == 0
    assert not [c for c in calls() if " -A " in c]  # the jump is there already
    assert run("iptables-legacy", "status").returncode == 0
    calls()
    assert run("iptables-legacy", "stop").returncode == 0
    assert [c.split()[4] for c in calls()] == ["-D", "-F", "-X"]
    assert not (state / "jump").exists() and not (state / "chain").exists()
    assert run("iptables-legacy", "stop").returncode == 0  # stopping twice is fine


def test_nftables_loads_the_file_and_deletes_its_table(fake):
    run, calls, _state = fake
    assert run("nftables", "start").returncode == 0
    assert calls() == ["nft -f /etc/nftables-hakit-lvs.nft"]
    assert run("nftables", "status").returncode == 0
    calls()
    assert run("nftables", "stop").returncode == 0
    assert calls() == ["nft delete table ip hakit_lvs"]
    assert run("nftables", "status").returncode == 3
    assert run("nftables", "stop").returncode == 0


def test_an_unknown_action_is_a_usage_error(fake):
    run, _calls, _state = fake
    result = run("nftables", "bogus")
    assert result.returncode == 2 and "Usage:" in result.stderr
