# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The IPVS table as data: parse ipvsadm's output, reconcile it with a wanted state, render commands.

Pure functions over text and plain dicts; nothing here runs a command or knows AnsibleModule.

A virtual service is a dict with the keys of SERVICE_IDENTITY, SERVICE_ATTRS and
``real_servers`` (a list of dicts with the keys of REAL_IDENTITY and REAL_ATTRS). Every key is
always present, with ipvsadm's defaults filled in, so two tables compare with ``==`` and a
parsed table can be fed back as wanted configuration.

Reading: ``ipvsadm -Sn`` (save format) holds everything except the connection thresholds,
which only ``ipvsadm -Ln --thresholds`` shows; ``read_table`` joins the two.
Writing: ``plan`` turns a (current, after) pair into lines for one ``ipvsadm -R`` batch, which
runs each line as an ipvsadm command and does not clear the table first.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import namedtuple
from operator import itemgetter

DEFAULT_SCHEDULER = "wlc"
DEFAULT_PERSISTENT_TIMEOUT = 360  # what ipvsadm 1.31 sets for -p without a value (captured in the lab)
MAX_PERSISTENT_TIMEOUT = 86400 * 31
MAX_WEIGHT = 65535
MAX_THRESHOLD = 2**31 - 1
MAX_FWMARK = 2**32 - 1

SCHEDULERS = ("rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh")
SCHEDULER_FLAGS = {"sh": ("sh-fallback", "sh-port"), "mh": ("mh-fallback", "mh-port")}
PROTOCOLS = ("tcp", "udp", "sctp", "fwmark")
FAMILIES = ("ipv4", "ipv6")
FORWARDING = ("gate", "masq", "ipip")
TUNNEL_TYPES = ("ipip", "gue")
TUNNEL_CHECKSUMS = ("none", "csum", "remcsum")
PERSISTENCE_ENGINES = ("sip",)

SERVICE_IDENTITY = ("protocol", "address", "port", "fwmark", "family")
SERVICE_ATTRS = ("scheduler", "scheduler_flags", "persistent", "netmask", "persistence_engine", "one_packet")
REAL_IDENTITY = ("address", "port")
REAL_ATTRS = (
    "forwarding",
    "weight",
    "u_threshold",
    "l_threshold",
    "tunnel_type",
    "tunnel_port",
    "tunnel_checksum",
)
TUNNEL_ATTRS = ("tunnel_type", "tunnel_port", "tunnel_checksum")

_FULL_NETMASK = {"ipv4": "255.255.255.255", "ipv6": "128"}
_SERVICE_SWITCH = {"tcp": "-t", "udp": "-u", "sctp": "--sctp-service", "fwmark": "-f"}
_FORWARDING_SWITCH = {"gate": "-g", "masq": "-m", "ipip": "-i"}
_CHECKSUM_SWITCH = {"none": "--tun-nocsum", "csum": "--tun-csum", "remcsum": "--tun-remcsum"}
_LIST_PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}
_PROTOCOL_ORDER = {name: index for index, name in enumerate(PROTOCOLS)}

# ipvsadm's own spellings, long and short, as its restore mode (popt) accepts them.
_COMMANDS = {"-A": "-A", "--add-service": "-A", "-a": "-a", "--add-server": "-a"}
_SERVICE_OPTIONS = {
    "-t": "tcp",
    "--tcp-service": "tcp",
    "-u": "udp",
    "--udp-service": "udp",
    "--sctp-service": "sctp",
    "-f": "fwmark",
    "--fwmark-service": "fwmark",
}
_VALUE_OPTIONS = {
    "-s": "scheduler",
    "--scheduler": "scheduler",
    "-b": "scheduler_flags",
    "--sched-flags": "scheduler_flags",
    "-M": "netmask",
    "--netmask": "netmask",
    "--pe": "persistence_engine",
    "pe": "persistence_engine",  # ipvsadm before 1.27 saved "pe NAME"
    "-r": "real",
    "--real-server": "real",
    "-w": "weight",
    "--weight": "weight",
    "-x": "u_threshold",
    "--u-threshold": "u_threshold",
    "-y": "l_threshold",
    "--l-threshold": "l_threshold",
    "--tun-type": "tunnel_type",
    "--tun-port": "tunnel_port",
}
_FLAG_OPTIONS = {
    "-6": ("family", "ipv6"),
    "--ipv6": ("family", "ipv6"),
    "-o": ("one_packet", True),
    "--ops": ("one_packet", True),
    "ops": ("one_packet", True),  # ipvsadm before 1.27 saved "ops"
    "-g": ("forwarding", "gate"),
    "--gatewaying": ("forwarding", "gate"),
    "-m": ("forwarding", "masq"),
    "--masquerading": ("forwarding", "masq"),
    "-i": ("forwarding", "ipip"),
    "--ipip": ("forwarding", "ipip"),
    "--tun-nocsum": ("tunnel_checksum", "none"),
    "--tun-csum": ("tunnel_checksum", "csum"),
    "--tun-remcsum": ("tunnel_checksum", "remcsum"),
}
_PERSISTENT_OPTIONS = ("-p", "--persistent")


class IpvsError(ValueError):
    """Input that cannot become an IPVS table; the message names the place and the fix."""


# ---------------------------------------------------------------- addresses and names


Address = namedtuple("Address", ["text", "family", "key"])

# An IPv4 address as ipaddress prints it (no leading zeros): such text is its own canonical form.
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(r"\.".join([_OCTET] * 4))


class _Where(object):
    """Where an error is ('line 3 (...)', 'config[0].real_servers[7]'), formatted only for a message."""

    __slots__ = ("args", "template")

    def __init__(self, template, *args):
        self.template = template
        self.args = args

    def __str__(self):
        return self.template % self.args


@functools.lru_cache(maxsize=None)
def _parse_address(text):
    """An address in canonical text, its family and a sort key; each text is parsed once."""
    match = _CANONICAL_IPV4.fullmatch(text)
    if match:  # what ipaddress would return, without building its objects
        a, b, c, d = match.groups()
        return Address(text, "ipv4", (4, int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d)))
    ip = ipaddress.ip_address(text)
    return Address(str(ip), "ipv6" if ip.version == 6 else "ipv4", (ip.version, int(ip)))


def _address(text, where):
    try:
        return _parse_address(str(text).strip())
    except ValueError:
        raise IpvsError(
            "%s: %r is not an IP address (ipvsadm -n prints numeric addresses)" % (where, text)
        ) from None


def _int(text, low, high, where, what):
    if isinstance(text, int) and not isinstance(text, bool):  # as it is; str(True) is no number
        value = text
    else:
        try:
            value = int(str(text), 10)
        except ValueError:
            raise IpvsError("%s: %s %r is not a number" % (where, what, text)) from None
    if not low <= value <= high:
        raise IpvsError("%s: %s %d is outside %d..%d" % (where, what, value, low, high))
    return value


# split_host_port's answers by text: ipvsadm's listings name each real server twice, and the
# module reads the table again after a change.
_HOST_PORTS = {}


def split_host_port(text, where):
    """'10.0.0.1:80' / '[2001:db8::1]:80' / '10.0.0.1' -> (canonical address, port or None)."""
    known = _HOST_PORTS.get(text)
    if known is not None:
        return known
    key = text
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise IpvsError("%s: %r is not [IPv6]:port" % (where, text))
        port = rest[1:] or None
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, None
    address = _address(host, where).text
    if port is not None:
        port = _int(port, 0, 65535, where, "port")
    _HOST_PORTS[key] = address, port
    return address, port


def host_port(address, port):
    if ":" in address:
        return "[%s]:%d" % (address, port)
    return "%s:%d" % (address, port)


def canonical_netmask(value, family, where):
    """Persistence granularity as ipvsadm prints it: dotted for IPv4, a prefix length for IPv6."""
    if value is None:
        return _FULL_NETMASK[family]
    text = str(value).strip().lstrip("/")
    if family == "ipv6":
        return str(_int(text, 1, 128, where, "IPv6 netmask (prefix length)"))
    try:
        return str(ipaddress.IPv4Network("0.0.0.0/%s" % text).netmask)
    except ValueError:
        raise IpvsError(
            "%s: netmask %r is neither a dotted netmask nor a prefix length" % (where, value)
        ) from None


def service_spec(service):
    """The service as ipvsadm names it on a command line: '-t 10.0.0.1:80', '-f 7 -6'."""
    if service["protocol"] == "fwmark":
        return "-f %d%s" % (service["fwmark"], " -6" if service["family"] == "ipv6" else "")
    return "%s %s" % (_SERVICE_SWITCH[service["protocol"]], host_port(service["address"], service["port"]))


def real_spec(real):
    return host_port(real["address"], real["port"])


# A real server's identity within its service. Tables and resolved configs hold canonical
# addresses, so this names a real server as real_spec does, without formatting it.
_real_key = itemgetter("address", "port")


def default_real_port(service):
    """The port ipvsadm gives a real server named without one: the service's (0 for fwmark)."""
    return service["port"] if service["protocol"] != "fwmark" else 0


def new_service(identity):
    """A service with ipvsadm's defaults: what ``ipvsadm -A <service>`` alone creates."""
    service = {key: identity.get(key) for key in SERVICE_IDENTITY}
    service.update(
        scheduler=DEFAULT_SCHEDULER,
        scheduler_flags=[],
        persistent=0,
        netmask=_FULL_NETMASK[service["family"]],
        persistence_engine=None,
        one_packet=False,
        real_servers=[],
    )
    return service


def new_real(address, port):
    """A real server with ipvsadm's defaults: what ``ipvsadm -a ... -r <address:port>`` alone adds."""
    return {
        "address": address,
        "port": port,
        "forwarding": "gate",
        "weight": 1,
        "u_threshold": 0,
        "l_threshold": 0,
        "tunnel_type": None,
        "tunnel_port": None,
        "tunnel_checksum": None,
    }


def _service_sort_key(service):
    if service["protocol"] == "fwmark":
        where = (0, service["fwmark"])
    else:
        where = (_parse_address(service["address"]).key[1], service["port"])
    return (_PROTOCOL_ORDER[service["protocol"]], service["family"], where)


def _real_sort_key(real):
    return (_parse_address(real["address"]).key, real["port"])


def sort_table(services):
    """Services and their real servers in one stable order, so equal tables render equally."""
    ordered = []
    for service in sorted(services, key=_service_sort_key):
        service = dict(service, real_servers=sorted(service["real_servers"], key=_real_sort_key))
        ordered.append(service)
    return ordered


# ---------------------------------------------------------------- parsing ipvsadm output


def _tokenize(line):
    if "#" not in line and "=" not in line:  # as ipvsadm -S prints every line
        tokens = line.split()
    else:
        tokens = []
        for token in line.split("#", 1)[0].split():
            if token.startswith("--") and "=" in token:
                tokens.extend(token.split("=", 1))
            else:
                tokens.append(token)
    if tokens and tokens[0] == "ipvsadm":
        tokens = tokens[1:]
    return tokens


def _parse_rule(tokens, where):
    """One ipvsadm command line -> (command, {option: raw value})."""
    command = None
    options = {}
    index = 0
    count = len(tokens)
    while index < count:
        token = tokens[index]
        index += 1
        if token in _COMMANDS and command is None:
            command = _COMMANDS[token]
        elif token in _SERVICE_OPTIONS:
            if index == count:
                raise IpvsError("%s: %s needs a value" % (where, token))
            options["protocol"] = _SERVICE_OPTIONS[token]
            options["service"] = tokens[index]
            index += 1
        elif token in _PERSISTENT_OPTIONS:
            # popt's optional argument: a following number is the timeout.
            if index < count and tokens[index].isdigit():
                options["persistent"] = tokens[index]
                index += 1
            else:
                options["persistent"] = str(DEFAULT_PERSISTENT_TIMEOUT)
        elif token in _VALUE_OPTIONS:
            if index == count:
                raise IpvsError("%s: %s needs a value" % (where, token))
            options[_VALUE_OPTIONS[token]] = tokens[index]
            index += 1
        elif token in _FLAG_OPTIONS:
            name, value = _FLAG_OPTIONS[token]
            options[name] = value
        else:
            raise IpvsError("%s: unexpected %r (only -A and -a rules are read)" % (where, token))
    if command is None:
        raise IpvsError("%s: no -A or -a command" % where)
    if "protocol" not in options:
        raise IpvsError("%s: no virtual service (-t, -u, --sctp-service or -f)" % where)
    return command, options


def _identity_from_rule(options, where):
    identity = {"protocol": options["protocol"], "address": None, "port": None, "fwmark": None}
    if identity["protocol"] == "fwmark":
        identity["fwmark"] = _int(options["service"], 1, MAX_FWMARK, where, "fwmark")
        identity["family"] = options.get("family", "ipv4")
    else:
        address, port = split_host_port(options["service"], where)
        if port is None:
            raise IpvsError("%s: virtual service %r has no port" % (where, options["service"]))
        identity.update(address=address, port=port, family=_parse_address(address).family)
    return identity


def _service_from_rule(options, where):
    service = new_service(_identity_from_rule(options, where))
    service["scheduler"] = options.get("scheduler", DEFAULT_SCHEDULER)
    if "scheduler_flags" in options:
        service["scheduler_flags"] = sorted(set(options["scheduler_flags"].split(",")))
    if "persistent" in options:
        service["persistent"] = _int(options["persistent"], 1, MAX_PERSISTENT_TIMEOUT, where, "persistent")
        service["netmask"] = canonical_netmask(options.get("netmask"), service["family"], where)
    service["persistence_engine"] = options.get("persistence_engine")
    service["one_packet"] = bool(options.get("one_packet"))
    return service


def _real_from_rule(options, service, where):
    if "real" not in options:
        raise IpvsError("%s: -a without -r" % where)
    address, port = split_host_port(options["real"], where)
    real = new_real(address, default_real_port(service) if port is None else port)
    real["forwarding"] = options.get("forwarding", "gate")
    if "weight" in options:
        real["weight"] = _int(options["weight"], 0, MAX_WEIGHT, where, "weight")
    if "u_threshold" in options:
        real["u_threshold"] = _int(options["u_threshold"], 0, MAX_THRESHOLD, where, "u_threshold")
    if "l_threshold" in options:
        real["l_threshold"] = _int(options["l_threshold"], 0, MAX_THRESHOLD, where, "l_threshold")
    if real["forwarding"] == "ipip":
        real["tunnel_type"] = options.get("tunnel_type", "ipip")
        if real["tunnel_type"] == "gue":
            real["tunnel_port"] = _int(options.get("tunnel_port"), 1, 65535, where, "tunnel port")
            real["tunnel_checksum"] = options.get("tunnel_checksum", "none")
    return real


# An -a line as ipvsadm -S prints those of direct routing and NAT, most of a big table.
_SAVED_REAL = re.compile(r"-a (-t|-u|--sctp-service|-f) ([^\s#=]+) -r ([^\s#=]+) -([gm]) -w ([0-9]+)")
_SAVED_FORWARDING = {"g": "gate", "m": "masq"}


def parse_rules(text):
    """Parse ``ipvsadm -Sn`` output (or a rules file for ``ipvsadm -R``) into services.

    Only -A and -a lines are read. '#' starts a comment, as in the rules files Debian's init
    script filters with ``grep -v "^#"`` (ipvsadm -R itself refuses comments). The thresholds,
    which ``ipvsadm -S`` does not print, stay 0 unless the lines carry -x/-y.
    """
    services = {}
    specs = {}  # the service as the lines name it -> its spec: the -a lines of a service name it alike
    for number, line in enumerate(text.splitlines(), 1):
        saved = _SAVED_REAL.fullmatch(line)
        if saved:  # what _parse_rule makes of such a line, without its general loop
            switch, service, real, forwarding, weight = saved.groups()
            command = "-a"
            options = {
                "protocol": _SERVICE_OPTIONS[switch],
                "service": service,
                "real": real,
                "forwarding": _SAVED_FORWARDING[forwarding],
                "weight": weight,
            }
            where = _Where("line %d (%s)", number, line)
        else:
            tokens = _tokenize(line)
            if not tokens:
                continue
            where = _Where("line %d (%s)", number, line.strip())
            command, options = _parse_rule(tokens, where)
        named = (options["protocol"], options["service"], options.get("family"))
        spec = specs.get(named)
        if spec is None:
            spec = specs[named] = service_spec(_identity_from_rule(options, where))
        if command == "-A":
            if spec in services:
                raise IpvsError("%s: virtual service %s is defined twice" % (where, spec))
            services[spec] = _service_from_rule(options, where)
            continue
        if spec not in services:
            raise IpvsError("%s: real server for %s before its -A line" % (where, spec))
        real = _real_from_rule(options, services[spec], where)
        services[spec]["real_servers"].append(real)
    return sort_table(services.values())


def parse_thresholds(text):
    """Parse ``ipvsadm -Ln --thresholds`` into {(service spec, real spec): (upper, lower)}."""
    thresholds = {}
    spec = None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        first = fields[0]
        if first == "->":
            if len(fields) >= 4 and fields[2].isdigit():
                where = _Where("line %d (%s)", number, line.strip())
                if spec is None:
                    raise IpvsError("%s: real server before any virtual service" % where)
                address, port = split_host_port(fields[1], where)
                thresholds[(spec, host_port(address, port))] = (int(fields[2]), int(fields[3]))
        elif first in _LIST_PROTOCOLS:
            address, port = split_host_port(fields[1], _Where("line %d (%s)", number, line.strip()))
            spec = service_spec({"protocol": _LIST_PROTOCOLS[first], "address": address, "port": port})
        elif first == "FWM":
            family = "ipv6" if len(fields) > 2 and fields[2] == "IPv6" else "ipv4"
            fwmark = _int(fields[1], 1, MAX_FWMARK, _Where("line %d (%s)", number, line.strip()), "fwmark")
            spec = service_spec({"protocol": "fwmark", "fwmark": fwmark, "family": family})
    return thresholds


def read_table(save_text, thresholds_text=""):
    """The live table from ``ipvsadm -Sn`` and ``ipvsadm -Ln --thresholds`` output."""
    services = parse_rules(save_text)
    thresholds = parse_thresholds(thresholds_text)
    for service in services:
        spec = service_spec(service)
        for real in service["real_servers"]:
            real["u_threshold"], real["l_threshold"] = thresholds.get((spec, real_spec(real)), (0, 0))
    return services


# ---------------------------------------------------------------- wanted state


def _wanted_identity(entry, where):
    protocol = entry.get("protocol") or "tcp"
    family = entry.get("family")
    if protocol == "fwmark":
        if entry.get("address") is not None or entry.get("port") is not None:
            raise IpvsError("%s: a fwmark service has no address or port; drop them or use tcp/udp" % where)
        if entry.get("fwmark") is None:
            raise IpvsError("%s: protocol fwmark needs fwmark" % where)
        fwmark = _int(entry["fwmark"], 1, MAX_FWMARK, where, "fwmark")
        return {
            "protocol": protocol,
            "address": None,
            "port": None,
            "fwmark": fwmark,
            "family": family or "ipv4",
        }
    if entry.get("fwmark") is not None:
        raise IpvsError("%s: fwmark needs protocol fwmark" % where)
    if entry.get("address") is None or entry.get("port") is None:
        raise IpvsError("%s: protocol %s needs address and port" % (where, protocol))
    address = _address(entry["address"], where)
    if family is not None and family != address.family:
        raise IpvsError("%s: family %s does not match address %s" % (where, family, address.text))
    port = _int(entry["port"], 0, 65535, where, "port")
    return {
        "protocol": protocol,
        "address": address.text,
        "port": port,
        "fwmark": None,
        "family": address.family,
    }


def _wanted_real(entry, service, where):
    address = _address(entry.get("address"), where).text
    port = entry.get("port")
    port = default_real_port(service) if port is None else _int(port, 0, 65535, where, "port")
    real = {"address": address, "port": port}
    for key in REAL_ATTRS:
        real[key] = entry.get(key)
    return real


def wanted_services(config):
    """Resolve the identities in a module's ``config``; attributes stay as given (None = not given).

    ``real_servers`` stays None when not given, so ``merged`` can tell "keep" from "none".
    """
    wanted = []
    seen = {}
    for index, entry in enumerate(config or []):
        where = "config[%d]" % index
        service = _wanted_identity(entry, where)
        spec = service_spec(service)
        if spec in seen:
            raise IpvsError(
                "%s: virtual service %s is already listed in %s; list it once" % (where, spec, seen[spec])
            )
        seen[spec] = where
        for key in SERVICE_ATTRS:
            service[key] = entry.get(key)
        if service["netmask"] is not None:
            service["netmask"] = canonical_netmask(service["netmask"], service["family"], where)
        if service["scheduler_flags"] is not None:
            service["scheduler_flags"] = sorted(set(service["scheduler_flags"]))
        reals = entry.get("real_servers")
        if reals is not None:
            reals = [
                _wanted_real(real, service, _Where("%s.real_servers[%d]", where, i))
                for i, real in enumerate(reals)
            ]
            real_seen = {}
            for i, real in enumerate(reals):
                key = _real_key(real)
                if key in real_seen:
                    raise IpvsError(
                        "%s.real_servers[%d]: real server %s of %s is already listed in real_servers[%d]; "
                        "list it once" % (where, i, real_spec(real), spec, real_seen[key])
                    )
                real_seen[key] = i
        service["real_servers"] = reals
        service["where"] = where
        wanted.append(service)
    return wanted


def _merge_service(base, wanted):
    service = dict(base) if base is not None else new_service(wanted)
    for key in SERVICE_ATTRS:
        if wanted[key] is not None:
            service[key] = wanted[key]
    if wanted["scheduler_flags"] is None and service["scheduler"] != (base or {}).get("scheduler"):
        service["scheduler_flags"] = []  # flags belong to the scheduler they were set for
    if not service["persistent"]:
        if wanted["netmask"] not in (None, _FULL_NETMASK[service["family"]]):
            raise IpvsError("%s: netmask needs persistent (a timeout in seconds)" % wanted["where"])
        service["netmask"] = _FULL_NETMASK[service["family"]]
    _check_service(service, wanted["where"])
    return service


def _check_service(service, where):
    spec = service_spec(service)
    allowed = SCHEDULER_FLAGS.get(service["scheduler"], ())
    for flag in service["scheduler_flags"]:
        if flag not in allowed:
            raise IpvsError(
                "%s: scheduler flag %s does not apply to scheduler %s of %s (allowed: %s)"
                % (where, flag, service["scheduler"], spec, ", ".join(allowed) or "none")
            )
    _int(service["persistent"], 0, MAX_PERSISTENT_TIMEOUT, where, "persistent")
    if service["protocol"] != "fwmark" and service["port"] == 0 and not service["persistent"]:
        raise IpvsError(
            "%s: %s has port 0 (all ports), which ipvsadm allows only with persistent" % (where, spec)
        )
    if service["one_packet"] and service["protocol"] not in ("udp", "fwmark"):
        raise IpvsError(
            "%s: one_packet scheduling is only for udp and fwmark services, not %s" % (where, spec)
        )


def _merge_real(base, wanted, service, where):
    real = dict(base) if base is not None else new_real(wanted["address"], wanted["port"])
    for key in REAL_ATTRS:
        value = wanted.get(key)
        if value is not None:
            real[key] = value
    if real["forwarding"] != "ipip":
        given_tunnel = [key for key in TUNNEL_ATTRS if wanted.get(key) is not None]
        if given_tunnel:
            raise IpvsError("%s: %s applies only to forwarding ipip" % (where, ", ".join(given_tunnel)))
        real["tunnel_type"] = real["tunnel_port"] = real["tunnel_checksum"] = None
    else:
        real["tunnel_type"] = real["tunnel_type"] or "ipip"
        if real["tunnel_type"] == "gue":
            real["tunnel_checksum"] = real["tunnel_checksum"] or "none"
            if real["tunnel_port"] is None:
                raise IpvsError("%s: tunnel_type gue needs tunnel_port" % where)
        else:
            for key in ("tunnel_port", "tunnel_checksum"):
                if wanted.get(key) is not None:
                    raise IpvsError("%s: %s applies only to tunnel_type gue" % (where, key))
            real.update(tunnel_port=None, tunnel_checksum=None)
    _check_real(real, service, where)
    return real


def _real_name(real, service):
    return "real server %s of %s" % (real_spec(real), service_spec(service))


def _check_real(real, service, where):
    family = _parse_address(real["address"]).family
    _int(real["weight"], 0, MAX_WEIGHT, where, "weight")
    _int(real["u_threshold"], 0, MAX_THRESHOLD, where, "u_threshold")
    _int(real["l_threshold"], 0, MAX_THRESHOLD, where, "l_threshold")
    if real["l_threshold"] > real["u_threshold"]:
        raise IpvsError(
            "%s: l_threshold %d of %s is above its u_threshold %d (the kernel refuses it)"
            % (where, real["l_threshold"], _real_name(real, service), real["u_threshold"])
        )
    if family != service["family"] and real["forwarding"] != "ipip":
        raise IpvsError(
            "%s: %s is %s in an %s service; only forwarding ipip crosses address families"
            % (where, _real_name(real, service), family, service["family"])
        )
    if (
        service["protocol"] != "fwmark"
        and real["forwarding"] in ("gate", "ipip")
        and real["port"] != service["port"]
    ):
        raise IpvsError(
            "%s: %s cannot use another port than the service with forwarding %s "
            "(ipvsadm forces port %d); use forwarding masq to map ports"
            % (where, _real_name(real, service), real["forwarding"], service["port"])
        )


# ---------------------------------------------------------------- reconciling


STATES = ("merged", "replaced", "overridden", "deleted")


def reconcile(current, wanted, state):
    """The complete table after applying ``wanted`` (from ``wanted_services``) in ``state``.

    merged      listed services and real servers are added or updated with the attributes
                given; nothing is removed.
    replaced    each listed service becomes exactly as given (omitted attributes take
                ipvsadm's defaults, unlisted real servers of it go); other services stay.
    overridden  the table becomes exactly the list: unlisted services go too.
    deleted     listed services go; a listed service with real_servers loses only those;
                an empty list clears the table.
    """
    if state not in STATES:
        raise IpvsError("unknown state %r" % state)
    if state == "deleted":
        return _deleted(current, wanted)
    table = {} if state == "overridden" else {service_spec(s): s for s in current}
    existing = {service_spec(s): s for s in current}
    for entry in wanted:
        spec = service_spec(entry)
        base = existing.get(spec) if state == "merged" else None
        service = _merge_service(base, entry)
        reals = {}
        if base is not None:
            reals = {_real_key(real): real for real in base["real_servers"]}
        for index, real in enumerate(entry["real_servers"] or []):
            where = _Where("%s.real_servers[%d]", entry["where"], index)
            key = _real_key(real)
            reals[key] = _merge_real(reals.get(key), real, service, where)
        service["real_servers"] = list(reals.values())
        table[spec] = service
    return sort_table(table.values())


def _deleted(current, wanted):
    if not wanted:
        return []
    table = {service_spec(s): s for s in current}
    for entry in wanted:
        spec = service_spec(entry)
        if spec not in table:
            continue
        if not entry["real_servers"]:
            del table[spec]
            continue
        gone = {real_spec(real) for real in entry["real_servers"]}
        service = table[spec]
        table[spec] = dict(
            service, real_servers=[r for r in service["real_servers"] if real_spec(r) not in gone]
        )
    return sort_table(table.values())


# ---------------------------------------------------------------- rendering


def render_service(command, service):
    """An -A/-E line carrying every attribute (-E resets what it does not name)."""
    words = [command, service_spec(service), "-s", service["scheduler"]]
    if service["scheduler_flags"]:
        words += ["-b", ",".join(service["scheduler_flags"])]
    if service["persistent"]:
        words += ["-p", str(service["persistent"])]
        if service["netmask"] != _FULL_NETMASK[service["family"]]:
            words += ["-M", service["netmask"]]
    if service["persistence_engine"]:
        words += ["--pe", service["persistence_engine"]]
    if service["one_packet"]:
        words.append("-o")
    return " ".join(words)


def render_real(command, spec, real):
    """An -a/-e line for the real server of the service `spec` (its service_spec), carrying every
    attribute (-e resets what it does not name)."""
    line = "%s %s -r %s %s -w %s" % (
        command,
        spec,
        real_spec(real),
        _FORWARDING_SWITCH[real["forwarding"]],
        real["weight"],
    )
    if real["u_threshold"]:
        line += " -x %s" % real["u_threshold"]
    if real["l_threshold"]:
        line += " -y %s" % real["l_threshold"]
    if real["tunnel_type"] == "gue":
        line += " --tun-type gue --tun-port %s %s" % (
            real["tunnel_port"],
            _CHECKSUM_SWITCH[real["tunnel_checksum"]],
        )
    return line


def render_rules(services):
    """The table as ipvsadm -R input: ``ipvsadm -Sn`` lines plus the thresholds it leaves out."""
    lines = []
    for service in sort_table(services):
        lines.append(render_service("-A", service))
        spec = service_spec(service)
        lines.extend(render_real("-a", spec, real) for real in service["real_servers"])
    return "".join(line + "\n" for line in lines)


_service_attrs = itemgetter(*SERVICE_ATTRS)
_real_attrs = itemgetter(*REAL_ATTRS)


def plan(current, after):
    """Lines for one ``ipvsadm -R`` batch that turn ``current`` into ``after``; [] when equal.

    Lines follow the order of the tables (``read_table`` and ``reconcile`` sort them).
    Existing services and real servers are edited in place (-E/-e), never deleted and added
    again, so their connections and persistence templates survive a change of scheduler,
    persistence, weight, thresholds or forwarding method. Make before break: additions come
    first, then edits, then removals, so a service being re-populated is never left empty.
    """
    before = {service_spec(s): s for s in current}
    add_services, edit_services, add_reals, edit_reals, del_reals, del_services = [], [], [], [], [], []
    for service in after:
        spec = service_spec(service)
        old = before.get(spec)
        if old is None:
            add_services.append(render_service("-A", service))
            add_reals.extend(render_real("-a", spec, real) for real in service["real_servers"])
            continue
        if _service_attrs(old) != _service_attrs(service):
            edit_services.append(render_service("-E", service))
        old_reals = {_real_key(real): real for real in old["real_servers"]}
        new_reals = set()
        for real in service["real_servers"]:
            key = _real_key(real)
            new_reals.add(key)
            old_real = old_reals.get(key)
            if old_real is None:
                add_reals.append(render_real("-a", spec, real))
            elif old_real is not real and _real_attrs(old_real) != _real_attrs(real):
                edit_reals.append(render_real("-e", spec, real))
        for real in old["real_servers"]:
            if _real_key(real) not in new_reals:
                del_reals.append("-d %s -r %s" % (spec, real_spec(real)))
    after_specs = {service_spec(s) for s in after}
    for service in current:
        if service_spec(service) not in after_specs:
            del_services.append("-D %s" % service_spec(service))
    return add_services + edit_services + add_reals + edit_reals + del_reals + del_services
