# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""LVS directors and real servers as pure functions.

``ldirectord_cf()`` renders ldirectord.cf (ldirectord 4.12, resource-agents) from the
lvs_director role's structured settings, ``director_problems()`` finds what ldirectord would
refuse or what silently breaks the service (a DR real server on another port, a VIP heartbeat
does not carry, quiescent without the sysctls that make it useful), and
``realserver_problems()``/``realserver_interfaces()`` do the same for the lvs_realserver role,
whose stanzas the network role writes.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re

PROTOCOLS = ("tcp", "udp", "fwm")
METHODS = ("gate", "masq", "ipip")
MODES = ("dr", "nat", "tun")
# The schedulers Debian 12's kernel ships as ip_vs_<name>.ko.
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh")
CHECKTYPES = ("negotiate", "connect", "ping", "off", "on", "external", "external-perl")
# Services ldirectord's negotiate check knows (ld_port_to_service and the check_* functions).
SERVICES = (
    "none", "ftp", "smtp", "dns", "http", "https", "pop", "pops", "nntp", "imap", "imaps", "ldap",
    "mysql", "pgsql", "oracle", "radius", "sip", "http_proxy", "simpletcp", "submission",
)  # fmt: skip
FACILITIES = (
    "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "syslog", "user",
    "uucp", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
_QUOTED_BAD = re.compile(r'["\n\r]')
_FORWARD = {"gate": "gate", "masq": "masq", "ipip": "ipip"}


def _yes(value):
    return "yes" if value else "no"


def _port(value):
    try:
        port = int(value)
    except (TypeError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


def _endpoint(server, default_port):
    port = server.get("port", default_port)
    return f"{server['address']}:{port}" if port not in (None, "", 0) else str(server["address"])


def _real_line(server, default_port, keyword="real"):
    line = f"{keyword}={_endpoint(server, default_port)} {_FORWARD[server.get('method', 'gate')]}"
    if keyword == "real":
        line += f" {int(server.get('weight', 1))}"
    return line


def virtual_key(service):
    """``VIP:port`` (or the firewall mark) as ldirectord's ``virtual=`` line names the service."""
    if service.get("protocol") == "fwm":
        return str(service["fwmark"])
    return f"{service['address']}:{service['port']}"


def ldirectord_cf(settings):
    """The text of ldirectord.cf for ``settings`` (the role's variables without their prefix).

    Global directives first, then one ``virtual=`` block per service with its directives indented
    by a tab, as seed 003 writes them. Optional directives are written only when set.
    """
    lines = [
        f"checktimeout={int(settings['checktimeout'])}",
        f"checkinterval={int(settings['checkinterval'])}",
    ]
    for key in ("negotiatetimeout", "failurecount"):
        if settings.get(key):
            lines.append(f"{key}={int(settings[key])}")
    lines += [
        f"autoreload={_yes(settings.get('autoreload'))}",
        f'logfile="{settings["logfile"]}"',
        f"quiescent={_yes(settings.get('quiescent'))}",
    ]
    if settings.get("fork") is not None:
        lines.append(f"fork={_yes(settings['fork'])}")
    if settings.get("cleanstop") is not None:
        lines.append(f"cleanstop={_yes(settings['cleanstop'])}")
    if settings.get("fallback"):
        lines.append(_real_line(settings["fallback"], None, "fallback"))
    for service in settings.get("virtual_services") or []:
        protocol = service.get("protocol", "tcp")
        default_port = None if protocol == "fwm" else service.get("port")
        lines += ["", f"virtual={virtual_key(service)}"]
        body = [_real_line(real, default_port) for real in service.get("real_servers") or []]
        if service.get("fallback"):
            body.append(_real_line(service["fallback"], default_port, "fallback"))
        if service.get("service"):
            body.append(f"service={service['service']}")
        for key in ("request", "receive", "virtualhost"):
            if service.get(key):
                body.append(f'{key}="{service[key]}"')
        body += [f"scheduler={service.get('scheduler', 'wrr')}", f"protocol={protocol}"]
        checktype = service.get("checktype", "negotiate")
        body.append(f"checktype={checktype}")
        for key in ("checkport", "checktimeout", "negotiatetimeout", "persistent", "netmask", "httpmethod"):
            if service.get(key) not in (None, ""):
                body.append(f"{key}={service[key]}")
        if service.get("quiescent") is not None:
            body.append(f"quiescent={_yes(service['quiescent'])}")
        lines += ["\t" + line for line in body]
    return "\n".join(lines) + "\n"


def uses_masq(services):
    """Whether any real server (or fallback) of ``services`` is forwarded by NAT (masq)."""
    for service in services or []:
        servers = list(service.get("real_servers") or []) + (
            [service["fallback"]] if service.get("fallback") else []
        )
        if any(s.get("method", "gate") == "masq" for s in servers):
            return True
    return False


def director_sysctls(settings):
    """The sysctls the director needs: forwarding, and with quiescent servers the two vs knobs
    that make a weight-0 server drop its connections and persistence templates (ldirectord(8))."""
    quiescent = bool(settings.get("quiescent")) or any(
        s.get("quiescent") for s in settings.get("virtual_services") or []
    )
    values = {"net.ipv4.ip_forward": 1}
    values["net.ipv4.vs.expire_nodest_conn"] = 1 if quiescent else 0
    values["net.ipv4.vs.expire_quiescent_template"] = 1 if quiescent else 0
    return values


def _server_problems(server, where, vport, fwmark, allowed_methods=METHODS):
    found = []
    if not isinstance(server, dict) or "address" not in server:
        return [f"{where}: give a dict with at least address (and port, method, weight)"]
    if _ipv4(server["address"]) is None:
        found.append(
            f"{where}.address: {server['address']!r} is not an IPv4 address; write it like 192.168.1.101"
        )
    method = server.get("method", "gate")
    if method not in allowed_methods:
        found.append(f"{where}.method: {method!r} is not one of {', '.join(allowed_methods)}")
    port = server.get("port")
    if port not in (None, "") and _port(port) is None:
        found.append(f"{where}.port: {port!r} is not a port (1-65535)")
    elif not fwmark and port in (None, "") and vport is None:
        found.append(f"{where}.port: give the port the real server listens on")
    elif (
        method in ("gate", "ipip")
        and not fwmark
        and port not in (None, "")
        and vport is not None
        and _port(port) != _port(vport)
    ):
        found.append(
            f"{where}.port: {port} differs from the virtual service's port {vport}; direct routing and "
            f"tunnelling cannot change the port (only masq can), so use port {vport} or method masq"
        )
    weight = server.get("weight", 1)
    try:
        if not 0 <= int(weight) <= 65535:
            raise ValueError
    except (TypeError, ValueError):
        found.append(f"{where}.weight: {weight!r} is not an integer between 0 and 65535")
    return found


def _service_problems(service, where, quiescent):
    found = []
    protocol = service.get("protocol", "tcp")
    fwmark = protocol == "fwm"
    if protocol not in PROTOCOLS:
        found.append(f"{where}.protocol: {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if fwmark:
        try:
            if int(service.get("fwmark")) <= 0:
                raise ValueError
        except (TypeError, ValueError):
            found.append(f"{where}.fwmark: protocol fwm needs a firewall mark, an integer above 0")
    else:
        if _ipv4(service.get("address")) is None:
            found.append(
                f"{where}.address: {service.get('address')!r} is not an IPv4 address; give the virtual IP (VIP)"
            )
        if _port(service.get("port")) is None:
            found.append(f"{where}.port: {service.get('port')!r} is not a port (1-65535)")
    scheduler = service.get("scheduler", "wrr")
    if scheduler not in SCHEDULERS:
        found.append(f"{where}.scheduler: {scheduler!r} is not one of {', '.join(SCHEDULERS)}")
    checktype = str(service.get("checktype", "negotiate"))
    if checktype not in CHECKTYPES and not checktype.isdigit():
        found.append(f"{where}.checktype: {checktype!r} is not one of {', '.join(CHECKTYPES)} or a number")
    svc = service.get("service")
    if svc and svc not in SERVICES:
        found.append(
            f"{where}.service: {svc!r} is not a service ldirectord checks; use one of {', '.join(SERVICES)}"
        )
    if checktype == "negotiate" and svc in ("http", "https") and not service.get("request"):
        found.append(
            f"{where}.request: a negotiate check of {svc} needs the page to request (seed 003: ldirector.html) "
            "and receive the text it must contain"
        )
    for key in ("request", "receive", "virtualhost"):
        if service.get(key) and _QUOTED_BAD.search(str(service[key])):
            found.append(
                f"{where}.{key}: no double quotes or line breaks (ldirectord reads it between quotes)"
            )
    for key in ("checkport", "checktimeout", "negotiatetimeout", "persistent"):
        value = service.get(key)
        if value not in (None, "") and (not str(value).isdigit() or int(value) <= 0):
            found.append(f"{where}.{key}: {value!r} is not a positive integer")
    if service.get("netmask") and _ipv4(service["netmask"]) is None:
        found.append(f"{where}.netmask: {service['netmask']!r} must be a dotted netmask like 255.255.255.0")
    if service.get("netmask") and not service.get("persistent"):
        found.append(f"{where}.netmask: only meaningful with persistent; set persistent or drop netmask")
    reals = service.get("real_servers") or []
    if not reals:
        found.append(f"{where}.real_servers: list at least one real server")
    vport = None if fwmark else service.get("port")
    seen = set()
    for j, real in enumerate(reals):
        found += _server_problems(real, f"{where}.real_servers[{j}]", vport, fwmark)
        if isinstance(real, dict):
            key = (str(real.get("address")), str(real.get("port", vport)))
            if key in seen:
                found.append(f"{where}.real_servers[{j}]: {':'.join(key)} is listed twice")
            seen.add(key)
    if service.get("fallback"):
        found += _server_problems(service["fallback"], f"{where}.fallback", vport, fwmark)
    return found


def director_problems(settings, var="lvs_director"):
    """Mistakes in the lvs_director settings, each naming the variable and the fix."""
    found = []
    for key in ("checktimeout", "checkinterval", "negotiatetimeout", "failurecount"):
        value = settings.get(key)
        if value in (None, "") and key in ("negotiatetimeout", "failurecount"):
            continue
        if not str(value).isdigit() or int(value) <= 0:
            found.append(f"{var}_{key}: {value!r} is not a positive integer (seconds)")
    logfile = str(settings.get("logfile", ""))
    if not (logfile.startswith("/") or logfile in FACILITIES):
        found.append(
            f"{var}_logfile: {logfile!r} is neither an absolute path nor a syslog facility; "
            "use /var/log/ldirectord.log or local0 (seed 003)"
        )
    if settings.get("fallback"):
        found += _server_problems(settings["fallback"], f"{var}_fallback", None, True)
    services = settings.get("virtual_services") or []
    if not services:
        found.append(f"{var}_virtual_services: list at least one virtual service (virtual=VIP:port)")
    seen = set()
    for i, service in enumerate(services):
        where = f"{var}_virtual_services[{i}]"
        if not isinstance(service, dict):
            found.append(f"{where}: give a dict (address, port, real_servers, ...)")
            continue
        found += _service_problems(service, where, settings.get("quiescent"))
        key = (
            service.get("protocol", "tcp"),
            virtual_key(service) if "address" in service or "fwmark" in service else i,
        )
        if key in seen:
            found.append(
                f"{where}: {key[1]} ({key[0]}) is defined twice; ldirectord refuses duplicate virtual servers"
            )
        seen.add(key)
    return found


# Debian's ldirectord.service runs `ldirectord start`, which reads this file and no other.
SERVICE_CONFIG_FILE = "/etc/ha.d/ldirectord.cf"


def service_problems(settings, var="lvs_director"):
    """What a director running ldirectord as its own service (no heartbeat) must not set. Where
    the file lives is the rule of whoever starts ldirectord: this one, or heartbeat_problems."""
    config = str(settings.get("config_file", ""))
    if config != SERVICE_CONFIG_FILE:
        return [
            f"{var}_config_file: {config!r} is not read by Debian's ldirectord.service, which runs "
            f"`ldirectord start` with {SERVICE_CONFIG_FILE}; use {SERVICE_CONFIG_FILE} (or set "
            f"{var}_managed_by_heartbeat: true and start ldirectord::{posixpath.basename(config)} from heartbeat)"
        ]
    return []


def heartbeat_problems(settings, groups, nodes, var="lvs_director"):
    """What the heartbeat resource groups lack for a director pair: ldirectord started with this
    configuration, the sync daemon's master role, and every VIP of the virtual services."""
    found = []
    config = str(settings.get("config_file", ""))
    if not config.startswith("/etc/ha.d/"):
        found.append(
            f"{var}_config_file: {config!r} must live in /etc/ha.d (heartbeat's ldirectord agent "
            "finds the file by its name there, as in ldirectord::ldirectord.cf)"
        )
    resources = [r for g in groups or [] for r in (g.get("resources") or [])]
    name = posixpath.basename(config)
    ldirectord = [r for r in resources if r.get("type") == "agent" and r.get("name") == "ldirectord"]
    if not any([str(a) for a in r.get("args") or []] == [name] for r in ldirectord):
        found.append(
            f"heartbeat_resource_groups: no resource starts ldirectord with {name}; add "
            f"{{type: agent, name: ldirectord, args: [{name}]}} before the service address "
            f"(or set {var}_managed_by_heartbeat: false to run ldirectord at boot)"
        )
    if settings.get("sync_daemon"):
        sync = [r for r in resources if r.get("type") == "agent" and r.get("name") == "LVSSyncDaemonSwap"]
        if not any([str(a) for a in r.get("args") or []] == ["master"] for r in sync):
            found.append(
                "heartbeat_resource_groups: no LVSSyncDaemonSwap::master resource; add "
                "{type: agent, name: LVSSyncDaemonSwap, args: [master]} so the active director sends "
                f"the connection table (or set {var}_sync_daemon: false)"
            )
    held = {str(r.get("address")) for r in resources if r.get("type") in ("IPaddr2", "IPaddr")}
    for i, service in enumerate(settings.get("virtual_services") or []):
        carried = (
            not isinstance(service, dict)
            or service.get("protocol", "tcp") == "fwm"
            or not service.get("address")
        )
        if not carried and str(service["address"]) not in held:
            found.append(
                f"{var}_virtual_services[{i}].address: {service['address']} is not an IPaddr2 resource "
                "of heartbeat_resource_groups, so no director would hold the VIP; add "
                f"{{type: IPaddr2, address: {service['address']}, cidr: ..., nic: ...}}"
            )
    if len(nodes or []) != 2:
        found.append("heartbeat_nodes: a director pair has exactly two nodes")
    return found


# ---------------------------------------------------------------------------------------------
# Real servers


def realserver_interfaces(settings):
    """The ifupdown stanzas (network role format) that carry the VIPs on a real server.

    DR: ``lo:0`` (``lo:1``, ...) with the VIP/32 and ``pre-up sysctl -p`` as in seed 003, so the
    ARP sysctls are in force before the address appears. TUN: ``tunl0`` (the ipip module's
    fallback device) with the VIP/32. NAT carries no VIP: the default route points at the director.
    """
    mode = settings.get("mode")
    vips = [str(v) for v in settings.get("vips") or []]
    # The file holding the ARP settings (the network role's), else /etc/sysctl.conf as in the seed.
    load = (
        f"sysctl -q -p {settings['sysctl_file']} > /dev/null"
        if settings.get("sysctl_file")
        else "sysctl -p > /dev/null"
    )
    result = []
    if mode == "dr":
        for i, vip in enumerate(vips):
            result.append({"name": f"lo:{i}", "address": f"{vip}/32", "pre_up": [load]})
    elif mode == "tun":
        first, *rest = vips or [None]
        if first:
            result.append(
                {
                    "name": "tunl0",
                    "address": f"{first}/32",
                    "pre_up": ["modprobe ipip", load],
                    "up": [f"ip addr add {v}/32 dev tunl0" for v in rest],
                }
            )
    return result


def realserver_sysctls(settings, interfaces):
    """ARP and reverse-path settings for ``mode`` on ``interfaces`` (the host's ARPing NICs).

    DR and TUN: arp_ignore=1/arp_announce=2 for ``all`` and each interface, so only the director
    answers ARP for the VIP. TUN also relaxes rp_filter on ``all`` and tunl0: decapsulated packets
    come in on tunl0 from a client the route table reaches through another NIC.
    """
    mode = settings.get("mode")
    arp_ignore, arp_announce, extra = {}, {}, {}
    if mode in ("dr", "tun"):
        for name in ["all", *interfaces]:
            arp_ignore[name] = 1
            arp_announce[name] = 2
    if mode == "tun":
        extra = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.tunl0.rp_filter": 0}
    return {"arp_ignore": arp_ignore, "arp_announce": arp_announce, "sysctl": extra}


def realserver_problems(settings, var="lvs_realserver"):
    """Mistakes in the lvs_realserver settings, each naming the variable and the fix."""
    found = []
    mode = settings.get("mode")
    if mode not in MODES:
        return [f"{var}_mode: {mode!r} is not one of {', '.join(MODES)} (dr: gate, nat: masq, tun: ipip)"]
    vips = settings.get("vips") or []
    if mode in ("dr", "tun") and not vips:
        found.append(f"{var}_vips: mode {mode} needs the virtual IPs the real server answers for")
    for i, vip in enumerate(vips):
        if _ipv4(vip) is None:
            found.append(f"{var}_vips[{i}]: {vip!r} is not an IPv4 address")
    interfaces = settings.get("arp_interfaces") or []
    if mode in ("dr", "tun") and not interfaces:
        found.append(
            f"{var}_arp_interfaces: list the NICs that answer ARP (eth0), each gets arp_ignore/arp_announce"
        )
    if mode == "nat":
        director = settings.get("director_address")
        if _ipv4(director) is None:
            found.append(
                f"{var}_director_address: {director!r} is not an IPv4 address; NAT real servers route "
                "their replies through the director's address on their LAN"
            )
        lan = [i for i in settings.get("interfaces") or [] if i.get("name") == settings.get("interface")]
        if not lan:
            found.append(
                f"{var}_interface: {settings.get('interface')!r} is not in network_interfaces; the "
                "default route via the director is written on that stanza"
            )
        elif _ipv4(director) is not None:
            net = ipaddress.IPv4Interface(str(lan[0].get("address", "0.0.0.0/32"))).network
            if ipaddress.IPv4Address(str(director)) not in net:
                found.append(
                    f"{var}_director_address: {director} is outside {net} of {settings.get('interface')}; "
                    "the director must be on the real servers' LAN to be their gateway"
                )
    return found


def realserver_network(settings):
    """network_interfaces with the VIP stanzas appended (DR/TUN) or the LAN stanza's gateway
    pointing at the director (NAT)."""
    interfaces = [dict(i) for i in settings.get("interfaces") or []]
    if settings.get("mode") == "nat":
        for iface in interfaces:
            if iface.get("name") == settings.get("interface"):
                iface["gateway"] = str(settings["director_address"])
    names = {i.get("name") for i in interfaces}
    return interfaces + [s for s in realserver_interfaces(settings) if s["name"] not in names]
