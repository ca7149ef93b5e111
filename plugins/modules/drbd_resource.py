#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: drbd_resource
short_description: Bring a DRBD resource up or down, set its role and apply configuration changes
version_added: 0.1.0
description:
  - Reads the live state of one DRBD resource with C(drbdadm status) (and, while it is down, what
    its backing disk holds with C(wipefs)), compares it with the wanted state and runs only the
    C(drbdadm) commands that make the difference.
  - Metadata is created (C(create-md)) only on a backing disk that holds neither DRBD metadata nor
    anything else (a filesystem, a partition table, LVM, swap); O(force) overrides that and
    B(destroys the data on the disk).
  - A running resource whose configuration file differs from the kernel's settings (as
    C(drbdadm -d adjust) lists) is changed with C(drbdadm adjust), which applies net and disk
    options without taking the resource down.
  - The initial promotion C(primary --force), which starts the first full sync from this node, runs
    only with O(allow_initial_promotion), only while the peer is connected, and only while neither
    node holds UpToDate data. Later promotions are plain C(primary), which DRBD allows only on UpToDate data.
  - Reports a split brain (the resource StandAlone after the kernel logged C(Split-Brain detected
    but unresolved)) in RV(status.split_brain) and as a warning; it never resolves one, because that
    means discarding one node's writes.
  - Written for the kernel's DRBD 8.4 driven by drbd-utils 8.9 or 9 (Debian 12).
author:
  - hakit.cluster developers (@hakit)
attributes:
  check_mode:
    description: Reports the commands it would run without running them. For a resource that is down the role change is predicted from the backing disk.
    support: full
  diff_mode:
    description: Returns the state before and after.
    support: full
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
requirements:
  - C(drbd-utils) and the C(drbd) kernel module on the target; C(wipefs) (util-linux) and C(dmesg).
options:
  name:
    description:
      - The resource, as defined in the DRBD configuration (C(/etc/drbd.d/<name>.res)).
    type: str
    required: true
  state:
    description:
      - V(up) creates metadata where there is none, brings the resource up and applies configuration
        changes with C(adjust).
      - V(down) takes it down (C(drbdadm down)); a Primary with a mounted filesystem refuses.
      - V(gathered) only reads and returns RV(status).
    type: str
    choices: [up, down, gathered]
    default: up
  role:
    description:
      - The wanted role with O(state=up); left as it is when not given (the usual case when a
        cluster manager such as Heartbeat promotes the resource).
    type: str
    choices: [primary, secondary]
  allow_initial_promotion:
    description:
      - Allow C(primary --force) on a node whose disk is not UpToDate, which makes its data the
        good copy and overwrites the peer's. The module still refuses unless the peer is connected,
        not Primary, and neither disk is UpToDate, so no written data can be lost.
    type: bool
    default: false
  force:
    description:
      - Create metadata even on a backing disk that holds a filesystem or other data.
      - B(This destroys the data on the backing disk.)
    type: bool
    default: false
  wait:
    description:
      - After acting, wait until the resource is V(connected) to its peer, or until both disks are
        UpToDate (V(synced)), at most O(timeout) seconds.
    type: str
    choices: [none, connected, synced]
    default: none
  timeout:
    description:
      - Seconds O(wait) waits before the module fails.
    type: int
    default: 300
notes:
  - The module keeps no files of its own; everything it decides on is read from DRBD and the disk.
seealso:
  - name: drbdadm(8)
    description: The DRBD administration tool.
    link: https://manpages.debian.org/bookworm/drbd-utils/drbdadm-8.4.8.en.html
"""

EXAMPLES = r"""
- name: Bring r0 up, creating its metadata on a new disk, and wait for the peer
  hakit.cluster.drbd_resource:
    name: r0
    wait: connected

- name: Initial promotion on one node only (seed 001's overwrite-data-of-peer), never on a used resource
  hakit.cluster.drbd_resource:
    name: r0
    role: primary
    allow_initial_promotion: true

- name: Read the state, for example to see a split brain
  hakit.cluster.drbd_resource:
    name: r0
    state: gathered
  register: r0

- name: Re-use a disk that holds an old filesystem (destroys it)
  hakit.cluster.drbd_resource:
    name: r1
    force: true
"""

RETURN = r"""
commands:
  description: The commands that ran, or would run in check mode, each as argv and stdin.
  returned: always
  type: list
  elements: dict
  sample: [{"argv": ["/usr/sbin/drbdadm", "up", "r0"], "stdin": null}]
status:
  description: The resource's state after the module acted (predicted in check mode).
  returned: always
  type: dict
  contains:
    up:
      description: Whether the resource is configured in the kernel.
      type: bool
    role:
      description: This node's role (V(Primary), V(Secondary)).
      type: str
    disk:
      description: This node's disk state (V(UpToDate), V(Inconsistent), V(Diskless), ...).
      type: str
    connection:
      description: V(Connected), or why not (V(StandAlone), V(Connecting), ...).
      type: str
    peer_role:
      description: The peer's role while connected.
      type: str
    peer_disk:
      description: The peer's disk state while connected.
      type: str
    replication:
      description: V(Established), V(SyncSource), V(SyncTarget), ... while connected.
      type: str
    sync_done:
      description: Resync progress in percent while a resync runs.
      type: float
    split_brain:
      description: The resource is StandAlone because DRBD detected a split brain it did not resolve.
      type: bool
    up_to_date_somewhere:
      description: Whether a node holds UpToDate data; null when this node cannot tell.
      type: bool
  sample: {"up": true, "role": "Primary", "disk": "UpToDate", "connection": "Connected", "peer_role": "Secondary",
           "peer_disk": "UpToDate", "replication": "Established", "sync_done": null, "split_brain": false,
           "up_to_date_somewhere": true}
backing_disk:
  description:
    - What C(wipefs) finds on the backing disk before the module acts - DRBD metadata, and other
      signatures (a filesystem, a partition table) that create-md would destroy. Once the disk has
      DRBD metadata, libblkid reports only that (it does not look past a RAID-like member), so a
      filesystem made on the DRBD device does not show here.
  returned: always
  type: dict
  sample: {"device": "/dev/vdb", "metadata": false, "other": ["ext4"]}
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.hakit.cluster.plugins.module_utils._drbd import (
    DrbdError,
    adjust_commands,
    disk_contents,
    parse_status,
    parse_wipefs,
    plan_role,
    plan_up,
    split_brain_seen,
    summary,
)
from ansible_collections.hakit.cluster.plugins.module_utils._runner import CommandRunner

POLL_SECONDS = 1


class Resource(object):
    """One DRBD resource as the tools show it."""

    def __init__(self, module, name):
        self.module = module
        self.name = name
        self.drbdadm = CommandRunner(module, "drbdadm")

    def read(self):
        result = self.drbdadm.query(["status", self.name], check_rc=False)
        if result.rc != 0 and "not defined" in (result.err + result.out):
            self.module.fail_json(
                msg="resource %s is not in the DRBD configuration: %s" % (self.name, result.err.strip())
            )
        try:
            status = parse_status(result.out if result.rc == 0 else "")
        except DrbdError as exc:
            self.module.fail_json(msg=str(exc), stdout=result.out)
        split_brain = False
        if status is not None and (status["peer"] is None or status["peer"]["connection"] == "StandAlone"):
            minor = self.drbdadm.query(["sh-minor", self.name]).out.strip()
            dmesg = CommandRunner(self.module, "dmesg").query([], check_rc=False)
            split_brain = split_brain_seen(dmesg.out, self.name, minor)
        return summary(status, split_brain)

    def backing_disk(self):
        device = self.drbdadm.query(["sh-ll-dev", self.name]).out.strip()
        wipefs = CommandRunner(self.module, "wipefs").query(["-J", device])
        try:
            contents = disk_contents(parse_wipefs(wipefs.out))
        except DrbdError as exc:
            self.module.fail_json(msg=str(exc))
        return dict(contents, device=device)

    def pending_adjust(self):
        return adjust_commands(self.drbdadm.query(["-d", "adjust", self.name]).out)

    def act(self, args):
        """Run one drbdadm command; its effect is verified by reading the state again afterwards.

        drbdadm gives up on drbdsetup after a few seconds ("did not terminate within 5 seconds")
        although the kernel goes on with the request, which happens on slow (emulated) machines.
        """
        result = self.drbdadm.change(args, check_rc=False)
        output = (result.err or "") + (result.out or "")
        if result.rc != 0 and "did not terminate within" in output:
            self.module.warn("%s: %s; checking the state instead" % (" ".join(args), output.strip()))
        elif result.rc != 0:
            self.module.fail_json(
                msg="drbdadm %s failed (rc=%d): %s" % (" ".join(args), result.rc, output.strip()),
                rc=result.rc,
                stdout=result.out,
                stderr=result.err,
                commands=self.drbdadm.changes,
            )
        return result

    def wait(self, until, timeout):
        deadline = time.monotonic() + timeout
        while True:
            current = self.read()
            if until == "connected" and current["connection"] == "Connected":
                return current
            if until == "synced" and current["disk"] == "UpToDate" and current["peer_disk"] == "UpToDate":
                return current
            if current["split_brain"] or time.monotonic() > deadline:
                self.module.fail_json(
                    msg="%s did not become %s within %d s%s"
                    % (self.name, until, timeout, " (split brain)" if current["split_brain"] else ""),
                    status=current,
                    commands=self.drbdadm.changes,
                )
            time.sleep(POLL_SECONDS)


def predicted_after_up(before, disk):
    """The state right after ``up`` of a resource that was down (check mode cannot read it)."""
    return dict(
        before,
        up=True,
        role="Secondary",
        connection="Connecting",
        disk="UpToDate" if disk["metadata"] else "Inconsistent",
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="up", choices=["up", "down", "gathered"]),
            role=dict(type="str", choices=["primary", "secondary"]),
            allow_initial_promotion=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            wait=dict(type="str", default="none", choices=["none", "connected", "synced"]),
            timeout=dict(type="int", default=300),
        ),
        supports_check_mode=True,
    )
    params = module.params
    resource = Resource(module, params["name"])
    before = resource.read()
    disk = resource.backing_disk()
    result = dict(changed=False, commands=resource.drbdadm.changes, status=before, backing_disk=disk)
    if before["split_brain"]:
        module.warn(
            "DRBD resource %s is StandAlone after a split brain; resolve it by hand "
            "(drbdadm connect --discard-my-data on the node whose writes are to be dropped)" % params["name"]
        )
    if params["state"] == "gathered":
        module.exit_json(**result)

    if params["state"] == "down":
        if before["up"]:
            resource.act(["down", params["name"]])
        after = dict(before, **summary(None)) if module.check_mode else resource.read()
    else:
        try:
            steps = plan_up(
                params["name"],
                before,
                metadata=disk,
                force=params["force"],
                adjust=resource.pending_adjust() if before["up"] else None,
            )
        except DrbdError as exc:
            module.fail_json(msg=str(exc), status=before, backing_disk=disk, commands=[])
        for step in steps:
            resource.act(step)
        if module.check_mode:
            current = before if before["up"] else predicted_after_up(before, disk)
        elif steps:
            current = resource.read()
            if not current["up"]:
                module.fail_json(
                    msg="%s is still down after %s" % (params["name"], steps),
                    status=current,
                    commands=resource.drbdadm.changes,
                )
        else:
            current = before
        if (
            params["role"] == "primary"
            and not module.check_mode
            and params["wait"] != "none"
            and current["connection"] != "Connected"
        ):
            # The initial promotion needs to see the peer's disk.
            current = resource.wait("connected", params["timeout"])
        try:
            role_steps = plan_role(params["name"], current, params["role"], params["allow_initial_promotion"])
        except DrbdError as exc:
            if module.check_mode and not before["up"]:
                module.warn("after bringing %s up: %s" % (params["name"], exc))
                role_steps = []
            else:
                module.fail_json(msg=str(exc), status=current, commands=resource.drbdadm.changes)
        for step in role_steps:
            resource.act(step)
        wanted_role = dict(primary="Primary", secondary="Secondary").get(params["role"], current["role"])
        if module.check_mode:
            after = dict(current, role=wanted_role)
        else:
            after = resource.read() if role_steps else current
            if after["role"] != wanted_role:
                module.fail_json(
                    msg="%s is %s after %s" % (params["name"], after["role"], role_steps),
                    status=after,
                    commands=resource.drbdadm.changes,
                )
            if params["wait"] != "none":
                after = resource.wait(params["wait"], params["timeout"])
    result.update(changed=bool(resource.drbdadm.changes), status=after)
    if module._diff:
        result["diff"] = dict(before=describe(before), after=describe(after))
    module.exit_json(**result)


def describe(state):
    return "".join("%s: %s\n" % (key, state[key]) for key in sorted(state))


if __name__ == "__main__":
    main()
