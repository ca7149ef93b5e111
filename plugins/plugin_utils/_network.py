# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""ifupdown's /etc/network/interfaces and interface sysctl keys as pure functions.

The network role renders its file from ``stanzas()`` and decides what to bring down and up from
``changes()``, which compares stanzas by meaning (``address A/24`` equals ``address A`` plus
``netmask 255.255.255.0``; comments and order of stanzas do not count), so a host configured by
hand the same way is left alone.
"""

from __future__ import annotations

import ipaddress
import re

METHODS = ("static", "dhcp", "manual", "loopback")
HOOKS = ("pre-up", "up", "down", "post-down")
_ALIASES = {"post-up": "up", "pre-down": "down"}
# A kernel interface name (IFNAMSIZ 16 with the NUL), optionally with an ifupdown alias label.
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}(:[A-Za-z0-9_]+)?$")
_OPTION = re.compile(r"^[a-z][a-z0-9_-]*$")


def _hooks(iface):
    for key in HOOKS:
        for command in iface.get(key.replace("-", "_")) or []:
            yield key, str(command)


def stanzas(interfaces):
    """Normalized stanzas for the role's ``network_interfaces`` list, in the given order.

    Each is ``{name, auto, hotplug, family, method, options, cidr}`` where ``options`` is a list of
    ``[key, value]`` pairs in the order they are written and ``cidr`` the address with its prefix
    length (empty without an address).
    """
    result = []
    for iface in interfaces or []:
        method = iface.get("method") or ("static" if iface.get("address") else "manual")
        options, cidr = [], ""
        if iface.get("address"):
            net = ipaddress.IPv4Interface(str(iface["address"]))
            options += [["address", str(net.ip)], ["netmask", str(net.netmask)]]
            cidr = str(net)
        for key in ("broadcast", "gateway", "mtu", "hwaddress"):
            if iface.get(key) not in (None, ""):
                options.append([key, str(iface[key])])
        for key, value in sorted((iface.get("options") or {}).items()):
            values = value if isinstance(value, list) else [value]
            options += [[str(key), str(v)] for v in values]
        options += [[k, v] for k, v in _hooks(iface)]
        result.append(
            {
                "name": str(iface["name"]),
                "auto": bool(iface.get("auto", True)),
                "hotplug": bool(iface.get("allow_hotplug", False)),
                "family": "inet",
                "method": method,
                "options": options,
                "cidr": cidr,
            }
        )
    return result


def _canonical(stanza):
    """What a stanza means: used to compare a parsed file with the wanted stanzas."""
    options = {}
    address = netmask = None
    for key, value in stanza["options"]:
        key = _ALIASES.get(key, key)
        if key == "address":
            address = value
        elif key == "netmask":
            netmask = value
        else:
            options.setdefault(key, []).append(value)
    if address:
        if "/" not in address and netmask:
            address = f"{address}/{netmask}"
        try:
            options["address"] = [str(ipaddress.IPv4Interface(address))]
        except ValueError:
            options["address"] = [address]
    return (
        stanza["auto"],
        stanza["hotplug"],
        stanza["family"],
        stanza["method"],
        tuple(sorted((k, tuple(v)) for k, v in options.items())),
    )


def parse(text):
    """Stanzas of an interfaces(5) file: ``{name: stanza}`` (``source`` lines are not followed)."""
    found, auto, hotplug = {}, set(), set()
    current = None
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        head = words[0]
        if head in ("auto", "allow-auto"):
            auto.update(words[1:])
            current = None
        elif head == "allow-hotplug":
            hotplug.update(words[1:])
            current = None
        elif head == "iface" and len(words) >= 4:
            current = {"name": words[1], "family": words[2], "method": words[3], "options": []}
            found[words[1]] = current
        elif head in ("mapping", "source", "source-directory") or head.startswith("allow-"):
            current = None
        elif current is not None:
            current["options"].append([head, " ".join(words[1:])])
    for name, stanza in found.items():
        stanza["auto"] = name in auto
        stanza["hotplug"] = name in hotplug
    return found


def changes(old_text, wanted):
    """Which interfaces a new file changes: ``{changed: [...], removed: [...]}``.

    ``changed`` lists wanted interfaces that are new or mean something else than in ``old_text``;
    ``removed`` lists interfaces that ``old_text`` configures and the wanted stanzas do not (the
    loopback excepted, which the role always writes).
    """
    old = parse(old_text)
    names = {s["name"] for s in wanted}
    changed = [
        s["name"] for s in wanted if s["name"] not in old or _canonical(old[s["name"]]) != _canonical(s)
    ]
    removed = sorted(n for n in old if n not in names and n != "lo")
    return {"changed": changed, "removed": removed}


def problems(interfaces, protected=(), allow_protected=False, var="network_interfaces"):
    """Messages for everything wrong with ``network_interfaces``, naming the item and the fix."""
    result, seen_names, seen_addresses = [], {}, {}
    for index, iface in enumerate(interfaces or []):
        where = f"{var}[{index}]"
        name = str(iface.get("name") or "")
        if not _IFNAME.match(name):
            result.append(f"{where}.name ({name!r}) is not an interface name (eth0, eth0.100, eth0:0, lo:0)")
            continue
        if name == "lo":
            result.append(f"{where}: the role always writes the loopback 'lo' itself; list aliases like lo:0")
        if name in seen_names:
            result.append(f"{where}.name {name} is already {seen_names[name]}: list each interface once")
        seen_names[name] = where
        base = name.split(":", maxsplit=1)[0]
        if (name in protected or base in protected) and not allow_protected:
            result.append(
                f"{where}.name {name} is the interface Ansible connects through (or is in "
                f"network_protected_interfaces): leave it out of {var}, or set "
                f"network_allow_connection_interface: true (its changes are then written but not applied live)"
            )
        method = iface.get("method") or ("static" if iface.get("address") else "manual")
        if method not in METHODS:
            result.append(f"{where}.method ({method!r}) must be one of {', '.join(METHODS)}")
        address = iface.get("address")
        if method == "static" and not address:
            result.append(f"{where}: method static needs an address in CIDR form (10.0.0.5/24)")
        if address and method != "static":
            result.append(f"{where}: an address goes with method static, not {method}")
        net = None
        if address:
            if "/" not in str(address):
                result.append(
                    f"{where}.address ({address}) needs a prefix length: write it as {address}/24 or /32"
                )
            else:
                try:
                    net = ipaddress.IPv4Interface(str(address))
                except ValueError:
                    result.append(f"{where}.address ({address!r}) is not an IPv4 address/prefix")
        if net is not None:
            if str(net.ip) in seen_addresses:
                result.append(
                    f"{where}.address {net.ip} is also {seen_addresses[str(net.ip)]}: use each address once"
                )
            seen_addresses[str(net.ip)] = where
            for key in ("gateway", "broadcast"):
                value = iface.get(key)
                if not value:
                    continue
                try:
                    inside = ipaddress.IPv4Address(str(value)) in net.network
                except ValueError:
                    result.append(f"{where}.{key} ({value!r}) is not an IPv4 address")
                    continue
                if not inside:
                    result.append(
                        f"{where}.{key} {value} is outside {net.network}: fix {key} or the address prefix"
                    )
        for key in iface.get("options") or {}:
            if not _OPTION.match(str(key)) or str(key) in ("address", "netmask", "iface", "auto"):
                result.append(f"{where}.options.{key}: not an option name this role lets you set there")
        for key, command in _hooks(iface):
            if "\n" in command:
                result.append(f"{where}.{key.replace('-', '_')}: a hook command must be one line")
    return result


def sysctl_key(path):
    """A sysctl key in the slash form when a part contains a dot (interface names like eth0.100).

    ``("net", "ipv4", "conf", "eth0.100", "arp_ignore")`` or the dotted string of an interface-free
    key; sysctl(8) and sysctl.d(5) read ``net/ipv4/conf/eth0.100/arp_ignore`` literally.
    """
    parts = [str(p) for p in (path.split(".") if isinstance(path, str) else path)]
    if any("." in p for p in parts):
        return "/".join(parts)
    return ".".join(parts)


ARP_IGNORE = range(0, 9)
ARP_ANNOUNCE = range(0, 3)


def sysctl_settings(ip_forward=None, arp_ignore=None, arp_announce=None, extra=None):
    """Ordered ``[[key, value], ...]`` for the role's sysctl variables (slash form where needed)."""
    settings = []
    if ip_forward is not None:
        settings.append(["net.ipv4.ip_forward", "1" if ip_forward else "0"])
    for name, table in (("arp_ignore", arp_ignore), ("arp_announce", arp_announce)):
        for iface in sorted(table or {}, key=lambda i: (i != "all", i != "default", i)):
            settings.append(
                [
                    sysctl_key(("net", "ipv4", "conf", iface.split(":", maxsplit=1)[0], name)),
                    str(table[iface]),
                ]
            )
    for key, value in sorted((extra or {}).items()):
        settings.append([user_sysctl_key(str(key)), str(value)])
    return settings


# Per-interface sysctl trees: net.<family>.<tree>.<interface>.<setting>.
_PER_INTERFACE = re.compile(r"^net\.(ipv4|ipv6)\.(conf|neigh)\.(?P<iface>.+)\.(?P<setting>[a-z0-9_]+)$")


def user_sysctl_key(key):
    """A key from network_sysctl as sysctl reads it. In the dotted form a per-interface key with a
    VLAN interface (``net.ipv4.conf.eth0.100.arp_ignore``) would be read as interface ``eth0/100``;
    it becomes ``net/ipv4/conf/eth0.100/arp_ignore``. Slash-form keys are kept as given."""
    match = None if "/" in key else _PER_INTERFACE.match(key)
    if not match:
        return key
    family, tree = match.group(1), match.group(2)
    return sysctl_key(("net", family, tree, match.group("iface"), match.group("setting")))


def sysctl_problems(arp_ignore=None, arp_announce=None, extra=None):
    """Messages for invalid ARP sysctl values or interface names."""
    result = []
    for var, table, allowed in (
        ("network_arp_ignore", arp_ignore, ARP_IGNORE),
        ("network_arp_announce", arp_announce, ARP_ANNOUNCE),
    ):
        for iface, value in (table or {}).items():
            if not _IFNAME.match(str(iface)) or ":" in str(iface):
                result.append(f"{var}.{iface}: not an interface name (use all, default, eth0, eth0.100)")
            if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
                result.append(
                    f"{var}.{iface} is {value!r}: the kernel accepts {allowed.start}-{allowed.stop - 1}"
                )
    for key in extra or {}:
        if not re.match(r"^[a-z0-9_]+([./][A-Za-z0-9_.@-]+)+$", str(key)):
            result.append(
                f"network_sysctl.{key}: not a sysctl key (net.ipv4.ip_forward or net/ipv4/conf/eth0.100/rp_filter)"
            )
    return result
