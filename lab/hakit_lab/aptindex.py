"""The lab's package index: Debian's archive cut down to what the lab can install.

Lab hosts read one flat repository from the package proxy (`deb [trusted=yes] http://PROXY
hakit-lab/`) whose Packages file holds only the packages named in index-packages.txt, the base
system's (priority required and important, image.PACKAGES) and everything those depend on,
in every version bookworm, bookworm-updates and bookworm-security publish. The .deb files are
Debian's own, through the proxy's cache.

Why: apt reads its whole index on every run. With bookworm main (63,000 packages) that costs a
uml host 4-6 s per `apt-get install` or python-apt cache open and 18 s per `apt-get update`, and a
TCG VM 44 s per update; with a few hundred packages it is a fraction of a second.

Trust: the index is built on the controller from Debian's InRelease files, checked with gpgv
against debian-archive-keyring, and from Packages files checked against the hashes those list.
apt on the hosts checks every .deb against the SHA256 the index carries. The repository is marked
trusted=yes because the lab signs nothing itself.

The index is rebuilt when Debian's InRelease files, the package list or this module's format change;
HAKIT_LAB_APT_INDEX=full gives hosts Debian's whole index instead.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import lzma
import os
import re
import subprocess
import tempfile
import urllib.request
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from . import paths
from .model import LabError
from .sysutil import locked

log = logging.getLogger("hakit_lab.aptindex")

# The flat repository's directory: under the proxy's URL and under paths.APT_CACHE.
NAME = "hakit-lab"
ARCH = "amd64"
COMPONENT = "main"
# (archive, suite): what sources_list() would otherwise give the hosts.
SUITES = (("debian", "bookworm"), ("debian", "bookworm-updates"), ("debian-security", "bookworm-security"))
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
PACKAGES_FILE = Path(__file__).with_name("index-packages.txt")
# Bump when what build() writes changes.
FORMAT_VERSION = 1
TIMEOUT = 60.0


def enabled() -> bool:
    return os.environ.get("HAKIT_LAB_APT_INDEX", "lab") != "full"


def index_dir() -> Path:
    return paths.APT_CACHE / NAME


def wanted_packages(path: Path = PACKAGES_FILE) -> list[str]:
    """The package names of index-packages.txt (one per line, # comments)."""
    names = []
    for line in path.read_text().splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.append(name)
    return sorted(set(names))


# -- reading Debian's index --------------------------------------------------------------------


def stanzas(text: str) -> list[str]:
    """The paragraphs of a Packages file, each as its text (no trailing blank line)."""
    return [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]


def fields(stanza: str) -> dict[str, str]:
    """A paragraph's fields; continuation lines joined to their field."""
    result: dict[str, str] = {}
    key = None
    for line in stanza.splitlines():
        if line[:1] in (" ", "\t") and key:
            result[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            result[key] = value.strip()
    return result


def relation_names(value: str) -> list[list[str]]:
    """'a (>= 1) | b:any, c' -> [['a', 'b'], ['c']]: package names without versions or arch."""
    groups = []
    for group in value.split(","):
        names = [re.split(r"[\s(:\[]", alt.strip(), maxsplit=1)[0] for alt in group.split("|")]
        names = [n for n in names if n]
        if names:
            groups.append(names)
    return groups


def closure(paragraphs: Iterable[dict[str, str]], roots: Iterable[str]) -> tuple[set[str], list[str]]:
    """The package names `roots` need (Depends and Pre-Depends of every version, first satisfiable
    alternative, a virtual package by its first provider), and the roots no paragraph has."""
    versions: dict[str, list[dict[str, str]]] = {}
    providers: dict[str, list[str]] = {}
    for p in paragraphs:
        versions.setdefault(p["Package"], []).append(p)
        for group in relation_names(p.get("Provides", "")):
            providers.setdefault(group[0], []).append(p["Package"])

    chosen: set[str] = set()

    def resolve(name: str) -> str | None:
        if name in versions:
            return name
        candidates = providers.get(name, [])
        return next((c for c in candidates if c in chosen), candidates[0] if candidates else None)

    missing = [r for r in roots if resolve(r) is None]
    # Breadth first, so a root chosen already satisfies a later package's alternatives.
    queue = deque(n for n in (resolve(r) for r in roots) if n)
    while queue:
        name = queue.popleft()
        if name in chosen:
            continue
        chosen.add(name)
        for p in versions[name]:
            for field in ("Pre-Depends", "Depends"):
                for group in relation_names(p.get(field, "")):
                    found = [resolve(n) for n in group]
                    if any(f in chosen for f in found if f):
                        continue
                    first = next((f for f in found if f), None)
                    if first:
                        queue.append(first)
    return chosen, missing


def base_roots(paragraphs: Iterable[dict[str, str]]) -> set[str]:
    """What every Debian system has: priority required and important."""
    return {p["Package"] for p in paragraphs if p.get("Priority") in ("required", "important")}


# -- fetching and checking -------------------------------------------------------------------


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return resp.read()
    except OSError as e:
        raise LabError(f"the lab's package index: cannot fetch {url}: {e}") from e


def verified_release(signed: bytes, url: str, keyring: Path = KEYRING) -> str:
    """The text of an InRelease file once gpgv accepts its signature with Debian's archive keys."""
    if not keyring.is_file():
        raise LabError(f"the lab's package index needs {keyring} (apt-get install debian-archive-keyring)")
    with tempfile.TemporaryDirectory() as tmp:
        signed_file = Path(tmp) / "InRelease"
        signed_file.write_bytes(signed)
        out = Path(tmp) / "Release"
        result = subprocess.run(
            ["gpgv", "--quiet", "--keyring", str(keyring), "--output", str(out), str(signed_file)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LabError(
                f"the lab's package index: {url} has no valid Debian signature: {result.stderr.strip()}"
            )
        return out.read_text()


def listed_sha256(release: str, name: str) -> tuple[str, int]:
    """(sha256, size) of `name` in a Release file's SHA256 list."""
    section = release.partition("\nSHA256:\n")[2]
    for line in section.splitlines():
        if not line.startswith(" "):
            break
        digest, size, file = line.split()
        if file == name:
            return digest, int(size)
    raise LabError(f"the lab's package index: the Release file lists no {name}")


def fetch_packages(upstream: str, archive: str, suite: str, inrelease: bytes) -> str:
    """A suite's main Packages text for ARCH, checked against its signed Release."""
    base = f"{upstream}/{archive}/dists/{suite}"
    release = verified_release(inrelease, f"{base}/InRelease")
    name = f"{COMPONENT}/binary-{ARCH}/Packages.xz"
    digest, size = listed_sha256(release, name)
    data = _get(f"{base}/{name}")
    if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
        raise LabError(f"the lab's package index: {base}/{name} does not match its Release file's SHA256")
    return lzma.decompress(data).decode()


# -- building --------------------------------------------------------------------------------


def render(selected: list[tuple[str, str]]) -> str:
    """The flat repository's Packages text: (archive, stanza) pairs, Filename made relative to the
    proxy's root so it names the archive."""
    out = []
    for archive, stanza in selected:
        out.append(re.sub(r"^Filename: ", f"Filename: {archive}/", stanza, count=1, flags=re.M))
    return "\n\n".join(out) + "\n"


def release_text(packages: bytes, date: str) -> str:
    return (
        f"Origin: {NAME}\nLabel: {NAME}\nSuite: {NAME}\nCodename: {NAME}\nDate: {date}\n"
        f"Architectures: {ARCH} all\n"
        f"Description: Debian bookworm, only what the lab installs\nSHA256:\n"
        f" {hashlib.sha256(packages).hexdigest()} {len(packages)} Packages\n"
    )


def build(upstream: str, wanted: list[str], inreleases: dict[tuple[str, str], bytes], target: Path) -> dict:
    """Write Packages and Release of the cut-down index into `target`; returns figures."""
    pairs: list[tuple[str, str, dict[str, str]]] = []
    for archive, suite in SUITES:
        text = fetch_packages(upstream, archive, suite, inreleases[(archive, suite)])
        pairs += [(archive, s, fields(s)) for s in stanzas(text)]
    paragraphs = [f for _, _, f in pairs]
    roots = sorted(set(wanted) | base_roots(paragraphs))
    chosen, missing = closure(paragraphs, roots)
    if missing:
        raise LabError(
            f"the lab's package index: {PACKAGES_FILE.name} names packages bookworm does not have: "
            + ", ".join(missing)
        )
    selected = [(a, s) for a, s, f in pairs if f["Package"] in chosen]
    packages = render(selected).encode()
    target.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("Packages", packages),
        ("Release", release_text(packages, email.utils.formatdate(usegmt=True)).encode()),
    ):
        tmp = target / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(target / name)
    return {"packages": len(chosen), "stanzas": len(selected), "of": len(pairs), "bytes": len(packages)}


def ensure(upstream: str) -> Path | None:
    """The cut-down index, rebuilt when Debian's index or the wanted packages changed; None when
    HAKIT_LAB_APT_INDEX=full. Without the network an index built earlier is kept. Labs side by
    side share it: one checks or builds it at a time."""
    if not enabled():
        return None
    with locked(index_dir().with_name(f".{NAME}.lock")):
        return _ensure(upstream)


def _ensure(upstream: str) -> Path:
    target = index_dir()
    stamp_file = target / "stamp.json"
    wanted = wanted_packages()
    try:
        inreleases = {(a, s): _get(f"{upstream}/{a}/dists/{s}/InRelease") for a, s in SUITES}
    except LabError as e:
        if (target / "Packages").is_file():
            log.warning("%s; keeping the index built earlier", e)
            return target
        raise
    stamp = {
        "format": FORMAT_VERSION,
        "wanted": wanted,
        "inrelease": {f"{a}/{s}": hashlib.sha256(d).hexdigest() for (a, s), d in inreleases.items()},
    }
    if (target / "Packages").is_file() and stamp_file.is_file():
        try:
            if json.loads(stamp_file.read_text()) == stamp:
                return target
        except ValueError:
            pass
    figures = build(upstream, wanted, inreleases, target)
    stamp_file.write_text(json.dumps(stamp, indent=1) + "\n")
    log.info("package index: %(packages)s packages (%(stanzas)s of %(of)s entries), %(bytes)s bytes", figures)
    return target
