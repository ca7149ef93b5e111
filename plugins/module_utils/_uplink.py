# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Uplink probing and failover logic, shared by the uplink_check module, the uplink_failover
role's validation filter and the failover daemon (the role installs this very file next to it).
Python standard library only: it runs on the target without Ansible.

Why probes are pinned at layer 2: an echo request is written as a whole Ethernet frame to a packet
socket on the uplink's interface, addressed to the gateway's MAC address (found with an ARP request
on that interface). No routing table is consulted, so the probe leaves through that uplink whatever
the main table, policy rules or the failover itself did to the routes, and nothing on the host is
changed to send it: probing is read-only and safe in check mode. The gateway masquerades the probe
and returns the reply to the interface's own address, where the same packet socket reads it.

The failover decision (UplinkFailover) is a pure class over probe outcomes and a clock.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import socket
import struct
import time
from collections import namedtuple

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
PACKET_OUTGOING = 4
SIOCGIFADDR = 0x8915
SIOCGIFHWADDR = 0x8927
BROADCAST_MAC = b"\xff" * 6

# -- wire formats (pure) ---------------------------------------------------------------------------


def checksum(data):
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident, seq, payload=b"hakit-uplink"):
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload


def ipv4_packet(source, destination, payload, ident=0, ttl=64, protocol=1):
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        0x4000,
        ttl,
        protocol,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def ethernet_frame(destination_mac, source_mac, ethertype, payload):
    return destination_mac + source_mac + struct.pack("!H", ethertype) + payload


def arp_request(source_mac, source_ip, target_ip):
    """A broadcast ARP request frame asking who has `target_ip`."""
    arp = struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETH_P_IP,
        6,
        4,
        1,
        source_mac,
        socket.inet_aton(source_ip),
        b"\0" * 6,
        socket.inet_aton(target_ip),
    )
    return ethernet_frame(BROADCAST_MAC, source_mac, ETH_P_ARP, arp)


def gratuitous_arp(source_mac, address):
    """A broadcast gratuitous ARP request announcing that `address` is at `source_mac`."""
    return arp_request(source_mac, address, address)


def announce_address(interface, address):
    """Send a gratuitous ARP for `address` on `interface`, so neighbours (the router) update their
    ARP cache at once, as IPaddr2's send_arp does for a service address."""
    mac = interface_addresses(interface)[0]
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        sock.bind((interface, ETH_P_ARP))
        sock.send(gratuitous_arp(mac, address))
    finally:
        sock.close()


def parse_arp_reply(frame, target_ip):
    """The MAC address (bytes) in an ARP reply frame from `target_ip`, else None."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_ARP:
        return None
    op = struct.unpack("!H", frame[20:22])[0]
    sender_mac, sender_ip = frame[22:28], socket.inet_ntoa(frame[28:32])
    if op == 2 and sender_ip == target_ip:
        return sender_mac
    return None


def parse_echo_reply(frame, ident, destination):
    """(source address, sequence) of an ICMP echo reply in an Ethernet frame that carries our
    identifier and is addressed to `destination`; None for any other frame."""
    if len(frame) < 42 or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP:
        return None
    ip = frame[14:]
    ihl = (ip[0] & 0x0F) * 4
    if ip[0] >> 4 != 4 or ip[9] != 1 or len(ip) < ihl + 8:
        return None
    if socket.inet_ntoa(ip[16:20]) != destination:
        return None
    icmp_type, _code, _sum, reply_ident, seq = struct.unpack("!BBHHH", ip[ihl : ihl + 8])
    if icmp_type != 0 or reply_ident != ident:
        return None
    return socket.inet_ntoa(ip[12:16]), seq


def format_mac(mac):
    return ":".join("%02x" % b for b in bytearray(mac))


# -- probe outcomes (pure) -------------------------------------------------------------------------


def summarize(targets, sent, rtts, min_targets=1):
    """Reachability, loss and round-trip per target and overall.

    `sent` is the number of echo requests sent to each target, `rtts` maps a target to the
    round-trip times (seconds) of the replies received. A target is reachable when at least one
    reply came back; the uplink is reachable when at least `min_targets` targets are (k of n).
    """
    per_target = []
    for target in targets:
        times = sorted(rtts.get(target, []))
        received = len(times)
        per_target.append(
            {
                "address": target,
                "sent": sent,
                "received": received,
                "loss_percent": round(100.0 * (sent - received) / sent, 1) if sent else 100.0,
                "reachable": received > 0,
                "rtt_min_ms": round(times[0] * 1000, 3) if times else None,
                "rtt_avg_ms": round(sum(times) * 1000 / received, 3) if times else None,
                "rtt_max_ms": round(times[-1] * 1000, 3) if times else None,
            }
        )
    all_times = [t for target in targets for t in rtts.get(target, [])]
    total_sent = sent * len(targets)
    reachable_targets = sum(1 for t in per_target if t["reachable"])
    return {
        "reachable": reachable_targets >= min_targets,
        "reachable_targets": reachable_targets,
        "min_targets": min_targets,
        "sent": total_sent,
        "received": len(all_times),
        "loss_percent": round(100.0 * (total_sent - len(all_times)) / total_sent, 1) if total_sent else 100.0,
        "rtt_avg_ms": round(sum(all_times) * 1000 / len(all_times), 3) if all_times else None,
        "targets": per_target,
    }


# -- probing (sockets) -----------------------------------------------------------------------------


def interface_addresses(interface):
    """(MAC bytes, primary IPv4 address) of `interface`; raises OSError if it has none."""
    name = struct.pack("256s", interface[:15].encode())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        mac = fcntl.ioctl(sock.fileno(), SIOCGIFHWADDR, name)[18:24]
        address = socket.inet_ntoa(fcntl.ioctl(sock.fileno(), SIOCGIFADDR, name)[20:24])
    finally:
        sock.close()
    return mac, address


class UplinkProber(object):
    """Probes targets through one uplink: frames leave `interface` addressed to `gateway`'s MAC."""

    def __init__(self, interface, gateway, source=None, clock=time.monotonic):
        self.interface = interface
        self.gateway = gateway
        self.source = source
        self.clock = clock
        self.ident = (os.getpid() ^ id(self)) & 0xFFFF
        self.seq = 0
        self.gateway_mac = None

    def _socket(self, ethertype):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype))
        sock.bind((self.interface, ethertype))
        return sock

    def resolve_gateway(self, timeout):
        """The gateway's MAC through an ARP request on the interface (None if it does not answer)."""
        mac, address = interface_addresses(self.interface)
        sock = self._socket(ETH_P_ARP)
        try:
            sock.send(arp_request(mac, self.source or address, self.gateway))
            deadline = self.clock() + timeout
            while True:
                left = deadline - self.clock()
                if left <= 0 or not select.select([sock], [], [], left)[0]:
                    return None
                found = parse_arp_reply(sock.recv(2048), self.gateway)
                if found:
                    return found
        finally:
            sock.close()

    def probe(self, targets, count=1, timeout=1.0, interval=0.2, min_targets=1):
        """Send `count` echo requests to each target (`interval` s apart), wait up to `timeout` s
        for each reply; returns summarize()'s dict plus the gateway MAC and any error."""
        rtts = dict((t, []) for t in targets)
        try:
            mac, address = interface_addresses(self.interface)
        except OSError as e:
            return dict(summarize(targets, count, rtts, min_targets), error="%s: %s" % (self.interface, e))
        source = self.source or address
        if self.gateway_mac is None:
            self.gateway_mac = self.resolve_gateway(timeout)
        if self.gateway_mac is None:
            result = summarize(targets, count, rtts, min_targets)
            result["error"] = "gateway %s does not answer ARP on %s" % (self.gateway, self.interface)
            return result
        sock = self._socket(ETH_P_IP)
        pending = {}
        try:
            for round_index in range(count):
                for target in targets:
                    self.seq = (self.seq + 1) & 0xFFFF
                    packet = ipv4_packet(source, target, echo_request(self.ident, self.seq), ident=self.seq)
                    pending[self.seq] = (target, self.clock())
                    sock.send(ethernet_frame(self.gateway_mac, mac, ETH_P_IP, packet))
                last = round_index == count - 1
                until = self.clock() + (timeout if last else interval)
                while pending:
                    left = until - self.clock()
                    if left <= 0 or not select.select([sock], [], [], left)[0]:
                        break
                    frame, where = sock.recvfrom(4096)
                    if where[2] == PACKET_OUTGOING:
                        continue
                    reply = parse_echo_reply(frame, self.ident, source)
                    if reply and reply[1] in pending and pending[reply[1]][0] == reply[0]:
                        target, sent_at = pending.pop(reply[1])
                        rtts[target].append(self.clock() - sent_at)
        finally:
            sock.close()
        result = summarize(targets, count, rtts, min_targets)
        result["gateway_mac"] = format_mac(self.gateway_mac)
        if not result["received"]:
            # The gateway may have been replaced: ask again next time.
            self.gateway_mac = None
        return result


# -- the failover decision (pure) -------------------------------------------------------------------

Transition = namedtuple("Transition", ["previous", "active", "reason"])


class UplinkFailover(object):
    """Which uplink carries the traffic, from one probe outcome per uplink and round.

    `names` are the uplinks in order of preference; the first is active at start. The active
    uplink is left after `fail_rounds` consecutive failed rounds for the most preferred uplink
    that answered in the last round (none answering: it stays, and `stranded` says so). A more
    preferred uplink takes over again after `good_rounds` consecutive good rounds, and not before
    the current one has been active for `hold_time` seconds. observe() returns the Transition it
    decided, with its reason, or None.
    """

    def __init__(self, names, fail_rounds=3, good_rounds=5, hold_time=10.0, clock=time.monotonic):
        if len(names) < 1 or len(set(names)) != len(names):
            raise ValueError("uplink names must be unique and at least one")
        self.names = list(names)
        self.fail_rounds = fail_rounds
        self.good_rounds = good_rounds
        self.hold_time = hold_time
        self.clock = clock
        self.active = self.names[0]
        self.since = clock()
        self.fails = dict((n, 0) for n in self.names)
        self.goods = dict((n, 0) for n in self.names)
        self.switches = 0
        self.stranded = False

    def observe(self, up, detail=None):
        """`up` maps every uplink name to whether it was reachable this round; `detail` optionally
        maps a name to a short description of its round (used in reasons)."""
        detail = detail or {}
        for name in self.names:
            if up[name]:
                self.goods[name] += 1
                self.fails[name] = 0
            else:
                self.fails[name] += 1
                self.goods[name] = 0
        active = self.active
        now = self.clock()
        if self.fails[active] >= self.fail_rounds:
            usable = [n for n in self.names if n != active and self.goods[n] > 0]
            self.stranded = not usable
            if usable:
                reason = "%s failed %d consecutive rounds%s; %s answers" % (
                    active,
                    self.fails[active],
                    " (%s)" % detail[active] if detail.get(active) else "",
                    usable[0],
                )
                return self._switch(usable[0], now, reason)
            return None
        self.stranded = False
        held = now - self.since
        for name in self.names[: self.names.index(active)]:
            if self.goods[name] >= self.good_rounds and held >= self.hold_time:
                reason = "%s answered %d consecutive rounds and %s was active %.1f s (hold %.1f s)" % (
                    name,
                    self.goods[name],
                    active,
                    held,
                    self.hold_time,
                )
                return self._switch(name, now, reason)
        return None

    def _switch(self, name, now, reason):
        transition = Transition(self.active, name, reason)
        self.active = name
        self.since = now
        self.switches += 1
        return transition


# -- settings (pure) -------------------------------------------------------------------------------


def _ipv4(value):
    try:
        return ipaddress.IPv4Address(str(value))
    except ValueError:
        return None


def config_problems(cfg, var="uplink_failover_"):
    """Mistakes in the failover settings, each naming the variable and the fix; [] if none.

    `cfg` holds the role's variables without the prefix (uplinks, interval, timeout, fail_rounds,
    good_rounds, hold_time, dyndns2, rfc2136) and optionally `interfaces`, the interface names
    the host has (or will have). The daemon checks its configuration file with the same rules.
    """
    problems = []
    uplinks = cfg.get("uplinks") or []
    interfaces = cfg.get("interfaces")
    if len(uplinks) < 2:
        problems.append("%suplinks: list at least two uplinks (the preferred one first)" % var)
    names = [u.get("name") for u in uplinks]
    for i, uplink in enumerate(uplinks):
        where = "%suplinks[%d] (%s)" % (var, i, uplink.get("name"))
        if names.count(uplink.get("name")) > 1:
            problems.append("%s: the name is used twice; give each uplink its own name" % where)
        if interfaces is not None and uplink.get("interface") not in interfaces:
            problems.append(
                "%s: interface %s does not exist on this host; use one of %s"
                % (where, uplink.get("interface"), ", ".join(sorted(interfaces)))
            )
        if _ipv4(uplink.get("gateway")) is None:
            problems.append(
                "%s: gateway %r is not an IPv4 address; set the router's LAN address"
                % (where, uplink.get("gateway"))
            )
        targets = uplink.get("targets") or []
        if not targets:
            problems.append("%s: targets is empty; list addresses beyond the router to probe" % where)
        for target in targets:
            if _ipv4(target) is None:
                problems.append("%s: target %r is not an IPv4 address" % (where, target))
        if str(uplink.get("gateway")) in [str(t) for t in targets]:
            problems.append(
                "%s: the gateway itself is a target; it answers while its uplink is dead, probe beyond it"
                % where
            )
        need = uplink.get("min_targets", 1)
        if not 1 <= need <= max(len(targets), 1):
            problems.append(
                "%s: min_targets %s must be between 1 and the number of targets (%d)"
                % (where, need, len(targets))
            )
        service = uplink.get("service_address")
        if service:
            if i == 0:
                problems.append(
                    "%s: service_address on the preferred uplink; heartbeat's IPaddr2 resource owns that address, set it on a backup uplink only"
                    % where
                )
            try:
                ipaddress.IPv4Interface(str(service))
                if "/" not in str(service):
                    raise ValueError
            except ValueError:
                problems.append(
                    "%s: service_address %r must be ADDRESS/PREFIX, e.g. 192.168.2.10/24" % (where, service)
                )
        if (cfg.get("dyndns2") or cfg.get("rfc2136")) and _ipv4(uplink.get("public_address")) is None:
            problems.append(
                "%s: public_address is needed for the DNS updates; set the uplink's public IPv4 address"
                % where
            )
    interval, timeout = cfg.get("interval", 1), cfg.get("timeout", 1)
    if not 0 < float(timeout) <= float(interval):
        problems.append(
            "%stimeout (%s) must be above 0 and not above %sinterval (%s): rounds must not overlap"
            % (var, timeout, var, interval)
        )
    for key in ("fail_rounds", "good_rounds"):
        if int(cfg.get(key, 1)) < 1:
            problems.append("%s%s must be at least 1" % (var, key))
    if float(cfg.get("hold_time", 0)) < 0:
        problems.append("%shold_time must not be negative" % var)
    for i, update in enumerate(cfg.get("dyndns2") or []):
        where = "%sdyndns2[%d]" % (var, i)
        if not str(update.get("url", "")).startswith(("http://", "https://")):
            problems.append("%s: url must start with http:// or https://" % where)
        for key in ("hostname", "username", "password"):
            if not update.get(key):
                problems.append(
                    "%s: %s is empty; set it (the password from an ansible-vault variable)" % (where, key)
                )
    for i, update in enumerate(cfg.get("rfc2136") or []):
        where = "%srfc2136[%d]" % (var, i)
        for key in ("server", "zone", "record", "key_name", "key_secret"):
            if not update.get(key):
                problems.append(
                    "%s: %s is empty; set it (key_secret from an ansible-vault variable)" % (where, key)
                )
        if (
            update.get("record")
            and update.get("zone")
            and not str(update["record"]).rstrip(".").endswith(str(update["zone"]).rstrip("."))
        ):
            problems.append("%s: record %s is not inside zone %s" % (where, update["record"], update["zone"]))
    return problems
