# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""DRBD's live state as data, and what to do about it: pure functions over the tools' text.

The lab's kernel runs DRBD 8.4 and drbd-utils 9 drives it in its 8.4 mode. What it prints was
captured there (tests/unit/fixtures/drbd/): ``drbdadm status <res>`` in DRBD 9's layout,
``/proc/drbd`` in 8.4's, ``wipefs -J`` for what a backing disk holds, ``drbdadm -d adjust``
for the difference between the configuration file and the running resource, and the kernel
log for split brain, which no status command names.
"""

from __future__ import annotations

import json
import re

# A disk whose data the resource may be promoted on without --force.
GOOD_DISK = "UpToDate"
# Disk states that mean the node has no data of its own worth anything yet.
NO_DATA_DISKS = ("Inconsistent",)

_TOKEN = re.compile(r"(\S+?):(\S+)")


class DrbdError(Exception):
    """Output the parsers do not understand, or a state the module must not act on."""


def _fields(words):
    return dict(_TOKEN.fullmatch(word).groups() for word in words if _TOKEN.fullmatch(word))


def parse_status(text):
    """``drbdadm status <res>`` (one resource, one volume) as a dict.

    Returns ``None`` when the resource is not configured in the kernel (down). Keys: ``name``,
    ``role``, ``suspended``, ``disk``, and ``peer`` (``None`` when the resource has no connection
    configured) with ``connection``, ``role``, ``replication``, ``disk`` and ``done`` (resync
    progress in percent, or ``None``).
    """
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    if re.search(
        r"not defined in your config|[Uu]nconfigured|No such resource|not configured", text
    ) and not re.match(r"^\S+ role:", lines[0]):
        return None
    head = lines[0].split()
    if len(head) < 2 or ":" in head[0]:
        raise DrbdError("unexpected first line of drbdadm status: %r" % lines[0])
    top = _fields(head[1:])
    status = dict(
        name=head[0], role=top.get("role"), suspended=top.get("suspended", "no"), disk=None, peer=None
    )
    peer = None
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip())
        words = line.split()
        fields = _fields(words)
        if indent == 2 and ":" not in words[0]:
            # A connection: "peer connection:Connecting" (absent: connected), "role:" while connected.
            peer = dict(
                name=words[0],
                connection=fields.get("connection", "Connected"),
                role=fields.get("role"),
                replication=None,
                disk=None,
                done=None,
            )
            status["peer"] = peer
        elif indent == 2 and peer is None:
            # This node's volume: "disk:UpToDate", verbose "volume:0 minor:0 disk:UpToDate".
            status["disk"] = fields.get("disk", status["disk"])
        elif indent == 4 and peer is not None:
            peer["replication"] = fields.get("replication", peer["replication"])
            peer["disk"] = fields.get("peer-disk", peer["disk"])
            if "done" in fields:
                peer["done"] = float(fields["done"])
        # Anything deeper is --verbose --statistics detail (write-ordering, size, sent, ...).
    if status["role"] is None or status["disk"] is None:
        raise DrbdError("drbdadm status names no role or disk for %s" % status["name"])
    return status


_PROC_DEVICE = re.compile(
    r"^\s*(?P<minor>\d+): cs:(?P<cs>\S+)(?: ro:(?P<ro>\S+) ds:(?P<ds>\S+)(?: (?P<proto>[ABC]))?)?"
)
_PROC_SYNC = re.compile(r"sync'ed:\s*(?P<done>[\d.]+)%")
_PROC_SPEED = re.compile(r"finish: (?P<finish>\S+) speed: (?P<speed>[\d,]+)")


def parse_proc_drbd(text):
    """``/proc/drbd`` of DRBD 8.4: the kernel version and, per minor, its states and resync progress."""
    version = re.search(r"^version: (\S+)", text, re.M)
    devices = {}
    current = None
    for line in text.splitlines():
        match = _PROC_DEVICE.match(line)
        if match:
            ro = (match.group("ro") or "/").split("/")
            ds = (match.group("ds") or "/").split("/")
            current = dict(
                connection=match.group("cs"),
                role=ro[0] or None,
                peer_role=ro[1] or None,
                disk=ds[0] or None,
                peer_disk=ds[1] or None,
                protocol=match.group("proto"),
                out_of_sync_kib=None,
                done=None,
                speed_kib=None,
            )
            devices[int(match.group("minor"))] = current
            continue
        if current is None:
            continue
        oos = re.search(r"\boos:(\d+)", line)
        if oos:
            current["out_of_sync_kib"] = int(oos.group(1))
        sync = _PROC_SYNC.search(line)
        if sync:
            current["done"] = float(sync.group("done"))
        speed = _PROC_SPEED.search(line)
        if speed:
            current["speed_kib"] = int(speed.group("speed").replace(",", ""))
    return dict(version=version.group(1) if version else None, devices=devices)


def parse_wipefs(text):
    """``wipefs -J <disk>``: the signatures on a disk as a list of ``{type, offset}`` (empty: none)."""
    text = text.strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DrbdError("wipefs -J printed no JSON: %s" % exc) from None
    return [dict(type=sig.get("type"), offset=sig.get("offset")) for sig in data.get("signatures", [])]


def disk_contents(signatures):
    """What a backing disk holds: ``{"metadata": bool, "other": [types]}``.

    DRBD's internal metadata shows as signature type ``drbd``; anything else (a filesystem, a
    partition table, LVM, swap) is data that create-md would overwrite. libblkid stops at DRBD's
    metadata (a RAID-like member), so a filesystem made on the DRBD device does not show here:
    captured on the lab, fixture filesystem_on_drbd.
    """
    types = [sig["type"] for sig in signatures]
    return dict(metadata="drbd" in types, other=sorted(set(t for t in types if t != "drbd")))


def split_brain_seen(kernel_log, resource, minor):
    """Whether the kernel log's latest word on the resource is an unresolved split brain.

    DRBD 8.4 logs ``block drbd<minor>: Split-Brain detected but unresolved, dropping connection!``
    and leaves the resource StandAlone; no status command says why. A later connection
    (``drbd <res>: conn( ... -> Connected )``, or a resync after a manual resolution) supersedes it.
    """
    verdict = False
    device = "block drbd%s: " % minor
    res = "drbd %s: " % resource
    for line in kernel_log.splitlines():
        if device in line and "Split-Brain detected" in line and "unresolved" in line:
            verdict = True
        elif res in line and re.search(
            r"conn\( \S+ -> (Connected|SyncSource|SyncTarget|WFBitMapS|WFBitMapT) \)", line
        ):
            verdict = False
    return verdict


def adjust_commands(text):
    """``drbdadm -d adjust <res>``: the drbdsetup/drbdmeta commands an adjust would run (none: in sync)."""
    return [line.strip() for line in text.splitlines() if re.match(r"^\s*(drbdsetup|drbdmeta)\S*\s", line)]


def summary(status, split_brain=False):
    """The module's view of a status: flat, with the conclusions the plan needs."""
    if status is None:
        return dict(
            up=False,
            role=None,
            disk=None,
            connection=None,
            peer_role=None,
            peer_disk=None,
            replication=None,
            sync_done=None,
            split_brain=False,
            up_to_date_somewhere=None,
        )
    peer = status["peer"] or {}
    connection = peer.get("connection") or "StandAlone"
    connected = connection == "Connected"
    peer_disk = peer.get("disk") if connected else None
    known = connected or status["disk"] == GOOD_DISK
    return dict(
        up=True,
        role=status["role"],
        disk=status["disk"],
        connection=connection,
        peer_role=peer.get("role") if connected else None,
        peer_disk=peer_disk,
        replication=peer.get("replication") if connected else None,
        sync_done=peer.get("done"),
        split_brain=bool(split_brain) and connection == "StandAlone",
        # None: cannot tell (the peer is not connected and this node's data is not UpToDate).
        up_to_date_somewhere=(GOOD_DISK in (status["disk"], peer_disk)) if known else None,
    )


def plan_up(name, current, metadata=None, force=False, adjust=None):
    """drbdadm argument lists that bring resource ``name`` up, or apply a changed configuration.

    ``current`` is ``summary()``; ``metadata`` is ``disk_contents()`` of the backing disk (read
    only while the resource is down); ``adjust`` the commands ``drbdadm -d adjust`` listed.
    Refuses (DrbdError) create-md over a disk holding other data unless ``force``.
    """
    if current["up"]:
        return [["adjust", name]] if adjust else []
    if metadata is None:
        raise DrbdError("the backing disk of %s was not read" % name)
    steps = []
    if not metadata["metadata"]:
        if metadata["other"] and not force:
            raise DrbdError(
                "the backing disk of %s holds %s and no DRBD metadata; create-md would destroy it. Use "
                "another disk, or set force (the role's drbd_force_create_metadata) to overwrite it on purpose"
                % (name, ", ".join(metadata["other"]))
            )
        # --force only answers drbdmeta's question about the data it found, which force allowed.
        steps.append(["--force", "create-md", name] if metadata["other"] else ["create-md", name])
    steps.append(["up", name])
    return steps


def plan_role(name, current, wanted_role, allow_initial_promotion=False):
    """drbdadm argument lists that give resource ``name`` the wanted role (``None``: leave it).

    ``primary --force`` (the initial promotion that starts the first sync) only with
    ``allow_initial_promotion``, and only while connected to a peer that is not Primary and
    neither disk holds UpToDate data: then no node has data to lose.
    """
    if wanted_role is None or not current["up"]:
        return []
    if wanted_role == "secondary":
        return [["secondary", name]] if current["role"] == "Primary" else []
    if current["role"] == "Primary":
        return []
    if current["disk"] == GOOD_DISK:
        return [["primary", name]]
    if not allow_initial_promotion:
        raise DrbdError(
            "%s: this node's disk is %s, not UpToDate; it can become Primary only by the initial promotion "
            "(allow_initial_promotion) while no node holds UpToDate data" % (name, current["disk"])
        )
    if current["connection"] != "Connected":
        raise DrbdError(
            "%s: refusing primary --force while %s: the peer's data is unknown (wait for the connection)"
            % (name, current["connection"])
        )
    if (
        current["disk"] in NO_DATA_DISKS
        and current["peer_disk"] in NO_DATA_DISKS
        and current["peer_role"] != "Primary"
    ):
        return [["primary", "--force", name]]
    raise DrbdError(
        "%s: refusing primary --force: this node's disk is %s and the peer's %s (role %s); only a resource "
        "where no node holds UpToDate data gets the initial promotion"
        % (name, current["disk"], current["peer_disk"], current["peer_role"])
    )
