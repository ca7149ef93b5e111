"""Every validation rule of playbooks/lvs.yml stops the playbook before any host changes.

Each bad inventory (bad_inventories.yml) is the lab inventory (inventory/lab/lvs_dr) with a few
group vars laid over it; the playbook runs in check mode on fake connection=local hosts that look
like the lab's directors and real servers (the web pair's harness, with this playbook).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from web_pair import harness

PLAYBOOK = harness.ROOT / "playbooks" / "lvs.yml"
LAB_INVENTORY = harness.ROOT / "inventory" / "lab" / "lvs_dr" / "hosts.yml"
EXAMPLES = {
    "lvs_dr": (
        harness.ROOT / "inventory" / "examples" / "lvs_dr",
        {
            "loadb1": harness.host_facts("loadb1", {"eth0": "192.168.1.103/24", "eth1": "10.0.0.1/30"}),
            "loadb2": harness.host_facts("loadb2", {"eth0": "192.168.1.104/24", "eth1": "10.0.0.2/30"}),
            "web1": harness.host_facts("web1", {"eth0": "192.168.1.101/24"}),
            "web2": harness.host_facts("web2", {"eth0": "192.168.1.102/24"}),
        },
    ),
    "lvs_nat_tun": (
        harness.ROOT / "inventory" / "examples" / "lvs_nat_tun",
        {
            "director": harness.host_facts(
                "director", {"eth0": "193.144.50.249/24", "eth1": "10.255.255.1/24"}
            ),
            "nodo1": harness.host_facts("nodo1", {"eth0": "10.255.255.250/24"}),
            "nodo2": harness.host_facts("nodo2", {"eth0": "10.255.255.253/24"}),
            "nodo3": harness.host_facts("nodo3", {"eth0": "10.255.255.254/24"}),
            "tun1": harness.host_facts("tun1", {"eth0": "193.144.50.252/24"}),
            "tun2": harness.host_facts("tun2", {"eth0": "193.144.50.251/24"}),
        },
    ),
}
LAB_FACTS = {
    "loadb1": harness.host_facts(
        "loadb1", {"eth0": "10.79.1.11/24", "eth1": "10.79.2.11/24", "mgmt0": "10.79.0.11/24"}
    ),
    "loadb2": harness.host_facts(
        "loadb2", {"eth0": "10.79.1.12/24", "eth1": "10.79.2.12/24", "mgmt0": "10.79.0.12/24"}
    ),
    "web1": harness.host_facts("web1", {"eth0": "10.79.1.21/24", "mgmt0": "10.79.0.21/24"}),
    "web2": harness.host_facts("web2", {"eth0": "10.79.1.22/24", "mgmt0": "10.79.0.22/24"}),
    "client": harness.host_facts("client", {"eth0": "10.79.1.50/24", "mgmt0": "10.79.0.50/24"}),
}
CASES = yaml.safe_load((Path(__file__).parent / "bad_inventories.yml").read_text())
CONVERGE_PLAYS = ("PLAY [Converge the real servers]", "PLAY [Converge the directors]")


def _run(tmp: Path, inventories: list[Path], facts: dict) -> object:
    return harness.run_playbook(tmp, inventories, facts, playbook=PLAYBOOK)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")

    def one(name, case):
        tmp = base / name
        tmp.mkdir(parents=True)
        overlay = tmp / "bad.yml"
        group = case.get("group", "lvs_directors")
        overlay.write_text(yaml.safe_dump({"all": {"children": {group: {"vars": case["vars"]}}}}))
        return _run(tmp, [LAB_INVENTORY, overlay], LAB_FACTS)

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(one, name, case) for name, case in CASES.items()}
        return {name: future.result() for name, future in futures.items()}


def test_there_are_enough_bad_inventories():
    assert len(CASES) >= 15


@pytest.mark.parametrize("inventory", ["lab", *sorted(EXAMPLES)])
def test_the_good_inventories_pass_validation(inventory, tmp_path):
    if inventory == "lab":
        result = _run(tmp_path, [LAB_INVENTORY], LAB_FACTS)
    else:
        path, facts = EXAMPLES[inventory]
        result = _run(tmp_path, [path], facts)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "failed=0" in result.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_inventory_fails_in_validation(name, results):
    harness.assert_stopped_in_validation(name, results[name], CASES[name]["expect"], CONVERGE_PLAYS)
