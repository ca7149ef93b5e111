"""Templates rendered from the role defaults and from each inventory match reviewed golden files.

A golden file that is missing fails the test; it is never written here. After a deliberate change,
run `python tests/unit/web_pair/regenerate_golden.py`, review the diff and commit it.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from . import harness

GOLDEN = Path(__file__).parent / "golden"
RENDER = Path(__file__).parent / "render.yml"
CASES = {
    "defaults": ([Path(__file__).parent / "inventories" / "defaults" / "hosts.yml"], harness.LAB_FACTS, {}),
    "example": (
        [harness.EXAMPLE_INVENTORY],
        harness.EXAMPLE_FACTS,
        {"vault_heartbeat_auth_key": harness.TEST_KEY},
    ),
    "lab": ([harness.LAB_INVENTORY], harness.LAB_FACTS, {}),
}


def render(case: str, out: Path, tmp: Path) -> None:
    inventories, facts, extra = CASES[case]
    result = harness.run_playbook(
        tmp, inventories, facts, playbook=RENDER, args=(), extra_vars={"render_dir": str(out), **extra}
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def relative_files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_templates_match_golden_files(case, tmp_path):
    out = tmp_path / "out"
    render(case, out, tmp_path / "work")
    golden = GOLDEN / case
    rendered = relative_files(out)
    missing = sorted(rendered - relative_files(golden))
    assert not missing, f"no golden file for {missing} in {golden}: regenerate_golden.py, review, commit"
    extra = sorted(relative_files(golden) - rendered)
    assert not extra, f"golden files no longer rendered: {extra}"
    different = [
        name for name in sorted(rendered) if not filecmp.cmp(out / name, golden / name, shallow=False)
    ]
    assert not different, "rendered files differ from the golden ones: " + ", ".join(
        f"{name}:\n{(out / name).read_text()}" for name in different
    )


def test_authkeys_carry_only_the_given_key(tmp_path):
    out = tmp_path / "out"
    render("lab", out, tmp_path / "work")
    text = (out / "node1" / "authkeys").read_text()
    assert f"1 sha1 {harness.TEST_KEY}\n" in text
    assert "auth 1\n" in text


def test_haresources_is_identical_on_both_nodes(tmp_path):
    out = tmp_path / "out"
    render("example", out, tmp_path / "work")
    assert (out / "node1" / "haresources").read_text() == (out / "node2" / "haresources").read_text()
    assert (
        "node1 hakit-IPaddr2::192.168.0.29/24/eth0 apache2\n" in (out / "node1" / "haresources").read_text()
    )
