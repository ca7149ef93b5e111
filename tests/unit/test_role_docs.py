"""tools/role_docs.py: variable tables from argument specs, and drift between spec and defaults."""

from pathlib import Path

import role_docs
import yaml

SPEC = {
    "argument_specs": {
        "main": {
            "short_description": "Demo role",
            "options": {
                "demo_port": {"type": "int", "default": 694, "description": "UDP port."},
                "demo_key": {
                    "type": "str",
                    "required": True,
                    "no_log": True,
                    "description": "A secret | pipe.",
                },
                "demo_mode": {
                    "type": "str",
                    "default": "sha1",
                    "choices": ["sha1", "md5"],
                    "description": "Auth.",
                },
                "demo_groups": {
                    "type": "list",
                    "elements": "dict",
                    "default": [],
                    "description": "Groups.",
                    "options": {"name": {"type": "str", "required": True, "description": "Group name."}},
                },
            },
        }
    }
}


def make_role(tmp_path: Path, defaults: dict) -> Path:
    role = tmp_path / "demo"
    (role / "meta").mkdir(parents=True)
    (role / "defaults").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(yaml.safe_dump(SPEC))
    (role / "defaults" / "main.yml").write_text(yaml.safe_dump(defaults))
    return role


def test_table_lists_every_option_with_type_default_and_escaped_description(tmp_path):
    role = make_role(tmp_path, {"demo_port": 694, "demo_mode": "sha1", "demo_groups": []})
    text = role_docs.role_markdown(role)
    assert "| `demo_port` | int | `694` | UDP port. |" in text
    assert "| `demo_key` | str | **required** | A secret \\| pipe. |" in text
    assert "| `demo_mode` | str (`sha1`, `md5`) | `sha1` | Auth. |" in text
    assert "| `demo_groups[].name` | str | **required** | Group name. |" in text


def test_no_drift_when_defaults_match_spec(tmp_path):
    role = make_role(tmp_path, {"demo_port": 694, "demo_mode": "sha1", "demo_groups": []})
    assert role_docs.drift(role) == []


def test_drift_names_each_disagreement(tmp_path):
    role = make_role(tmp_path, {"demo_port": 695, "demo_extra": 1, "demo_groups": []})
    problems = role_docs.drift(role)
    assert "demo: demo_port defaults to 695 in defaults/main.yml but 694 in the spec" in problems
    assert "demo: demo_extra is in defaults/main.yml but not in meta/argument_specs.yml" in problems
    assert "demo: demo_mode has a spec default but is missing from defaults/main.yml" in problems
    assert len(problems) == 3
