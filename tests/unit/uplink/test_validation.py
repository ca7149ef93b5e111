"""Every validation rule of the dual-uplink pair stops playbooks/uplink.yml before any host changes.

Each bad inventory (bad_inventories.yml) is the uplink lab inventory with a few group vars laid
over it; the playbook runs its validation play in check mode on fake connection=local hosts that
look like the lab nodes (tests/unit/web_pair/harness.py).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from web_pair import harness

CASES = yaml.safe_load((Path(__file__).parent / "bad_inventories.yml").read_text())
PLAYBOOK = harness.ROOT / "playbooks" / "uplink.yml"
LAB_INVENTORY = harness.ROOT / "inventory" / "lab" / "uplink" / "hosts.yml"
EXAMPLE_INVENTORY = harness.ROOT / "inventory" / "examples" / "dual_uplink"
VALIDATE_PLAY = "PLAY [Validate the dual-uplink pair on every node before anything changes]"
CONVERGE_PLAY = "PLAY [Converge the dual-uplink pair, one node at a time once it serves]"
# The lab's generated secrets, given here so that no test writes the lab's secret files.
LAB_SECRETS = {
    "internet_tsig_secret": "dGVzdC1vbmx5LXRzaWctc2VjcmV0LTAxMjM0NTY3ODk=",
    "internet_dyndns2_password": "test-only",
}
EXAMPLE_SECRETS = {
    "vault_heartbeat_auth_key": harness.TEST_KEY,
    "vault_noip_password": "x",
    "vault_tsig_secret": "eA==",
}


def nodes(addresses):
    return {
        name: harness.host_facts(name, dict(zip(("eth0", "eth1", "eth2", "mgmt0"), cidrs, strict=True)))
        for name, cidrs in addresses.items()
    }


LAB_FACTS = nodes(
    {
        "node1": ("10.80.1.11/24", "10.80.2.11/24", "10.80.3.11/24", "10.80.0.11/24"),
        "node2": ("10.80.1.12/24", "10.80.2.12/24", "10.80.3.12/24", "10.80.0.12/24"),
    }
)
EXAMPLE_FACTS = nodes(
    {
        "corman": ("192.168.2.5/24", "192.168.3.5/24", "172.168.0.1/24", "10.0.0.5/24"),
        "rabius": ("192.168.2.20/24", "192.168.3.20/24", "172.168.0.2/24", "10.0.0.20/24"),
    }
)


def _run(name: str, case: dict, base: Path):
    tmp = base / name
    tmp.mkdir(parents=True)
    overlay = tmp / "bad.yml"
    overlay.write_text(yaml.safe_dump({"all": {"children": {"uplink_pair": {"vars": case.get("vars", {})}}}}))
    extra = {**LAB_SECRETS, **case.get("extra_vars", {})}
    return harness.run_playbook(tmp, [LAB_INVENTORY, overlay], LAB_FACTS, playbook=PLAYBOOK, extra_vars=extra)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, name, case, base) for name, case in CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize(
    "inventory, facts, secrets",
    [(LAB_INVENTORY, LAB_FACTS, LAB_SECRETS), (EXAMPLE_INVENTORY, EXAMPLE_FACTS, EXAMPLE_SECRETS)],
    ids=["lab", "example"],
)
def test_the_inventories_pass_validation(tmp_path, inventory, facts, secrets):
    result = harness.run_playbook(tmp_path, [inventory], facts, playbook=PLAYBOOK, extra_vars=secrets)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr
    assert re.search(r"ok=\d+ +changed=0 +unreachable=0 +failed=0", result.stdout)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_inventory_fails_in_validation(name, results):
    harness.assert_stopped_in_validation(
        name, results[name], CASES[name]["expect"], (CONVERGE_PLAY,), VALIDATE_PLAY
    )
