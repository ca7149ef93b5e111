"""The lab's cut-down package index (lab/hakit_lab/aptindex.py): dependency closure, the flat
repository it writes, the signature check, and that it offers every package the roles install."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hakit_lab import aptindex, image
from hakit_lab.model import LabError

ROOT = Path(__file__).resolve().parents[2]

PACKAGES = """\
Package: app
Version: 1.0-1
Depends: libc6 (>= 2.34), mail-transport-agent | exim4:any, perl:any
Pre-Depends: init-system-helpers (>= 1.54~)
Filename: pool/main/a/app/app_1.0-1_amd64.deb

Package: libc6
Version: 2.36-9
Depends: libgcc-s1
Priority: optional
Filename: pool/main/g/glibc/libc6_2.36-9_amd64.deb

Package: libc6
Version: 2.36-9+deb12u1
Depends: libgcc-s1, libnew
Filename: pool/updates/main/g/glibc/libc6_2.36-9+deb12u1_amd64.deb

Package: libgcc-s1
Version: 12.2.0-14
Filename: pool/main/g/gcc-12/libgcc-s1_12.2.0-14_amd64.deb

Package: libnew
Version: 1
Filename: pool/main/libn/libnew_1_amd64.deb

Package: postfix
Version: 3.7
Provides: mail-transport-agent
Filename: pool/main/p/postfix/postfix_3.7_amd64.deb

Package: exim4
Version: 4.96
Filename: pool/main/e/exim4/exim4_4.96_all.deb

Package: perl-base
Version: 5.36
Provides: perl (= 5.36)
Priority: required
Description: a two-line
 description
Filename: pool/main/p/perl/perl-base_5.36_amd64.deb

Package: init-system-helpers
Version: 1.65
Filename: pool/main/i/init-system-helpers/init-system-helpers_1.65_all.deb

Package: unrelated
Version: 1
Filename: pool/main/u/unrelated/unrelated_1_all.deb
"""


def paragraphs() -> list[dict[str, str]]:
    return [aptindex.fields(s) for s in aptindex.stanzas(PACKAGES)]


def test_relations_drop_versions_and_architecture_qualifiers():
    assert aptindex.relation_names("a (>= 1) | b:any, c, d [amd64]") == [["a", "b"], ["c"], ["d"]]
    assert aptindex.relation_names("") == []


def test_fields_join_continuation_lines():
    perl = next(p for p in paragraphs() if p["Package"] == "perl-base")
    assert perl["Description"] == "a two-line\ndescription"
    assert perl["Provides"] == "perl (= 5.36)"


def test_closure_follows_every_version_alternatives_and_providers():
    chosen, missing = aptindex.closure(paragraphs(), ["app", "nosuch"])
    # libnew only through libc6's newer version; the MTA by its provider (the first alternative);
    # perl by the package that provides it.
    assert chosen == {"app", "libc6", "libgcc-s1", "libnew", "postfix", "perl-base", "init-system-helpers"}
    assert missing == ["nosuch"]


def test_an_alternative_already_chosen_satisfies_the_group():
    chosen, _ = aptindex.closure(paragraphs(), ["exim4", "app"])
    assert "exim4" in chosen and "postfix" not in chosen


def test_base_roots_are_required_and_important():
    assert aptindex.base_roots(paragraphs()) == {"perl-base"}


def test_rendered_index_names_the_archive_in_every_filename():
    text = aptindex.render([("debian-security", aptindex.stanzas(PACKAGES)[2])])
    assert "Filename: debian-security/pool/updates/main/g/glibc/libc6_2.36-9+deb12u1_amd64.deb\n" in text


def test_release_lists_the_packages_hash():
    release = aptindex.release_text(b"x", "Sat, 05 Dec 2026 15:00:00 GMT")
    assert aptindex.listed_sha256(release, "Packages") == (
        "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
        1,
    )
    with pytest.raises(LabError, match="lists no Sources"):
        aptindex.listed_sha256(release, "Sources")


def test_an_unsigned_release_is_refused():
    if not aptindex.KEYRING.is_file():
        pytest.skip("debian-archive-keyring is not installed")
    with pytest.raises(LabError, match="http://x/InRelease has no valid Debian signature"):
        aptindex.verified_release(b"Origin: Debian\n", "http://x/InRelease")


def role_packages() -> set[str]:
    """Package names of the roles' __*_packages variables: literal lists, lists per choice (a dict)
    or Jinja with quoted names."""
    names: set[str] = set()
    for vars_file in ROOT.glob("roles/*/vars/main.yml"):
        for key, value in (yaml.safe_load(vars_file.read_text()) or {}).items():
            if not key.endswith("_packages"):
                continue
            if isinstance(value, dict):
                names.update(name for names_ in value.values() for name in names_)
            elif isinstance(value, list):
                names.update(value)
            else:
                names.update(re.findall(r"'([a-z0-9][a-z0-9.+-]+)'", value))
    return names


def test_the_index_offers_every_package_the_roles_and_the_lab_install():
    wanted = set(aptindex.wanted_packages())
    assert {"heartbeat", "drbd-utils", "ldirectord", "bind9-dnsutils", "iptables"} <= role_packages()
    assert role_packages() - wanted == set()
    assert set(image.PACKAGES) - wanted == set()
    for playbook in [*ROOT.glob("molecule/*/*.yml"), ROOT / "tests/integration/targets/ipvs/tasks/main.yml"]:
        for found in re.findall(r"ansible\.builtin\.apt:\n\s+name: (.+)", playbook.read_text()):
            names = yaml.safe_load(found)
            assert set(names if isinstance(names, list) else [names]) - wanted == set(), (playbook, found)
