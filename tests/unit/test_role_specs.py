"""Each web pair role's argument spec documents every default, and every template is managed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ["common", "network", "heartbeat", "apache", "lvs_director", "lvs_realserver"]


def spec(role):
    return yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())[
        "argument_specs"
    ]["main"]


def walk(options, path=""):
    for name, option in options.items():
        yield f"{path}{name}", option
        yield from walk(option.get("options", {}), f"{path}{name}.")


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_spec_agree(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    options = spec(role)["options"]
    assert sorted(defaults) == sorted(n for n, o in options.items() if "default" in o)
    for name, value in defaults.items():
        assert options[name]["default"] == value, name
    for name, option in options.items():
        assert name.startswith(f"{role}_"), name
        assert option.get("required") or "default" in option or option.get("no_log"), f"{name} has no default"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_type_and_description(role):
    for name, option in walk(spec(role)["options"]):
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
