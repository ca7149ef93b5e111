"""Each web pair role's argument spec documents every default, and every template is managed."""

from __future__ import annotations

from pathlib import Path

import pytest
import role_docs

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["common", "network", "heartbeat", "apache", "lvs_director", "lvs_realserver"]


def options(role):
    return role_docs.all_options(ROOT / "roles" / role)


def walk(options, path=""):
    for name, option in options.items():
        yield f"{path}{name}", option
        yield from walk(option.get("options", {}), f"{path}{name}.")


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_agree(role):
    assert role_docs.drift(ROOT / "roles" / role) == []
    for name, option in options(role).items():
        assert name.startswith(f"{role}_"), name
        assert option.get("required") or "default" in option or option.get("no_log"), f"{name} has no default"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_type_and_description(role):
    for name, option in walk(options(role)):
        assert option.get("type"), name
        assert option.get("description"), name


@pytest.mark.parametrize(
    "template",
    sorted(t for r in ROLES for t in (ROOT / "roles" / r / "templates").glob("*.j2")),
    ids=lambda p: f"{p.parent.parent.name}/{p.name}",
)
def test_templates_start_with_ansible_managed(template):
    if template.name == "resource_script.j2":
        pytest.skip("the user's script content, which must start with its own #! line")
    text = template.read_text()
    if text.startswith("#!"):  # a script: the interpreter line comes first
        text = text.split("\n", 1)[1]
    assert text.startswith("{{ ansible_managed | comment")
