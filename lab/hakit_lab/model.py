"""The lab's topology, read from an Ansible inventory.

Host variables the lab reads (everything else is Ansible's business):

    lab_kind: ns | uml | vm           # namespace host, User-mode Linux kernel, or qemu VM
    ansible_host: 10.77.0.11          # the host's address on the management network
    lab_interfaces:                   # topology NICs, in order (eth0, eth1, ...)
      - {name: eth0, network: lan, address: 10.77.1.11/24, gateway: 10.77.1.1}
      - {name: eth1, network: hb, address: 10.77.2.11/24}
    lab_disks: [64]                   # uml/vm: extra disks in MiB (uml /dev/ubdb, vm /dev/vdb, ...)
    lab_memory: 512                   # uml/vm: MiB

Group/all variables:

    lab_networks: {lan: {subnet: 10.77.1.0/24}, hb: {subnet: 10.77.2.0/24}}
    lab_mgmt_subnet: 10.77.0.0/24     # management network; the controller is .1

Every host gets a management NIC `mgmt0` (address = ansible_host) on the management
bridge, which the controller (the machine's root namespace) joins as `hkl-ctl`. Topology
faults never touch it, so the controller can always reach a powered-on host.

Several labs can run on one machine side by side: each sets HAKIT_LAB_PREFIX (three characters,
default `hkl`; every namespace, bridge, veth, VM and the state directory carry it) and uses an
inventory with its own `lab_mgmt_subnet` (the only network the root namespace sees).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field

DEFAULT_PREFIX = "hkl"
PREFIX_RULE = re.compile(r"[a-z][a-z0-9]{2}")


def _prefix() -> str:
    value = os.environ.get("HAKIT_LAB_PREFIX", DEFAULT_PREFIX)
    if not PREFIX_RULE.fullmatch(value):
        # Three characters keep every derived link name within IFNAMSIZ and no prefix a prefix
        # of another, so one lab's `down` never sweeps another lab's namespaces.
        raise SystemExit(
            f"HAKIT_LAB_PREFIX={value!r} is not a lab prefix: use three characters, a lowercase letter "
            f"then lowercase letters or digits (e.g. hkd), or unset it for the default {DEFAULT_PREFIX!r}"
        )
    return value


PREFIX = _prefix()
SWITCH_NS = f"{PREFIX}-sw"
MGMT_NETWORK = "mgmt"
CONTROLLER_LINK = f"{PREFIX}-ctl"


class LabError(Exception):
    """A problem the user can fix; the message says what and how."""


def mac_for(address: str) -> str:
    """A deterministic, locally administered MAC derived from an IPv4 address.

    Recreated hosts keep their MAC, so neighbours' ARP caches stay valid.
    """
    octets = ipaddress.IPv4Address(address.split("/")[0]).packed
    return "02:00:" + ":".join(f"{b:02x}" for b in octets)


@dataclass(frozen=True)
class Network:
    name: str
    subnet: ipaddress.IPv4Network
    index: int

    @property
    def bridge(self) -> str:
        """Bridge name inside the switch namespace (IFNAMSIZ is 15)."""
        return f"{PREFIX}br{self.index}"


@dataclass(frozen=True)
class Interface:
    name: str
    network: str
    address: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address | None = None

    @property
    def mac(self) -> str:
        return mac_for(str(self.address.ip))


@dataclass(frozen=True)
class Host:
    name: str
    kind: str  # "ns", "uml" or "vm"
    index: int  # position in the inventory, stable for link names
    mgmt: ipaddress.IPv4Interface
    interfaces: tuple[Interface, ...] = ()
    disks_mib: tuple[int, ...] = ()
    memory_mib: int = 512

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    def switch_link(self, nic: int | str) -> str:
        """Name of the switch-side end (veth peer or tap) of NIC `nic` (index or 'm')."""
        return f"{PREFIX}{self.index}n{nic}"

    @property
    def all_interfaces(self) -> tuple[Interface, ...]:
        """Topology NICs plus the management NIC (last)."""
        return (*self.interfaces, Interface("mgmt0", MGMT_NETWORK, self.mgmt))


@dataclass(frozen=True)
class Lab:
    networks: dict[str, Network]
    hosts: dict[str, Host]
    mgmt: Network
    controller: ipaddress.IPv4Interface = field(init=False)

    def __post_init__(self) -> None:
        first = next(self.mgmt.subnet.hosts())
        object.__setattr__(
            self, "controller", ipaddress.IPv4Interface(f"{first}/{self.mgmt.subnet.prefixlen}")
        )

    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise LabError(
                f"no lab host named {name!r}; the inventory has: {', '.join(sorted(self.hosts))}"
            ) from None
