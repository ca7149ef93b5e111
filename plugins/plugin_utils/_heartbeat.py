# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""Heartbeat 3 (v1, haresources) rules as pure functions: timings, haresources lines, checks.

Every rule that the heartbeat role enforces lives here once; the filter plugins are thin wrappers.
The timing rules repeat heartbeat 3.0.6's own (heartbeat/config.c ``init_config``):

* a duration is ``N`` or ``N.M`` seconds, or the same followed by ``ms`` or ``us`` (clplumbing
  ``cl_get_msec``); ``1s`` is *not* a valid duration;
* ``deadtime`` must be more than twice ``keepalive`` ("Dead time [..] is too small compared to
  keeplive"), and so must ``deadping`` when ping nodes are used;
* ``initdead`` must be at least ``deadtime`` (an error) and heartbeat warns when it is under 10 s.

On top of these the role asks for ``keepalive < warntime < deadtime`` (a warntime outside that
window never warns, or always does) and ``initdead >= 2 * deadtime`` (the documented advice).
"""

from __future__ import annotations

import ipaddress
import re

# Measured in the namespace lab: after the peer is declared dead, the takeover itself (resource
# agents' status, the address with send_arp, the init script start) cost 0.8-1.2 s with Debian's
# OCF IPaddr2 agent (research/ns-lab/REPORT.md section 3), and 0.4-0.8 s with the role's lean agent
# hakit-IPaddr2 (make bench-failover, 2026-11-22: time to the other node's first answer less
# deadtime). The window covers both agents.
TAKEOVER_WORK_MS = (400, 1200)

_DURATION = re.compile(r"^\s*(?P<num>[0-9]*\.?[0-9]+)\s*(?P<unit>ms|msec|us|usec)?\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@-]*$")
_NIC = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_]+)?$")
_FSTYPE = re.compile(r"^[a-z0-9_.-]+$")

RESOURCE_TYPES = ("IPaddr2", "IPaddr", "drbddisk", "Filesystem", "service", "script", "agent")

# Resource agents that Debian bookworm's heartbeat, drbd-utils and ldirectord packages put in
# /etc/ha.d/resource.d (heartbeat.install; drbd-utils: drbddisk; ldirectord: ldirectord,
# LVSSyncDaemonSwap). Init scripts are "service" resources, the role's own scripts "script" ones.
KNOWN_AGENTS = (
    "AudibleAlarm",
    "Delay",
    "Filesystem",
    "ICP",
    "IPaddr",
    "IPaddr2",
    "IPsrcaddr",
    "IPv6addr",
    "LVM",
    "LVSSyncDaemonSwap",
    "LinuxSCSI",
    "MailTo",
    "OCF",
    "Raid1",
    "SendArp",
    "ServeRAID",
    "WAS",
    "WinPopup",
    "Xinetd",
    "apache",
    "db2",
    "drbddisk",
    "ids",
    "ldirectord",
    "portblock",
)


def parse_msec(value):
    """Milliseconds for a heartbeat duration, as heartbeat's cl_get_msec reads it; None if invalid.

    Numbers (int or float) are seconds, like a bare number in ha.cf. Booleans are invalid.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value * 1000 + 0.5) if value >= 0 else None
    match = _DURATION.match(str(value))
    if not match:
        return None
    number = float(match.group("num"))
    unit = (match.group("unit") or "").lower()
    if unit in ("ms", "msec"):
        return int(number + 0.5)
    if unit in ("us", "usec"):
        return int(number / 1000 + 0.5)
    return int(number * 1000 + 0.5)


def format_duration(value):
    """The ha.cf spelling of a duration: whole seconds bare (``2``), anything else in ``ms``."""
    ms = parse_msec(value)
    if ms is None:
        raise ValueError(f"not a heartbeat duration: {value!r} (use seconds like 2 or 1.5, or 200ms)")
    return str(ms // 1000) if ms % 1000 == 0 else f"{ms}ms"


def _secs(ms):
    return f"{ms / 1000:g} s"


def check_timings(keepalive, deadtime, warntime, initdead, deadping=None, prefix="heartbeat_"):
    """Parse and check heartbeat's timings; estimate the client-visible takeover time.

    Returns a dict: the values in ms (``keepalive_ms`` ...), ``errors`` (heartbeat would refuse to
    start, or the role's rules are broken), ``warnings`` and ``takeover_min_ms``/``takeover_max_ms``:
    the peer's death is noticed between ``deadtime - keepalive`` and ``deadtime`` after it (the last
    heartbeat arrived up to one keepalive before), then the takeover work adds TAKEOVER_WORK_MS.
    """
    names = {k: prefix + k for k in ("keepalive", "deadtime", "warntime", "initdead", "deadping")}
    raw = {"keepalive": keepalive, "deadtime": deadtime, "warntime": warntime, "initdead": initdead}
    if deadping not in (None, ""):
        raw["deadping"] = deadping
    errors, warnings, ms = [], [], {}
    for key, value in raw.items():
        parsed = parse_msec(value)
        if parsed is None or parsed <= 0:
            errors.append(
                f"{names[key]} ({value!r}) is not a heartbeat duration: write seconds (2, 0.5) "
                f"or milliseconds (500ms); heartbeat does not understand other units such as '1s'"
            )
        else:
            ms[key] = parsed
    result = {f"{k}_ms": ms.get(k) for k in ("keepalive", "deadtime", "warntime", "initdead", "deadping")}
    if errors:
        result.update(errors=errors, warnings=warnings, takeover_min_ms=None, takeover_max_ms=None)
        return result
    ka, dt, wt, idt = ms["keepalive"], ms["deadtime"], ms["warntime"], ms["initdead"]
    if dt <= 2 * ka:
        errors.append(
            f"{names['deadtime']} ({_secs(dt)}) must be more than twice {names['keepalive']} "
            f"({_secs(ka)}), or heartbeat refuses to start ('Dead time is too small compared to "
            f"keepalive'): raise {names['deadtime']} above {2 * ka}ms or lower {names['keepalive']}"
        )
    if not ka < wt < dt:
        errors.append(
            f"{names['warntime']} ({_secs(wt)}) must lie between {names['keepalive']} ({_secs(ka)}) "
            f"and {names['deadtime']} ({_secs(dt)}), so that late heartbeats are reported before the "
            f"peer is declared dead: set {names['warntime']} to about half of {names['deadtime']}"
        )
    if idt < 2 * dt:
        errors.append(
            f"{names['initdead']} ({_secs(idt)}) must be at least twice {names['deadtime']} "
            f"({_secs(dt)}) so that a booting peer is not declared dead while its network comes up "
            f"(heartbeat itself refuses initdead < deadtime): raise {names['initdead']} to {2 * dt}ms or more"
        )
    elif idt < 10000:
        warnings.append(
            f"{names['initdead']} ({_secs(idt)}) is under 10 s; heartbeat logs 'Initial dead time may be "
            f"too small' and a slow network start can make a booting node take over"
        )
    if "deadping" in ms and ms["deadping"] <= 2 * ka:
        errors.append(
            f"{names['deadping']} ({_secs(ms['deadping'])}) must be more than twice {names['keepalive']} "
            f"({_secs(ka)}), or heartbeat refuses to start ('Ping dead time is too small')"
        )
    result.update(
        errors=errors,
        warnings=warnings,
        takeover_min_ms=dt - ka + TAKEOVER_WORK_MS[0],
        takeover_max_ms=dt + TAKEOVER_WORK_MS[1],
    )
    return result


def _args_text(args):
    return "".join(f"::{a}" for a in args or [])


# The resource.d script that runs IPaddr2 resources, by heartbeat_ipaddr2_agent: the role's lean
# agent (roles/heartbeat/files/hakit-IPaddr2), or Debian's wrapper around the OCF IPaddr2 agent.
IPADDR2_AGENTS = {"hakit": "hakit-IPaddr2", "ocf": "IPaddr2"}


def render_resource(resource, ipaddr2_agent="ocf"):
    """One haresources word for a structured resource (see the heartbeat role's argument spec)."""
    kind = resource.get("type")
    if kind in ("IPaddr2", "IPaddr"):
        parts = [str(resource["address"])]
        for key in ("cidr", "nic", "broadcast"):
            if resource.get(key) in (None, ""):
                break
            parts.append(str(resource[key]))
        if kind == "IPaddr2":
            if ipaddr2_agent not in IPADDR2_AGENTS:
                raise ValueError(f"ipaddr2_agent is {ipaddr2_agent!r}; known: {', '.join(IPADDR2_AGENTS)}")
            kind = IPADDR2_AGENTS[ipaddr2_agent]
        return f"{kind}::" + "/".join(parts)
    if kind == "drbddisk":
        return f"drbddisk::{resource['resource']}"
    if kind == "Filesystem":
        words = [resource["device"], resource["directory"], resource["fstype"]]
        if resource.get("options"):
            words.append(resource["options"])
        return "Filesystem::" + "::".join(str(w) for w in words)
    if kind in ("service", "script", "agent"):
        return f"{resource['name']}{_args_text(resource.get('args'))}"
    raise ValueError(f"unknown resource type {kind!r}; known: {', '.join(RESOURCE_TYPES)}")


def render_group(group, ipaddr2_agent="ocf"):
    """The haresources line of one resource group: the preferred node, then its resources in order."""
    words = [render_resource(r, ipaddr2_agent) for r in group.get("resources") or []]
    return " ".join([str(group["node"]), *words])


def _bad_arg(arg):
    text = str(arg)
    if text == "" or re.search(r"\s", text) or "::" in text or "#" in text or "\\" in text:
        return True
    return text.startswith(":") or text.endswith(":")


def _where(gi, ri=None, var="heartbeat_resource_groups"):
    return f"{var}[{gi}]" if ri is None else f"{var}[{gi}].resources[{ri}]"


def _resource_problems(res, where, scripts, agents):
    problems = []
    kind = res.get("type")
    if kind not in RESOURCE_TYPES:
        return [f"{where}.type is {kind!r}: use one of {', '.join(RESOURCE_TYPES)}"]
    if kind in ("IPaddr2", "IPaddr"):
        problems += _ip_resource_problems(res, where)
    elif kind == "drbddisk":
        if not _NAME.match(str(res.get("resource") or "")):
            problems.append(
                f"{where}.resource must name a DRBD resource (like r0), got {res.get('resource')!r}"
            )
    elif kind == "Filesystem":
        device, directory = str(res.get("device") or ""), str(res.get("directory") or "")
        if not (device.startswith("/") or device.startswith(("LABEL=", "UUID=", "-L", "-U"))):
            problems.append(
                f"{where}.device must be a device path (/dev/drbd0) or LABEL=/UUID=, got {device!r}"
            )
        if not directory.startswith("/"):
            problems.append(f"{where}.directory must be an absolute mount point, got {directory!r}")
        if not _FSTYPE.match(str(res.get("fstype") or "")):
            problems.append(f"{where}.fstype must be a filesystem type like ext4, got {res.get('fstype')!r}")
        for key in ("device", "directory", "options"):
            if res.get(key) and _bad_arg(res[key]):
                problems.append(
                    f"{where}.{key} ({res[key]!r}) cannot go into haresources: no spaces, '#', '\\' or '::'"
                )
    else:
        name = str(res.get("name") or "")
        if not _NAME.match(name):
            problems.append(f"{where}.name ({name!r}) is not a valid script name (letters, digits, _.+@-)")
        elif kind == "agent" and name not in agents:
            problems.append(
                f"{where}.name: unknown resource agent {name!r}; known agents: {', '.join(sorted(agents))}. "
                f"Use type 'service' for an init script in /etc/init.d, type 'script' for one of "
                f"heartbeat_resource_scripts, or add it to heartbeat_extra_agents"
            )
        elif kind == "script" and name not in scripts:
            problems.append(
                f"{where}.name: script {name!r} is not defined in heartbeat_resource_scripts "
                f"(defined: {', '.join(sorted(scripts)) or 'none'}): add it there or use type 'service'"
            )
        args = res.get("args") or []
        if not isinstance(args, list):
            problems.append(f"{where}.args must be a list of words, got {args!r}")
        else:
            for ai, arg in enumerate(args):
                if _bad_arg(arg):
                    problems.append(
                        f"{where}.args[{ai}] ({arg!r}) cannot be a haresources argument: heartbeat splits "
                        f"arguments on '::' and lines on blanks; no spaces, '#', '\\', '::' or leading/"
                        f"trailing ':'"
                    )
    return problems


def _ip_resource_problems(res, where):
    problems = []
    try:
        address = ipaddress.IPv4Address(str(res.get("address")))
    except ValueError:
        return [f"{where}.address ({res.get('address')!r}) is not an IPv4 address"]
    cidr, nic, broadcast = res.get("cidr"), res.get("nic"), res.get("broadcast")
    if cidr not in (None, "") and not (isinstance(cidr, int) and 1 <= cidr <= 32):
        problems.append(f"{where}.cidr ({cidr!r}) must be a prefix length from 1 to 32")
        cidr = None
    if nic and cidr in (None, ""):
        problems.append(
            f"{where}.nic needs {where}.cidr: haresources takes address/cidr/nic/broadcast in order"
        )
    if nic and not _NIC.match(str(nic)):
        problems.append(f"{where}.nic ({nic!r}) is not an interface name like eth0 or eth0:0")
    if broadcast:
        if not nic:
            problems.append(f"{where}.broadcast needs {where}.nic (address/cidr/nic/broadcast order)")
        try:
            bcast = ipaddress.IPv4Address(str(broadcast))
        except ValueError:
            problems.append(f"{where}.broadcast ({broadcast!r}) is not an IPv4 address")
        else:
            if isinstance(cidr, int) and bcast not in ipaddress.IPv4Network(
                f"{address}/{cidr}", strict=False
            ):
                problems.append(f"{where}.broadcast {bcast} is outside {address}/{cidr}")
    return problems


def resource_problems(groups, nodes, scripts=(), agents=KNOWN_AGENTS, var="heartbeat_resource_groups"):
    """Everything wrong with the resource groups, as messages naming the variable and the fix."""
    problems = []
    nodes = [str(n) for n in nodes or []]
    scripts = set(scripts or [])
    agents = set(agents or [])
    seen = {}
    if not isinstance(groups, list):
        return [f"{var} must be a list of resource groups"]
    for gi, group in enumerate(groups):
        gwhere = _where(gi, var=var)
        if str(group.get("node")) not in nodes:
            problems.append(
                f"{gwhere}.node ({group.get('node')!r}) is not one of heartbeat_nodes ({', '.join(nodes)}): "
                f"the preferred node must be a cluster node's uname -n"
            )
        resources = group.get("resources") or []
        if not resources:
            problems.append(f"{gwhere}.resources is empty: a group needs at least one resource")
        for ri, res in enumerate(resources):
            where = _where(gi, ri, var)
            found = _resource_problems(res, where, scripts, agents)
            problems += found
            if found:
                continue
            for key in _identity(res):
                if key in seen:
                    problems.append(
                        f"{where} duplicates {seen[key]} ({key[1]}): a resource can be managed only once; "
                        f"remove one of them"
                    )
                else:
                    seen[key] = where
    return problems


def _identity(res):
    """What makes two resources the same thing on a host."""
    kind = res["type"]
    if kind in ("IPaddr2", "IPaddr"):
        return [("ip", str(res["address"]))]
    if kind == "drbddisk":
        return [("drbd", str(res["resource"]))]
    if kind == "Filesystem":
        return [("mount", str(res["directory"])), ("device", str(res["device"]))]
    return [("script", render_resource(res))]


def vip_problems(groups, node_addresses, var="heartbeat_resource_groups"):
    """Service addresses that do not fit the nodes' interfaces.

    ``node_addresses`` maps a node name to ``{interface: ["10.0.0.1/24", ...]}`` (what the inventory
    or the facts say). A node without any entry is skipped. The VIP must lie inside a subnet of its
    ``nic`` (the base device of an alias like eth0:0) on every node, with the same prefix as
    ``cidr``, and must not be one of the nodes' own addresses.
    """
    problems = []
    for gi, group in enumerate(groups or []):
        for ri, res in enumerate(group.get("resources") or []):
            if res.get("type") not in ("IPaddr2", "IPaddr"):
                continue
            try:
                vip = ipaddress.IPv4Address(str(res.get("address")))
            except ValueError:
                continue
            where = _where(gi, ri, var)
            nic = str(res.get("nic") or "")
            base = nic.split(":", maxsplit=1)[0]
            for node, interfaces in sorted((node_addresses or {}).items()):
                problems += _vip_on_node(vip, res.get("cidr"), base, nic, node, interfaces or {}, where)
    return problems


def _vip_on_node(vip, cidr, base, nic, node, interfaces, where):
    networks = []
    for iface, addresses in interfaces.items():
        for address in addresses or []:
            try:
                networks.append((iface, ipaddress.IPv4Interface(str(address))))
            except ValueError:
                continue
    if not networks:
        return []
    for iface, net in networks:
        if net.ip == vip:
            return [
                f"{where}.address {vip} is node {node}'s own address on {iface}: a service IP must be unused"
            ]
    candidates = [(i, n) for i, n in networks if i.split(":", maxsplit=1)[0] == base] if base else networks
    holding = [(i, n) for i, n in candidates if vip in n.network and n.network.prefixlen < 32]
    if not holding:
        have = ", ".join(f"{i} {n}" for i, n in (candidates or networks))
        place = f"{base}'s subnets" if base else "any subnet of the node"
        return [
            f"{where}.address {vip} is not inside {place} on node {node} ({have or 'no addresses'}): "
            f"fix the address, or set nic to the interface of the VIP's subnet"
        ]
    iface, net = holding[0]
    if isinstance(cidr, int) and cidr != net.network.prefixlen:
        return [
            f"{where}.cidr is {cidr} but {iface} on node {node} is {net.network}: set cidr to "
            f"{net.network.prefixlen} so the VIP gets the subnet's netmask and broadcast"
        ]
    return []


_FACILITIES = (
    "auth",
    "authpriv",
    "cron",
    "daemon",
    "ftp",
    "kern",
    "lpr",
    "mail",
    "news",
    "syslog",
    "user",
    "uucp",
    *(f"local{i}" for i in range(8)),
)
_KEY = re.compile(r"^[^\s#]+$")


def _auth_problems(cfg):
    problems = []
    method, key, index = cfg.get("auth_method"), cfg.get("auth_key"), cfg.get("auth_index")
    keys = [("heartbeat_auth_method", method, key, index, "heartbeat_auth_key")]
    for i, extra in enumerate(cfg.get("auth_extra_keys") or []):
        where = f"heartbeat_auth_extra_keys[{i}]"
        keys.append(
            (f"{where}.method", extra.get("method"), extra.get("key"), extra.get("index"), f"{where}.key")
        )
    seen = {}
    for method_var, method_value, key_value, index_value, key_var in keys:
        index_var = (
            "heartbeat_auth_index" if method_var == "heartbeat_auth_method" else key_var[:-4] + ".index"
        )
        if not isinstance(index_value, int) or isinstance(index_value, bool) or not 0 <= index_value <= 15:
            problems.append(f"{index_var} ({index_value!r}) must be a key number from 0 to 15")
        elif index_value in seen:
            problems.append(
                f"{index_var} {index_value} is already used by {seen[index_value]}: number each key once"
            )
        else:
            seen[index_value] = index_var
        if method_value == "crc":
            if not cfg.get("allow_crc"):
                problems.append(
                    f"{method_var} is crc, which authenticates nothing (anyone on the link can forge "
                    f"heartbeats): use sha1 with a vaulted key, or set heartbeat_allow_crc: true to accept the risk"
                )
            if key_value:
                problems.append(f"{key_var} must be empty with crc (heartbeat refuses a key for crc)")
        elif method_value in ("sha1", "md5"):
            if key_value in (None, ""):
                problems.append(
                    f"{key_var} is not set: {method_value} needs a shared secret. Generate one (openssl rand "
                    f"-hex 32), put it in a vault file as vault_heartbeat_auth_key and set "
                    f"{key_var}: '{{{{ vault_heartbeat_auth_key }}}}'"
                )
            elif not _KEY.match(str(key_value)):
                problems.append(
                    f"{key_var} contains a blank or '#': heartbeat reads the key up to the first blank"
                )
        else:
            problems.append(f"{method_var} ({method_value!r}) must be sha1, md5 or crc")
    return problems


def _media_problems(cfg):
    problems = []
    media = cfg.get("media") or []
    nodes = [str(n) for n in cfg.get("nodes") or []]
    known = set(cfg.get("interfaces") or [])
    if not media:
        problems.append(
            "heartbeat_media is empty: heartbeat needs at least one medium, e.g. [{type: bcast, interface: "
            "eth1}]; add a second, independent one (ucast on the public LAN) against split brain"
        )
    seen = {}
    for i, medium in enumerate(media):
        where = f"heartbeat_media[{i}]"
        kind = medium.get("type")
        iface = medium.get("interface")
        if kind in ("bcast", "ucast", "mcast"):
            if not iface:
                problems.append(f"{where}.interface is required for {kind}")
            elif known and str(iface) not in known:
                problems.append(
                    f"{where}.interface {iface} does not exist on node {cfg.get('nodename')} (it has "
                    f"{', '.join(sorted(known))}) and is not in network_interfaces: fix the interface name"
                )
        if kind == "ucast":
            addresses = medium.get("addresses") or {}
            for node in nodes:
                if node not in addresses:
                    problems.append(
                        f"{where}.addresses has no address for node {node}: give every node's address on {iface}"
                    )
            for node, address in addresses.items():
                if str(node) not in nodes:
                    problems.append(f"{where}.addresses names {node}, which is not in heartbeat_nodes")
                try:
                    ipaddress.IPv4Address(str(address))
                except ValueError:
                    problems.append(f"{where}.addresses.{node} ({address!r}) is not an IPv4 address")
        elif kind == "mcast":
            try:
                if not ipaddress.IPv4Address(str(medium.get("group"))).is_multicast:
                    problems.append(
                        f"{where}.group {medium.get('group')} is not a multicast address (224.0.0.0/4)"
                    )
            except ValueError:
                problems.append(f"{where}.group ({medium.get('group')!r}) must be a multicast IPv4 address")
            if not 1 <= int(medium.get("ttl", 1)) <= 255:
                problems.append(f"{where}.ttl must be 1-255")
        elif kind == "serial":
            if not str(medium.get("device") or "").startswith("/dev/"):
                problems.append(
                    f"{where}.device ({medium.get('device')!r}) must be a serial device like /dev/ttyS0"
                )
        elif kind != "bcast":
            problems.append(f"{where}.type ({kind!r}) must be bcast, ucast, mcast or serial")
        signature = (kind, iface, medium.get("device"), medium.get("group"))
        if signature in seen:
            problems.append(f"{where} repeats {seen[signature]}: list each medium once")
        seen[signature] = where
    return problems


def config_problems(cfg):
    """Messages for heartbeat settings that no argument spec can check, naming the variable and fix.

    ``cfg`` holds the role's variables without the ``heartbeat_`` prefix plus ``nodename`` (this
    host's uname -n), ``play_nodenames`` (all hosts' in the play) and ``interfaces`` (the
    interface names this host has or will have).
    """
    problems = []
    nodes = [str(n) for n in cfg.get("nodes") or []]
    nodename = cfg.get("nodename")
    if len(nodes) != 2 or len(set(nodes)) != 2:
        problems.append(
            f"heartbeat_nodes ({', '.join(nodes) or 'empty'}) must list two different nodes: heartbeat v1 "
            f"resource groups (haresources) fail over between exactly two nodes"
        )
    if nodename is not None and nodename not in nodes:
        problems.append(
            f"heartbeat_nodes ({', '.join(nodes)}) does not contain {nodename}, this host's uname -n: heartbeat "
            f"would not start ('Current node not in configuration'). List the nodes by uname -n, or set the "
            f"hostname (common_hostname) to the node name"
        )
    play = [str(n) for n in cfg.get("play_nodenames") or []]
    if len(play) >= 2:
        for node in nodes:
            if node not in play:
                problems.append(
                    f"heartbeat_nodes lists {node}, but no host in this play has that uname -n "
                    f"({', '.join(play)}): run the play on both nodes and name them as uname -n reports"
                )
        if len(set(play)) != len(play):
            problems.append(
                f"two hosts in this play report the same uname -n ({', '.join(play)}): give each its own hostname"
            )
    problems += _media_problems(cfg)
    problems += _auth_problems(cfg)
    if not (cfg.get("logfile") or cfg.get("debugfile") or cfg.get("logfacility") or cfg.get("use_logd")):
        problems.append(
            "heartbeat has nowhere to log: set heartbeat_logfile, heartbeat_debugfile or heartbeat_logfacility, "
            "or heartbeat_use_logd: true (heartbeat refuses to start otherwise)"
        )
    facility = cfg.get("logfacility")
    if facility and facility not in _FACILITIES:
        problems.append(
            f"heartbeat_logfacility ({facility!r}) must be one of {', '.join(_FACILITIES)} or empty"
        )
    for var in ("logfile", "debugfile"):
        value = cfg.get(var)
        if value and not str(value).startswith("/"):
            problems.append(f"heartbeat_{var} ({value!r}) must be an absolute path, or empty")
    watchdog = cfg.get("watchdog")
    if watchdog and not str(watchdog).startswith("/dev/"):
        problems.append(f"heartbeat_watchdog ({watchdog!r}) must be a device like /dev/watchdog, or empty")
    pings = list(cfg.get("ping_nodes") or []) + [
        a for g in cfg.get("ping_groups") or [] for a in g.get("addresses") or []
    ]
    for i, address in enumerate(cfg.get("ping_nodes") or []):
        try:
            ipaddress.IPv4Address(str(address))
        except ValueError:
            problems.append(f"heartbeat_ping_nodes[{i}] ({address!r}) is not an IPv4 address")
    if cfg.get("ipfail") and not pings:
        problems.append(
            "heartbeat_ipfail is true but there are no heartbeat_ping_nodes or heartbeat_ping_groups: ipfail "
            "decides by ping connectivity; add the router both nodes should reach"
        )
    for i, item in enumerate(cfg.get("respawn") or []):
        if not str(item.get("command") or "").startswith("/"):
            problems.append(f"heartbeat_respawn[{i}].command must start with an absolute path")
    managed = set(cfg.get("managed_directives") or [])
    for i, line in enumerate(cfg.get("ha_cf_extra") or []):
        words = str(line).split()
        if not words or "\n" in str(line):
            problems.append(f"heartbeat_ha_cf_extra[{i}] must be one non-empty line")
        elif words[0] in managed:
            problems.append(
                f"heartbeat_ha_cf_extra[{i}] sets {words[0]}, which the role writes from its own variable: "
                f"use that variable instead"
            )
    names = {}
    for i, script in enumerate(cfg.get("resource_scripts") or []):
        where = f"heartbeat_resource_scripts[{i}]"
        name = str(script.get("name") or "")
        if not _NAME.match(name):
            problems.append(f"{where}.name ({name!r}) is not a valid file name")
        if name in names:
            problems.append(f"{where}.name {name} is already {names[name]}")
        names[name] = where
        if bool(script.get("content")) == bool(script.get("src")):
            problems.append(f"{where} needs exactly one of content and src")
    return problems


def node_addresses(hosts, service_addresses=None):
    """``{node name: {interface: [address/prefix, ...]}}`` from each host's facts and network_interfaces.

    ``hosts`` is a list of dicts with ``facts`` (ansible_facts), ``interfaces`` (network_interfaces) and
    optionally ``nodename`` (the name the host will have, else the facts' nodename).
    Inventory addresses count because the network role may create them later in the same run.
    Secondary addresses in the facts that are one of ``service_addresses`` are left out: the node
    holding the resources carries the VIP there, added by IPaddr2, and it is not the node's own.
    """
    services = {str(a) for a in service_addresses or ()}
    result = {}
    for host in hosts or []:
        facts = host.get("facts") or {}
        node = host.get("nodename") or facts.get("nodename")
        if not node:
            continue
        table = result.setdefault(str(node), {})
        for iface in host.get("interfaces") or []:
            if iface.get("address"):
                table.setdefault(str(iface["name"]).split(":", maxsplit=1)[0], []).append(
                    str(iface["address"])
                )
        for name in facts.get("interfaces") or []:
            data = facts.get(str(name).replace("-", "_").replace(".", "_")) or facts.get(str(name)) or {}
            secondaries = [
                e for e in data.get("ipv4_secondaries") or [] if str(e.get("address")) not in services
            ]
            for entry in [data.get("ipv4"), *secondaries]:
                if entry and entry.get("address") and entry.get("prefix"):
                    table.setdefault(str(name), []).append(f"{entry['address']}/{entry['prefix']}")
    return result


def switchover_problems(states, to, nodes):
    """Why the resources cannot be moved to node `to` now; empty when they can (or already are).

    `states` maps each node that answered (by uname -n) to what it reported: ``running`` (heartbeat
    answers cl_status), ``resources`` (cl_status rscstatus), ``peer`` (cl_status nodestatus of the
    other node) and ``held``/``free``, the haresources resources its ResourceManager sees running
    and not running there.
    """
    var = "heartbeat_switchover_to"
    if to not in nodes:
        return [f"{var}={to!r} is not a node of this pair: name one of heartbeat_nodes ({', '.join(nodes)})"]
    target = states.get(to)
    if target is None:
        return [
            f"{var}={to}: {to} did not answer in this play (down, unreachable, or left out by --limit); "
            "resources can only move to a node that runs"
        ]
    if not target["running"]:
        return [f"{var}={to}: heartbeat does not run on {to}; start it (service heartbeat start) first"]
    if not (target["held"] or target["free"]):
        return [f"{var}={to}: haresources on {to} lists no resource, so there is nothing to move"]
    problems = [
        f"the resources are moving on {node} (cl_status rscstatus: transition); run again once they settle"
        for node, state in sorted(states.items())
        if state["running"] and state["resources"] == "transition"
    ]
    if problems or not target["free"]:
        return problems
    if target["peer"] != "active":
        # Heartbeat takes over from a dead peer by itself; if it has not, asking it will not help.
        return [
            f"{var}={to}: {to} does not hold {target['free']} and sees its peer as "
            f"{target['peer'] or 'unknown'}; hb_takeover needs an active peer to hand them over "
            "(see heartbeat's log on both nodes)"
        ]
    return []
