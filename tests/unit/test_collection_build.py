"""The collection builds into a Galaxy tarball that installs cleanly and documents its modules."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"


def run(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)


def test_build_install_and_list_modules(tmp_path):
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"), ANSIBLE_HOME=str(tmp_path / "home"))
    run(
        str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(ROOT), env=env
    )
    (tarball,) = tmp_path.glob("hakit-cluster-*.tar.gz")

    listing = run("tar", "-tzf", str(tarball)).stdout.split()
    for excluded in ("lab/", "molecule/", "tests/", "bench/", ".ci/", "Makefile"):
        assert not any(name.startswith(excluded) for name in listing), excluded
    assert "galaxy.yml" not in listing and "MANIFEST.json" in listing

    target = tmp_path / "collections"
    run(
        str(BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--no-deps",
        "-p",
        str(target),
        str(tarball),
        env=env,
    )
    env["ANSIBLE_COLLECTIONS_PATH"] = str(target)
    listed = run(str(BIN / "ansible-doc"), "-t", "module", "-l", "hakit.cluster", env=env).stdout
    modules = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    for module in modules:
        assert f"hakit.cluster.{module}" in listed
