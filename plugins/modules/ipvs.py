#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ipvs
short_description: Manage the IPVS (LVS) table of virtual services and real servers with ipvsadm
version_added: 0.1.0
description:
  - Reads the live IPVS table with C(ipvsadm -Sn) and C(ipvsadm -Ln --thresholds), compares it with
    O(config) according to O(state), and applies the difference as one C(ipvsadm -R) batch.
  - Existing virtual services and real servers are edited in place (C(-E), C(-e)) rather than
    deleted and added again, so established connections and persistence templates survive a
    change of scheduler, persistence, weight, thresholds or forwarding method.
  - Additions run before edits and removals, so a service whose real servers are swapped is never
    empty during the batch.
  - After applying, the module reads the table again and fails if it does not match, because
    C(ipvsadm -R) can report success although an earlier line of the batch failed.
  - Uses the state vocabulary of Ansible's network resource modules.
author:
  - hakit.cluster developers (@hakit)
attributes:
  check_mode:
    description: Can run in check mode and return the changed status and commands without modifying the target.
    support: full
  diff_mode:
    description: Returns the table before and after (and the persistence file) as ipvsadm rules.
    support: full
  platform:
    description: Target operating systems.
    support: full
    platforms: posix
requirements:
  - C(ipvsadm) 1.26 or later on the target, and a kernel with IPVS (C(ip_vs); ipvsadm loads it).
options:
  config:
    description:
      - The virtual services, each with its real servers.
      - Required for O(state=merged), O(state=replaced), O(state=overridden) and O(state=rendered).
        O(state=overridden) with an empty list clears the table.
      - With O(state=merged), options left out keep their current value (or ipvsadm's default for
        something new); with O(state=replaced) and O(state=overridden) they take ipvsadm's default.
      - With O(state=deleted), a listed service without O(config[].real_servers) is removed; with
        real servers listed, only those are removed from it. Without O(config), every service is removed.
    type: list
    elements: dict
    suboptions:
      protocol:
        description:
          - V(tcp), V(udp) and V(sctp) services are named by O(config[].address) and O(config[].port);
            V(fwmark) services by O(config[].fwmark) (packets marked by netfilter).
        type: str
        choices: [tcp, udp, sctp, fwmark]
        default: tcp
      address:
        description:
          - The virtual IP address, IPv4 or IPv6. Required unless O(config[].protocol=fwmark).
        type: str
      port:
        description:
          - The virtual port. V(0) means every port and needs O(config[].persistent).
          - Required unless O(config[].protocol=fwmark).
        type: int
      fwmark:
        description:
          - The firewall mark of a V(fwmark) service. Required if O(config[].protocol=fwmark).
        type: int
      family:
        description:
          - Address family of a V(fwmark) service (default V(ipv4)). For other protocols it follows
            O(config[].address) and may be left out.
        type: str
        choices: [ipv4, ipv6]
      scheduler:
        description:
          - Scheduling algorithm (ipvsadm C(-s)). ipvsadm's default is V(wlc).
        type: str
        choices: [rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh]
      scheduler_flags:
        description:
          - Scheduler flags (ipvsadm C(-b)); V(sh-fallback) and V(sh-port) go with the V(sh)
            scheduler, V(mh-fallback) and V(mh-port) with V(mh).
        type: list
        elements: str
        choices: [sh-fallback, sh-port, mh-fallback, mh-port]
      persistent:
        description:
          - Persistence timeout in seconds (ipvsadm C(-p)); V(0) turns persistence off.
        type: int
      netmask:
        description:
          - Persistence granularity (ipvsadm C(-M)), a dotted netmask or a prefix length for IPv4,
            a prefix length for IPv6. Needs O(config[].persistent).
        type: str
      persistence_engine:
        description:
          - Persistence engine (ipvsadm C(--pe)).
        type: str
        choices: [sip]
      one_packet:
        description:
          - One-packet scheduling (ipvsadm C(-o)), for V(udp) and V(fwmark) services.
        type: bool
      real_servers:
        description:
          - The real servers of the service.
          - With O(state=replaced) and O(state=overridden), leaving it out means the service has none.
        type: list
        elements: dict
        suboptions:
          address:
            description:
              - Address of the real server.
            type: str
            required: true
          port:
            description:
              - Port of the real server; defaults to the service's port (V(0) for fwmark services).
              - With V(gate) and V(ipip) forwarding of a tcp, udp or sctp service it must equal
                the service's port (ipvsadm forces it); use V(masq) to map ports.
            type: int
          forwarding:
            description:
              - V(gate) is direct routing (C(-g), ipvsadm's default), V(masq) is NAT (C(-m)),
                V(ipip) is IP-in-IP tunnelling (C(-i)).
            type: str
            choices: [gate, masq, ipip]
          weight:
            description:
              - Weight (C(-w), default V(1)); V(0) quiesces the server (no new connections).
            type: int
          u_threshold:
            description:
              - Upper connection threshold (C(-x)); V(0) (default) means none.
            type: int
          l_threshold:
            description:
              - Lower connection threshold (C(-y)), at most O(config[].real_servers[].u_threshold).
            type: int
          tunnel_type:
            description:
              - Encapsulation of V(ipip) forwarding (C(--tun-type), default V(ipip)).
            type: str
            choices: [ipip, gue]
          tunnel_port:
            description:
              - Destination UDP port of V(gue) encapsulation (C(--tun-port)); required for V(gue).
            type: int
          tunnel_checksum:
            description:
              - Checksum mode of V(gue) encapsulation (default V(none)).
            type: str
            choices: [none, csum, remcsum]
  state:
    description:
      - V(merged) adds and updates what O(config) lists and removes nothing.
      - V(replaced) makes each listed service exactly as given, removing its unlisted real servers;
        services not listed stay.
      - V(overridden) makes the whole table exactly O(config); it is the only state that removes
        services that are not listed.
      - V(deleted) removes what O(config) lists (everything without O(config)).
      - V(gathered) returns the live table in RV(gathered) in the format of O(config) and changes nothing.
      - V(rendered) returns in RV(rendered) the ipvsadm lines that would build O(config) on an
        empty table, without reading or changing the target (ipvsadm need not be installed).
      - V(parsed) returns O(running_config) parsed in RV(parsed), without touching the target.
    type: str
    choices: [merged, replaced, overridden, deleted, gathered, rendered, parsed]
    default: merged
  running_config:
    description:
      - Output of C(ipvsadm -Sn), or a rules file, to parse with O(state=parsed).
    type: str
  persist_file:
    description:
      - Also write the resulting table to this file as C(ipvsadm -R) input, including the
        thresholds that C(ipvsadm -Sn) leaves out, so it can be restored at boot. On Debian use
        C(/etc/ipvsadm.rules), which C(/etc/init.d/ipvsadm) loads when C(AUTO="true") is set in
        C(/etc/default/ipvsadm).
      - The file starts with one C(#) comment line, as Debian's own file does; C(ipvsadm -R)
        refuses comments, so load it the way the init script does, C(grep -v '^#' FILE | ipvsadm -R).
      - The file is rewritten only when its content differs; a new file gets mode 0644.
    type: path
notes:
  - Do not manage with this module the services that ldirectord or keepalived manage; they set
    weights themselves and the two would undo each other's changes.
  - The table is read with two commands; a change made by another program between them may show
    as a difference and be reconciled on the next run.
seealso:
  - name: ipvsadm(8)
    description: The ipvsadm manual.
    link: https://manpages.debian.org/bookworm/ipvsadm/ipvsadm.8.en.html
"""

EXAMPLES = r"""
- name: Balance HTTP over three real servers by weight, direct routing (seed 002)
  hakit.cluster.ipvs:
    config:
      - address: 193.144.50.250
        port: 80
        scheduler: wrr
        real_servers:
          - {address: 193.144.50.252, weight: 3}
          - {address: 193.144.50.251, weight: 1}

- name: Persistent NAT service mapping port 80 to 8080, and the table saved for boot
  hakit.cluster.ipvs:
    config:
      - address: 10.0.0.100
        port: 80
        scheduler: wlc
        persistent: 300
        netmask: 255.255.255.0
        real_servers:
          - {address: 192.168.10.11, port: 8080, forwarding: masq}
          - {address: 192.168.10.12, port: 8080, forwarding: masq, weight: 2}
    state: replaced
    persist_file: /etc/ipvsadm.rules

- name: Firewall-mark service for HTTP and HTTPS together, tunnelled to the real servers
  hakit.cluster.ipvs:
    config:
      - protocol: fwmark
        fwmark: 1
        scheduler: sh
        scheduler_flags: [sh-port]
        real_servers:
          - {address: 10.0.1.11, forwarding: ipip}
          - {address: 10.0.1.12, forwarding: ipip}

- name: Drain one real server (weight 0), leaving everything else as it is
  hakit.cluster.ipvs:
    config:
      - address: 10.0.0.100
        port: 80
        real_servers:
          - {address: 10.0.0.11, weight: 0}

- name: Remove one real server from a service
  hakit.cluster.ipvs:
    config:
      - address: 10.0.0.100
        port: 80
        real_servers:
          - address: 10.0.0.11
    state: deleted

- name: Make the table exactly this, removing every other service
  hakit.cluster.ipvs:
    config:
      - address: "2001:db8::100"
        port: 443
        real_servers:
          - address: "2001:db8::11"
    state: overridden

- name: Read the table
  hakit.cluster.ipvs:
    state: gathered
  register: ipvs_table

- name: Show what would be sent to ipvsadm -R for a configuration, offline
  hakit.cluster.ipvs:
    config:
      - {address: 10.0.0.100, port: 53, protocol: udp, one_packet: true}
    state: rendered
  delegate_to: localhost
"""

RETURN = r"""
commands:
  description:
    - The lines of the C(ipvsadm -R) batch that ran, or would run in check mode; empty when
      nothing differs.
  returned: always
  type: list
  elements: str
  sample:
    - "-A -t 10.0.0.100:80 -s wrr"
    - "-E -t 10.0.0.101:80 -s wlc -p 300"
    - "-a -t 10.0.0.100:80 -r 10.0.0.11:80 -g -w 3"
    - "-e -t 10.0.0.101:80 -r 10.0.0.12:80 -g -w 0"
    - "-d -t 10.0.0.101:80 -r 10.0.0.13:80"
    - "-D -t 10.0.0.102:80"
before:
  description: The table before the change, in the format of O(config).
  returned: when O(state) is V(merged), V(replaced), V(overridden) or V(deleted)
  type: list
  elements: dict
  sample:
    - protocol: tcp
      address: 10.0.0.100
      port: 80
      fwmark: null
      family: ipv4
      scheduler: wrr
      scheduler_flags: []
      persistent: 0
      netmask: 255.255.255.255
      persistence_engine: null
      one_packet: false
      real_servers:
        - address: 10.0.0.11
          port: 80
          forwarding: gate
          weight: 3
          u_threshold: 0
          l_threshold: 0
          tunnel_type: null
          tunnel_port: null
          tunnel_checksum: null
after:
  description:
    - The table after the change, read back from the kernel (predicted in check mode), in the format of O(config).
  returned: when changed
  type: list
  elements: dict
  sample: []
gathered:
  description: The live table in the format of O(config).
  returned: when O(state=gathered)
  type: list
  elements: dict
  sample: []
rendered:
  description: ipvsadm lines that build O(config) on an empty table.
  returned: when O(state=rendered)
  type: list
  elements: str
  sample: ["-A -u 10.0.0.100:53 -s wlc -o", "-a -u 10.0.0.100:53 -r 10.0.0.11:53 -g -w 1"]
parsed:
  description: O(running_config) in the format of O(config).
  returned: when O(state=parsed)
  type: list
  elements: dict
  sample: []
diff:
  description:
    - The table before and after as ipvsadm rules, and the persistence file when it changes.
  returned: when diff mode is on
  type: list
  elements: dict
  sample:
    - before_header: ipvs table
      after_header: ipvs table
      before: "-A -t 10.0.0.100:80 -s wlc\n"
      after: "-A -t 10.0.0.100:80 -s wrr\n"
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.hakit.cluster.plugins.module_utils._ipvs import (
    FAMILIES,
    FORWARDING,
    PERSISTENCE_ENGINES,
    PROTOCOLS,
    SCHEDULER_FLAGS,
    SCHEDULERS,
    TUNNEL_CHECKSUMS,
    TUNNEL_TYPES,
    IpvsError,
    parse_rules,
    plan,
    read_table,
    reconcile,
    render_rules,
    wanted_services,
)
from ansible_collections.hakit.cluster.plugins.module_utils._runner import CommandRunner

# Debian's /etc/init.d/ipvsadm loads the file with `grep -v "^#" FILE | ipvsadm -R`: ipvsadm -R
# itself refuses comment lines, and past a bare "ipvsadm" word it parses the rest of a comment as
# options. So the header is one '#' line at column 0 with no such word and no option-like token.
PERSIST_HEADER = (
    "# ipvsadm.rules: IPVS table written by hakit.cluster.ipvs, loaded at boot by /etc/init.d/ipvsadm\n"
)

REAL_SERVER_OPTIONS = dict(
    address=dict(type="str", required=True),
    port=dict(type="int"),
    forwarding=dict(type="str", choices=list(FORWARDING)),
    weight=dict(type="int"),
    u_threshold=dict(type="int"),
    l_threshold=dict(type="int"),
    tunnel_type=dict(type="str", choices=list(TUNNEL_TYPES)),
    tunnel_port=dict(type="int"),
    tunnel_checksum=dict(type="str", choices=list(TUNNEL_CHECKSUMS)),
)

SERVICE_OPTIONS = dict(
    protocol=dict(type="str", default="tcp", choices=list(PROTOCOLS)),
    address=dict(type="str"),
    port=dict(type="int"),
    fwmark=dict(type="int"),
    family=dict(type="str", choices=list(FAMILIES)),
    scheduler=dict(type="str", choices=list(SCHEDULERS)),
    scheduler_flags=dict(
        type="list", elements="str", choices=[flag for flags in SCHEDULER_FLAGS.values() for flag in flags]
    ),
    persistent=dict(type="int"),
    netmask=dict(type="str"),
    persistence_engine=dict(type="str", choices=list(PERSISTENCE_ENGINES)),
    one_packet=dict(type="bool"),
    real_servers=dict(type="list", elements="dict", options=REAL_SERVER_OPTIONS),
)

ARGUMENT_SPEC = dict(
    config=dict(
        type="list",
        elements="dict",
        options=SERVICE_OPTIONS,
        required_if=[
            ("protocol", "tcp", ("address", "port")),
            ("protocol", "udp", ("address", "port")),
            ("protocol", "sctp", ("address", "port")),
            ("protocol", "fwmark", ("fwmark",)),
        ],
        mutually_exclusive=[("fwmark", "address"), ("fwmark", "port")],
    ),
    state=dict(
        type="str",
        default="merged",
        choices=["merged", "replaced", "overridden", "deleted", "gathered", "rendered", "parsed"],
    ),
    running_config=dict(type="str"),
    persist_file=dict(type="path"),
)


def read_live(runner):
    """The live table; -Sn has all but the thresholds, which only -Ln --thresholds shows."""
    rules = runner.query(["-Sn"]).out
    thresholds = runner.query(["-Ln", "--thresholds"]).out
    return read_table(rules, thresholds)


def persist(module, path, table):
    """Write ``table`` as ipvsadm -R input to ``path`` if it differs; return the file's diff or None."""
    text = PERSIST_HEADER + render_rules(table)
    try:
        with open(path) as handle:
            old = handle.read()
    except FileNotFoundError:
        old = ""
    except OSError as error:
        module.fail_json(msg="cannot read persist_file %s: %s" % (path, to_native(error)))
    if old == text:
        return None
    if not module.check_mode:
        directory = os.path.dirname(path) or "."
        try:
            fd, tmp = tempfile.mkstemp(prefix=".ipvs-", dir=directory)
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
        except OSError as error:
            module.fail_json(msg="cannot write persist_file %s: %s" % (path, to_native(error)))
        module.atomic_move(tmp, path)
    return dict(before_header=path, after_header=path, before=old, after=text)


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=[
            ("state", "merged", ("config",)),
            ("state", "replaced", ("config",)),
            ("state", "overridden", ("config",)),
            ("state", "rendered", ("config",)),
            ("state", "parsed", ("running_config",)),
        ],
        mutually_exclusive=[("config", "running_config")],
        supports_check_mode=True,
    )
    state = module.params["state"]
    try:
        if state == "parsed":
            module.exit_json(changed=False, commands=[], parsed=parse_rules(module.params["running_config"]))
        wanted = wanted_services(module.params["config"])
        if state == "rendered":
            module.exit_json(changed=False, commands=[], rendered=plan([], reconcile([], wanted, "merged")))
    except IpvsError as error:
        module.fail_json(msg=str(error))

    runner = CommandRunner(module, "ipvsadm")
    before = read_live(runner)
    if state == "gathered":
        module.exit_json(changed=False, commands=[], gathered=before)

    try:
        after = reconcile(before, wanted, state)
    except IpvsError as error:
        module.fail_json(msg=str(error))
    commands = plan(before, after)
    if commands:
        result = runner.change(["-R"], data="".join(line + "\n" for line in commands))
        if result.ran:
            actual = read_live(runner)
            left = plan(actual, after)
            if left:
                module.fail_json(
                    msg="ipvsadm -R did not reach the wanted table; still to do: %s; ipvsadm said: %s"
                    % ("; ".join(left), (result.err or result.out).strip() or "nothing"),
                    commands=commands,
                    stderr=result.err,
                )
            after = actual

    changed = bool(commands)
    output = dict(commands=commands, before=before)
    diffs = []
    if module.params["persist_file"]:
        file_diff = persist(module, module.params["persist_file"], after)
        if file_diff:
            changed = True
            diffs.append(file_diff)
    if changed:
        output["after"] = after
    if module._diff:
        table_diff = dict(before=render_rules(before), after=render_rules(after))
        output["diff"] = [dict(table_diff, before_header="ipvs table", after_header="ipvs table"), *diffs]
    module.exit_json(changed=changed, **output)


if __name__ == "__main__":
    main()
