"""What a running lab is made of, recorded under paths.STATE so every CLI call can find it.

    STATE/lab.json          the topology `up` built (model.Lab) and the inventory it came from
    STATE/lock              flock: one command changes the lab at a time
    STATE/power/<host>.json a running ns host: PID 1 (outer pid and its start time), netns inode
    STATE/links-down.json   topology links cut by `fault link-down` (kept across poweroff/boot)
    STATE/hosts/            tmpfs with each ns host's overlay upper/work ("disk"), boot inputs, console log
    STATE/vms/              the VMs' files (vm.py)

`down` removes all of it. Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import model, paths


def lab_file() -> Path:
    return paths.STATE / "lab.json"


def power_dir() -> Path:
    return paths.STATE / "power"


def power_file(name: str) -> Path:
    """Present while ns host `name` runs: its PID 1 (outer pid, start time) and netns inode."""
    return power_dir() / f"{name}.json"


def links_down_file() -> Path:
    return paths.STATE / "links-down.json"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """Hold the lab lock: commands that change the lab run one at a time."""
    paths.STATE.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.STATE / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- the topology ---------------------------------------------------------------------------------


def lab_to_dict(lab: model.Lab) -> dict[str, Any]:
    def network(n: model.Network) -> dict[str, Any]:
        return {"name": n.name, "subnet": str(n.subnet), "index": n.index}

    def host(h: model.Host) -> dict[str, Any]:
        return {
            "name": h.name,
            "kind": h.kind,
            "index": h.index,
            "mgmt": str(h.mgmt),
            "interfaces": [
                {
                    "name": i.name,
                    "network": i.network,
                    "address": str(i.address),
                    "gateway": str(i.gateway) if i.gateway else None,
                }
                for i in h.interfaces
            ],
            "disks_mib": list(h.disks_mib),
            "memory_mib": h.memory_mib,
        }

    return {
        "mgmt": network(lab.mgmt),
        "networks": [network(n) for n in lab.networks.values()],
        "hosts": [host(h) for h in lab.hosts.values()],
    }


def lab_from_dict(data: dict[str, Any]) -> model.Lab:
    def network(d: dict[str, Any]) -> model.Network:
        return model.Network(d["name"], ipaddress.IPv4Network(d["subnet"]), d["index"])

    def host(d: dict[str, Any]) -> model.Host:
        return model.Host(
            name=d["name"],
            kind=d["kind"],
            index=d["index"],
            mgmt=ipaddress.IPv4Interface(d["mgmt"]),
            interfaces=tuple(
                model.Interface(
                    i["name"],
                    i["network"],
                    ipaddress.IPv4Interface(i["address"]),
                    ipaddress.IPv4Address(i["gateway"]) if i.get("gateway") else None,
                )
                for i in d["interfaces"]
            ),
            disks_mib=tuple(d["disks_mib"]),
            memory_mib=d["memory_mib"],
        )

    networks = [network(n) for n in data["networks"]]
    return model.Lab(
        networks={n.name: n for n in networks},
        hosts={h["name"]: host(h) for h in data["hosts"]},
        mgmt=network(data["mgmt"]),
    )


def save_lab(lab: model.Lab, inventory: str) -> None:
    write_json(lab_file(), {"inventory": inventory, "lab": lab_to_dict(lab)})


def load_lab() -> tuple[model.Lab, str] | None:
    """The recorded lab and the inventory it came from, or None if no lab is recorded."""
    data = read_json(lab_file())
    if data is None:
        return None
    return lab_from_dict(data["lab"]), data["inventory"]


def require_lab() -> model.Lab:
    recorded = load_lab()
    if recorded is None:
        raise model.LabError(
            f"no lab is up (nothing recorded in {paths.STATE}); run `hakit-lab up -i INVENTORY`"
        )
    return recorded[0]


# -- links cut by a fault --------------------------------------------------------------------------


def links_down() -> set[tuple[str, str]]:
    return {tuple(x) for x in read_json(links_down_file(), [])}


def set_link_down(host: str, ifname: str, down: bool) -> None:
    links = links_down()
    if down:
        links.add((host, ifname))
    else:
        links.discard((host, ifname))
    write_json(links_down_file(), sorted(links))
