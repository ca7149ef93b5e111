"""Every validation rule of the web pair stops the playbook before any host changes.

Each bad inventory (bad_inventories.yml) is the lab inventory with a few group vars laid over it;
the playbook runs in check mode on fake connection=local hosts that look like the lab nodes.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from . import harness

CASES = yaml.safe_load((Path(__file__).parent / "bad_inventories.yml").read_text())
VALIDATE_PLAY = "PLAY [Validate the web pair on every node before anything changes]"
CONVERGE_PLAY = "PLAY [Converge the web pair, one node at a time once it serves]"


def _overlay(tmp: Path, case: dict) -> Path:
    path = tmp / "bad.yml"
    path.write_text(yaml.safe_dump({"all": {"children": {"web_pair": {"vars": case.get("vars", {})}}}}))
    return path


def _run(name: str, case: dict, base: Path):
    tmp = base / name
    tmp.mkdir(parents=True)
    inventories = [harness.LAB_INVENTORY, _overlay(tmp, case)]
    return harness.run_playbook(tmp, inventories, harness.LAB_FACTS, extra_vars=case.get("extra_vars"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(_run, name, case, base) for name, case in CASES.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return harness.run_playbook(tmp_path_factory.mktemp("good"), [harness.LAB_INVENTORY], harness.LAB_FACTS)


def test_there_are_enough_bad_inventories():
    assert len(CASES) >= 15


def test_the_lab_inventory_passes_validation(good):
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Expected takeover when the active node dies: 0.8 to 1.7 s" in good.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_inventory_fails_in_validation(name, results):
    output = harness.assert_stopped_in_validation(
        name, results[name], CASES[name]["expect"], (CONVERGE_PLAY,), VALIDATE_PLAY
    )
    assert re.search(r"TASK \[hakit\.cluster\.\w+ : (Check|Fail)[^\]]*\]", output)


def test_an_fqdn_hostname_passes_when_the_role_leaves_the_hostname_alone(tmp_path):
    # Refused before even with common_manage_hostname false, where the name is never set.
    case = {"vars": {"common_manage_hostname": False, "common_hostname": "web.example.com"}}
    result = _run("fqdn", case, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
