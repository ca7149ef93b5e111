"""Read the lab's topology from an Ansible inventory and check it before anything is built.

`load(path)` asks Ansible itself (`ansible-inventory --list`), so every inventory format and
group/host variable precedence Ansible knows applies. Hosts without `lab_kind` are not lab hosts
and are ignored. Every problem found is reported at once, each naming the host, the variable and
the fix (`model.LabError`).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import model

KINDS = ("ns", "vm", "uml")
MAX_NICS = 9  # eth0..eth8: switch-side link names carry one digit (model.Host.switch_link)
MAX_DISKS = 8
MIN_MEMORY_MIB = 128
HOST_VARS = ("lab_kind", "lab_interfaces", "lab_disks", "lab_memory")
GROUP_VARS = ("lab_networks", "lab_mgmt_subnet")
KERNEL_HOST_VARS = ("lab_disks", "lab_memory")  # hosts with a kernel of their own: vm and uml
INTERFACE_KEYS = ("name", "network", "address", "gateway")
# A hostname the host's UTS namespace and /etc/hosts accept: RFC 1123 labels, dots between.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
NETWORK_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
# Names the lab uses for itself: a host named like this would collide with them.
RESERVED_HOST_NAMES = {model.SWITCH_NS.removeprefix(f"{model.PREFIX}-")}


def ansible_inventory_command() -> str:
    """The ansible-inventory of this Python's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("ansible-inventory")
    if found:
        return found
    raise model.LabError(
        "ansible-inventory not found beside this Python nor on PATH: install ansible-core into this "
        "environment (pip install ansible-core) or put its bin directory on PATH"
    )


def read_hostvars(inventory_path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Every host's merged variables, in inventory order (groups walked from `all`)."""
    path = Path(inventory_path)
    if not path.exists():
        raise model.LabError(f"inventory {path} does not exist")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="False")
    proc = subprocess.run(
        [ansible_inventory_command(), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise model.LabError(f"ansible-inventory could not read {path}:\n{proc.stderr.strip()}")
    if "Unable to parse" in proc.stderr or "No inventory was parsed" in proc.stderr:
        raise model.LabError(f"ansible-inventory could not parse {path}:\n{proc.stderr.strip()}")
    data = json.loads(proc.stdout)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    ordered: dict[str, dict[str, Any]] = {}

    def walk(group: str, seen: set[str]) -> None:
        if group in seen:
            return
        seen.add(group)
        entry = data.get(group, {})
        for host in entry.get("hosts", []):
            ordered.setdefault(host, hostvars.get(host, {}))
        for child in entry.get("children", []):
            walk(child, seen)

    walk("all", set())
    for host, variables in hostvars.items():  # hosts only _meta knows about
        ordered.setdefault(host, variables)
    return ordered


def load(inventory_path: str | os.PathLike[str]) -> model.Lab:
    """The lab described by the inventory; raises model.LabError listing every problem."""
    return build(read_hostvars(inventory_path), source=str(inventory_path))


def build(hostvars: dict[str, dict[str, Any]], source: str = "the inventory") -> model.Lab:
    """The lab from merged host variables (what `ansible-inventory --list` reports)."""
    errors: list[str] = []
    lab_hosts = {name: v for name, v in hostvars.items() if "lab_kind" in v}
    if not lab_hosts:
        raise model.LabError(
            f"{source} defines no lab host: give each host the lab builds `lab_kind: ns`, `lab_kind: uml` or `lab_kind: vm`"
        )

    mgmt, networks = _group_settings(lab_hosts, errors)
    if mgmt is None or networks is None:
        raise model.LabError(_report(source, errors))

    hosts: dict[str, model.Host] = {}
    for index, (name, variables) in enumerate(lab_hosts.items(), start=1):
        host = _host(name, index, variables, mgmt, networks, errors)
        if host is not None:
            hosts[name] = host

    lab = model.Lab(networks=networks, hosts=hosts, mgmt=mgmt)
    _check_unique(lab, errors)
    if errors:
        raise model.LabError(_report(source, errors))
    return lab


def _report(source: str, errors: list[str]) -> str:
    lines = "\n".join(f"  - {e}" for e in errors)
    return f"{source} does not describe a valid lab ({len(errors)} problem(s)):\n{lines}"


# -- group settings ------------------------------------------------------------------------------


def _same_everywhere(lab_hosts: dict[str, dict[str, Any]], var: str, errors: list[str]) -> Any:
    """The value of a group variable, which every lab host must see identically."""
    values: dict[str, list[str]] = {}
    for name, variables in lab_hosts.items():
        values.setdefault(json.dumps(variables.get(var), sort_keys=True), []).append(name)
    if len(values) > 1:
        seen = "; ".join(f"{', '.join(h)} see {v}" for v, h in values.items())
        errors.append(
            f"{var} differs between lab hosts ({seen}): set it once for all lab hosts (group `all`)"
        )
        return None
    return next(iter(lab_hosts.values())).get(var)


def _group_settings(
    lab_hosts: dict[str, dict[str, Any]], errors: list[str]
) -> tuple[model.Network | None, dict[str, model.Network] | None]:
    raw_mgmt = _same_everywhere(lab_hosts, "lab_mgmt_subnet", errors)
    raw_networks = _same_everywhere(lab_hosts, "lab_networks", errors)
    if errors:
        return None, None

    mgmt = None
    if raw_mgmt is None:
        errors.append(
            "lab_mgmt_subnet is not set: set it in group `all`, e.g. `lab_mgmt_subnet: 10.77.0.0/24`"
        )
    else:
        subnet = _subnet(raw_mgmt, "lab_mgmt_subnet", errors)
        if subnet is not None:
            mgmt = model.Network(model.MGMT_NETWORK, subnet, 0)

    networks: dict[str, model.Network] = {}
    if raw_networks is None:
        raw_networks = {}
    if not isinstance(raw_networks, dict):
        errors.append(
            "lab_networks must be a mapping of network name to {subnet: ...}, "
            "e.g. `lab_networks: {lan: {subnet: 10.77.1.0/24}}`"
        )
        return mgmt, None
    for index, name in enumerate(sorted(raw_networks), start=1):
        spec = raw_networks[name]
        where = f"lab_networks.{name}"
        if name == model.MGMT_NETWORK:
            errors.append(f"{where}: the name {name!r} is the management network's; rename the network")
            continue
        if not NETWORK_NAME_RE.match(str(name)):
            errors.append(
                f"{where}: network names are lower-case letters, digits, '-' or '_', starting with a letter"
            )
            continue
        if not isinstance(spec, dict) or set(spec) != {"subnet"}:
            errors.append(
                f"{where} must be a mapping with exactly one key, subnet (e.g. {{subnet: 10.77.1.0/24}})"
            )
            continue
        subnet = _subnet(spec["subnet"], f"{where}.subnet", errors)
        if subnet is not None:
            networks[name] = model.Network(name, subnet, index)

    all_nets = ([mgmt] if mgmt else []) + list(networks.values())
    for i, a in enumerate(all_nets):
        for b in all_nets[i + 1 :]:
            if a.subnet.overlaps(b.subnet):
                errors.append(
                    f"network {a.name} ({a.subnet}) overlaps network {b.name} ({b.subnet}): give each its own subnet"
                )
    return mgmt, networks


def _subnet(raw: Any, where: str, errors: list[str]) -> ipaddress.IPv4Network | None:
    try:
        subnet = ipaddress.IPv4Network(str(raw), strict=True)
    except ValueError as e:
        errors.append(f"{where}: {raw!r} is not an IPv4 network ({e}); write it like 10.77.1.0/24")
        return None
    if subnet.prefixlen > 29:
        errors.append(f"{where}: {subnet} is too small for a lab network; use a /29 or larger (e.g. /24)")
        return None
    return subnet


# -- hosts ---------------------------------------------------------------------------------------


def _host(
    name: str,
    index: int,
    variables: dict[str, Any],
    mgmt: model.Network,
    networks: dict[str, model.Network],
    errors: list[str],
) -> model.Host | None:
    before = len(errors)

    def err(message: str) -> None:
        errors.append(f"host {name}: {message}")

    if not HOSTNAME_RE.match(name):
        err(
            "the inventory name is the host's hostname: use lower-case letters, digits and '-' (dots between labels)"
        )
    if name in RESERVED_HOST_NAMES:
        err(f"the name {name!r} is reserved by the lab (namespace {model.SWITCH_NS}); rename the host")

    kind = variables.get("lab_kind")
    if kind not in KINDS:
        err(
            f"lab_kind is {kind!r}; set it to 'ns' (namespace host), 'uml' (User-mode Linux kernel) or 'vm' (qemu VM)"
        )

    for var in sorted(variables):
        if var.startswith("lab_") and var not in HOST_VARS + GROUP_VARS:
            err(f"unknown lab variable {var}; the lab reads {', '.join(HOST_VARS + GROUP_VARS)}")
    if kind == "ns":
        for var in KERNEL_HOST_VARS:
            if var in variables:
                err(f"{var} applies to uml and vm hosts only; remove it or set lab_kind: uml")

    mgmt_address = _mgmt_address(variables.get("ansible_host"), mgmt, err)
    interfaces = _interfaces(variables.get("lab_interfaces", []), networks, err)
    disks = _disks(variables.get("lab_disks", []), err)
    memory = _memory(variables.get("lab_memory", 512), err)

    if len(errors) > before or mgmt_address is None or interfaces is None:
        return None
    return model.Host(
        name=name,
        kind=kind,
        index=index,
        mgmt=mgmt_address,
        interfaces=interfaces,
        disks_mib=disks,
        memory_mib=memory,
    )


def _host_address(ip: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> bool:
    return ip in subnet and ip not in (subnet.network_address, subnet.broadcast_address)


def _mgmt_address(raw: Any, mgmt: model.Network, err) -> ipaddress.IPv4Interface | None:
    example = next(mgmt.subnet.hosts()) + 10
    if raw is None:
        err(f"ansible_host is not set: give the host a management address in {mgmt.subnet}, e.g. {example}")
        return None
    try:
        ip = ipaddress.IPv4Address(str(raw))
    except ValueError:
        err(
            f"ansible_host {raw!r} is not an IPv4 address: lab hosts are reached on {mgmt.subnet}, e.g. {example}"
        )
        return None
    if not _host_address(ip, mgmt.subnet):
        err(f"ansible_host {ip} is outside lab_mgmt_subnet {mgmt.subnet}: use an address such as {example}")
        return None
    if ip == next(mgmt.subnet.hosts()):
        err(f"ansible_host {ip} is the controller's address (the first of {mgmt.subnet}); pick another")
        return None
    return ipaddress.IPv4Interface(f"{ip}/{mgmt.subnet.prefixlen}")


def _interfaces(raw: Any, networks: dict[str, model.Network], err) -> tuple[model.Interface, ...] | None:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        err("lab_interfaces must be a list of {name, network, address[, gateway]}")
        return None
    if len(raw) > MAX_NICS:
        err(
            f"lab_interfaces has {len(raw)} NICs; a lab host has at most {MAX_NICS} (eth0..eth{MAX_NICS - 1})"
        )
        return None
    result: list[model.Interface] = []
    gateways: list[str] = []
    ok = True
    for position, spec in enumerate(raw):
        where = f"lab_interfaces[{position}]"
        if not isinstance(spec, dict):
            err(f"{where} must be a mapping {{name, network, address[, gateway]}}")
            ok = False
            continue
        unknown = sorted(set(spec) - set(INTERFACE_KEYS))
        if unknown:
            err(f"{where} has unknown key(s) {', '.join(unknown)}; the keys are {', '.join(INTERFACE_KEYS)}")
            ok = False
        missing = [k for k in ("name", "network", "address") if k not in spec]
        if missing:
            err(f"{where} lacks {', '.join(missing)}")
            ok = False
            continue
        expected = f"eth{position}"
        ifname = str(spec["name"])
        if ifname != expected:
            err(
                f"{where}.name is {ifname!r} but NICs are named by position (the kernel names a VM's NICs "
                f"that way): name it {expected!r} or reorder lab_interfaces"
            )
            ok = False
        network = networks.get(str(spec["network"]))
        if network is None:
            known = ", ".join(sorted(networks)) or "none defined"
            err(
                f"{where}.network {spec['network']!r} is not in lab_networks ({known}): add it there or fix the name"
            )
            ok = False
            continue
        address = _address(spec["address"], network, f"{where}.address", err)
        gateway = None
        if spec.get("gateway") is not None:
            gateway = _gateway(spec["gateway"], network, address, f"{where}.gateway", err)
            if gateway is None:
                ok = False
            else:
                gateways.append(ifname)
        if address is None:
            ok = False
            continue
        result.append(model.Interface(ifname, network.name, address, gateway))
    if len(gateways) > 1:
        err(
            f"more than one NIC has a gateway ({', '.join(gateways)}): a host has one default route; "
            "keep the gateway on one NIC"
        )
        ok = False
    return tuple(result) if ok else None


def _address(raw: Any, network: model.Network, where: str, err) -> ipaddress.IPv4Interface | None:
    text = str(raw)
    if "/" not in text:
        text = f"{text}/{network.subnet.prefixlen}"
    try:
        address = ipaddress.IPv4Interface(text)
    except ValueError:
        err(
            f"{where} {raw!r} is not an IPv4 address; write it like {next(network.subnet.hosts())}/{network.subnet.prefixlen}"
        )
        return None
    if not _host_address(address.ip, network.subnet):
        err(
            f"{where} {address} is outside network {network.name} ({network.subnet}) or is its network/broadcast "
            f"address: use a host address in {network.subnet}"
        )
        return None
    if address.network != network.subnet:
        err(
            f"{where} {address} has prefix /{address.network.prefixlen} but network {network.name} is {network.subnet}: write /{network.subnet.prefixlen}"
        )
        return None
    return address


def _gateway(
    raw: Any, network: model.Network, address: ipaddress.IPv4Interface | None, where: str, err
) -> ipaddress.IPv4Address | None:
    try:
        gateway = ipaddress.IPv4Address(str(raw))
    except ValueError:
        err(f"{where} {raw!r} is not an IPv4 address")
        return None
    if not _host_address(gateway, network.subnet):
        err(
            f"{where} {gateway} is not a host address of network {network.name} ({network.subnet}): a gateway must be on the NIC's network"
        )
        return None
    if address is not None and gateway == address.ip:
        err(f"{where} {gateway} is the NIC's own address; name the router's address")
        return None
    return gateway


def _disks(raw: Any, err) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in raw
    ):
        err("lab_disks must be a list of disk sizes in MiB, e.g. [64]")
        return ()
    if len(raw) > MAX_DISKS:
        err(f"lab_disks lists {len(raw)} disks; at most {MAX_DISKS}")
        return ()
    return tuple(raw)


def _memory(raw: Any, err) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < MIN_MEMORY_MIB:
        err(f"lab_memory must be a number of MiB, at least {MIN_MEMORY_MIB} (e.g. 384); got {raw!r}")
        return 512
    return raw


# -- whole-lab checks ----------------------------------------------------------------------------


def _check_unique(lab: model.Lab, errors: list[str]) -> None:
    """Addresses and MACs must be unique across the lab (the controller's included)."""
    owners: dict[str, str] = {str(lab.controller.ip): "the controller"}
    macs: dict[str, str] = {model.mac_for(str(lab.controller.ip)): "the controller"}
    for host in lab.hosts.values():
        for nic in host.all_interfaces:
            what = f"host {host.name} {nic.name}"
            ip = str(nic.address.ip)
            if ip in owners:
                errors.append(
                    f"{what}: address {ip} is already used by {owners[ip]}; every address must be unique"
                )
            elif nic.mac in macs:
                errors.append(
                    f"{what}: MAC {nic.mac} (derived from {ip}) clashes with {macs[nic.mac]}; change the address"
                )
            owners.setdefault(ip, what)
            macs.setdefault(nic.mac, what)
