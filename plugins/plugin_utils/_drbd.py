# Copyright: contributors to hakit.cluster
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The drbd role's cross-field rules as one pure function over its variables."""

from __future__ import annotations

import ipaddress
import re

from ansible_collections.hakit.cluster.plugins.plugin_utils._heartbeat import parse_msec

# Split-brain policies that throw one node's writes away without asking anybody.
SAFE_POLICIES = {
    "after_sb_0pri": ("disconnect",),
    "after_sb_1pri": ("disconnect", "consensus"),
    "after_sb_2pri": ("disconnect",),
    "rr_conflict": ("disconnect", "call-pri-lost"),
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_DEVICE = re.compile(r"^/dev/drbd(\d+)$")

# DRBD 8.4's net defaults (drbd_limits.h), for options the inventory leaves out: seconds for
# ping-int and connect-int, tenths of a second for ping-timeout and timeout.
NET_DEFAULTS = {"ping-int": 10, "ping-timeout": 5, "timeout": 60, "connect-int": 10}
# Debian's drbddisk (drbd-utils) tries `drbdadm primary` 6 times, 1 s apart, then fails the takeover.
DRBDDISK_RETRY_S = 5
# What the group's resources before drbddisk and the drbdadm calls themselves may take.
TAKEOVER_SLACK_S = 1


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def net_problems(net, where, deadtime=None, keepalive=None):
    """The net options' own ordering rule, and whether a surviving Secondary notices a dead peer
    in time for drbddisk to promote it.

    After the Primary loses power, DRBD on the Secondary sees the connection die only when a ping
    goes unanswered: at worst ping-int + ping-timeout after the last packet. Until then `drbdadm
    primary` is refused (the peer is still Primary), and drbddisk gives up after 5 s of retries,
    which fails the whole takeover. Heartbeat starts drbddisk deadtime - keepalive after the power
    loss at the earliest; without heartbeat's timings, the check assumes it starts at once.
    """
    problems = []
    values = {}
    for key, default in NET_DEFAULTS.items():
        value = _number(net.get(key, default))
        if value is None or value <= 0:
            problems.append("%s %s must be a positive number, got %r" % (where, key, net.get(key)))
        values[key] = value
    if problems:
        return problems
    ping_int, ping_timeout = values["ping-int"], values["ping-timeout"] / 10
    timeout = values["timeout"] / 10
    if not timeout < min(ping_int, values["connect-int"]):
        problems.append(
            "%s timeout (%g s, written in tenths of a second) must be lower than ping-int (%g s) and "
            "connect-int (%g s), as DRBD requires: lower timeout or raise ping-int and connect-int"
            % (where, timeout, ping_int, values["connect-int"])
        )
    detect = ping_int + ping_timeout
    dead_ms, keep_ms = parse_msec(deadtime), parse_msec(keepalive)
    start = (dead_ms - (keep_ms or 0)) / 1000 if dead_ms else 0
    window = start + DRBDDISK_RETRY_S - TAKEOVER_SLACK_S
    if detect > window:
        problems.append(
            "%s: DRBD may need ping-int + ping-timeout = %g s to notice a peer that lost power, but "
            "drbddisk stops retrying `drbdadm primary` %g s after the takeover starts (%s), so the "
            "surviving node would give the resources up: lower ping-int to %d or less (ping-timeout "
            "is in tenths of a second)%s"
            % (
                where,
                detect,
                window,
                "heartbeat_deadtime - heartbeat_keepalive + 5 s - 1 s for the resources before it"
                if dead_ms
                else "5 s - 1 s for the resources before it, heartbeat_deadtime unknown here",
                max(1, int(window - ping_timeout)),
                "" if dead_ms else ", or set heartbeat_deadtime where this play sees it",
            )
        )
    return problems


def config_problems(cfg):
    """Messages naming the variable and the fix; empty when the settings are sound.

    ``cfg`` holds the role's variables without the ``drbd_`` prefix, plus ``nodename`` (this host's
    ``uname -n``) and, when the play knows them, ``heartbeat_deadtime`` and ``heartbeat_keepalive``.
    """
    problems = []
    nodes = list(cfg.get("nodes") or [])
    if len(nodes) != 2 or len(set(nodes)) != 2:
        problems.append(
            "drbd_nodes must name the two nodes by uname -n (defaults to heartbeat_nodes), got %r" % (nodes,)
        )
    elif cfg.get("nodename") not in nodes:
        problems.append(
            "this host's uname -n %r is not in drbd_nodes %r: list the names the hosts really have"
            % (cfg.get("nodename"), nodes)
        )
    if not cfg.get("shared_secret"):
        problems.append(
            "drbd_shared_secret is not set: put the replication link's secret in an ansible-vault "
            "file (vault_drbd_shared_secret in the example inventory)"
        )
    elif re.search(r'["\s\\]', str(cfg["shared_secret"])) or len(str(cfg["shared_secret"])) > 64:
        problems.append(
            "drbd_shared_secret must be at most 64 characters without spaces, quotes or backslashes"
        )
    if not cfg.get("allow_automatic_discard"):
        for key, safe in SAFE_POLICIES.items():
            if cfg.get(key) not in safe:
                problems.append(
                    "drbd_%s is %s, which discards one node's writes automatically after a split brain: use %s, "
                    "or set drbd_allow_automatic_discard: true to accept that loss"
                    % (key, cfg.get(key), " or ".join(safe))
                )
    resources = cfg.get("resources") or []
    if not resources:
        problems.append(
            "drbd_resources is empty: list at least one resource (name, device, disk, addresses, primary)"
        )
    seen = dict(name=set(), device=set(), port=set())
    # drbd_net_options is checked once, with the first resource that does not override it.
    timings = (cfg.get("heartbeat_deadtime"), cfg.get("heartbeat_keepalive"))
    common_net_checked = False
    for index, res in enumerate(resources):
        where = "drbd_resources[%d]" % index
        name = str(res.get("name", ""))
        if not _NAME.match(name):
            problems.append("%s.name %r is not a DRBD resource name (letters, digits, _ . -)" % (where, name))
        device = _DEVICE.match(str(res.get("device", "")))
        if not device:
            problems.append(
                "%s.device must be /dev/drbdN (like /dev/drbd0), got %r" % (where, res.get("device"))
            )
        for key, value in (("name", name), ("device", res.get("device")), ("port", res.get("port", 7788))):
            if value in seen[key]:
                problems.append(
                    "%s.%s %r is used by another resource: each resource needs its own" % (where, key, value)
                )
            seen[key].add(value)
        port = res.get("port", 7788)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append("%s.port must be a TCP port (1-65535), got %r" % (where, port))
        addresses = res.get("addresses") or {}
        if sorted(addresses) != sorted(nodes):
            problems.append(
                "%s.addresses must give exactly the nodes %r their replication address, got %r"
                % (where, nodes, sorted(addresses))
            )
        for node, address in addresses.items():
            try:
                ipaddress.IPv4Address(str(address))
            except ValueError:
                problems.append("%s.addresses.%s %r is not an IPv4 address" % (where, node, address))
        if len(set(map(str, addresses.values()))) != len(addresses):
            problems.append("%s.addresses gives two nodes the same address" % where)
        disks = res.get("disks") or {}
        for node in nodes:
            disk = disks.get(node, res.get("disk"))
            if not disk or not str(disk).startswith("/dev/"):
                problems.append(
                    "%s needs the backing disk of %s: set disk (/dev/sdb) or disks.%s" % (where, node, node)
                )
            elif device and str(disk).startswith("/dev/drbd"):
                problems.append("%s.disk %r is a DRBD device; give the backing block device" % (where, disk))
        if res.get("primary") not in nodes:
            problems.append(
                "%s.primary must be one of %r (the node promoted once for the initial sync), got %r"
                % (where, nodes, res.get("primary"))
            )
        if isinstance(cfg.get("net_options"), dict) and res.get("net_options"):
            problems.extend(
                net_problems(
                    dict(cfg["net_options"], **res["net_options"]), "%s.net_options" % where, *timings
                )
            )
        elif isinstance(cfg.get("net_options"), dict) and not common_net_checked:
            problems.extend(net_problems(cfg["net_options"], "drbd_net_options", *timings))
            common_net_checked = True
        mount = res.get("mount")
        if mount is not None and not str(mount).startswith("/"):
            problems.append("%s.mount must be an absolute path, got %r" % (where, mount))
        if mount and not res.get("filesystem", "ext4"):
            problems.append(
                "%s has a mount point but filesystem is empty: name the filesystem (ext4)" % where
            )
    return problems
