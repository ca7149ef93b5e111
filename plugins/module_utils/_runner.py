# -*- coding: utf-8 -*-
# Copyright: hakit.cluster contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Run one command-line tool for a module: argv lists only, C locale, check-mode aware.

Modelled on community.general's CmdRunner, reduced to what our modules need: a module asks
for the tool once (``CommandRunner(module, "ipvsadm")``), reads with ``query()`` (runs in
check mode too, never recorded) and changes with ``change()`` (recorded; in check mode
recorded and not run). ``runner.changes`` is what the module returns as the commands it ran
or would run.
"""

from __future__ import annotations

import shlex
from collections import namedtuple

# Parsers read the tools' English output; LANGUAGE outranks LC_ALL for gettext messages.
C_LOCALE = {"LC_ALL": "C", "LANGUAGE": "C"}

Result = namedtuple("Result", ["argv", "rc", "out", "err", "ran"])


def describe(argv, data=None):
    """A command as the module reports it: its argv and what it was fed on stdin."""
    return {"argv": list(argv), "stdin": data}


class CommandRunner(object):
    """Runs ``tool`` (found with get_bin_path) without a shell, in the C locale."""

    def __init__(self, module, tool, required=True):
        self.module = module
        self.tool = tool
        self.binary = module.get_bin_path(tool, required=required)
        self.changes = []

    def argv(self, args):
        return [self.binary] + [str(arg) for arg in args]

    def query(self, args, data=None, check_rc=True):
        """Run a read-only command; it runs in check mode too and is not recorded."""
        return self._run(self.argv(args), data, check_rc)

    def change(self, args, data=None, check_rc=True):
        """Run a command that changes the system; in check mode only record it."""
        argv = self.argv(args)
        self.changes.append(describe(argv, data))
        if self.module.check_mode:
            return Result(argv, 0, "", "", False)
        return self._run(argv, data, check_rc)

    def _run(self, argv, data, check_rc):
        rc, out, err = self.module.run_command(
            argv, data=data, binary_data=True, environ_update=C_LOCALE, check_rc=False
        )
        if check_rc and rc != 0:
            self.module.fail_json(
                msg="%s failed (rc=%d): %s" % (shlex.join(argv), rc, (err or out).strip()),
                cmd=argv,
                rc=rc,
                stdout=out,
                stderr=err,
                commands=self.changes,
            )
        return Result(argv, rc, out, err, True)
