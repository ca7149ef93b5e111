"""Where the lab keeps things.

CACHE survives between runs (base root filesystem, VM image, kernel, SSH key, package cache);
STATE holds what one `up` made and is removed by `down`.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE = Path(os.environ.get("HAKIT_LAB_CACHE", "/var/cache/hakit-lab"))
_PREFIX = os.environ.get("HAKIT_LAB_PREFIX", "hkl")
# Each lab prefix has its own state directory, so labs with different prefixes never share records.
STATE = Path(
    os.environ.get("HAKIT_LAB_STATE", "/run/hakit-lab" if _PREFIX == "hkl" else f"/run/hakit-lab-{_PREFIX}")
)

SSH_KEY = CACHE / "ssh" / "id_ed25519"  # root's key on every lab host
APT_CACHE = CACHE / "apt"  # the package proxy's cache of Debian's archive
APT_PROXY_PORT = 3142  # the proxy listens on the controller's management address

HOSTS_TMPFS = STATE / "hosts"  # ns hosts' overlay upper/work dirs (one tmpfs)
VMS = STATE / "vms"  # per-VM disks, pid files, sockets, console logs
UMLS = STATE / "umls"  # per-uml-host COW and data disks, boot inputs, console logs; umid/
