"""Run a module's main() with AnsibleModule's commands answered from a script of expected calls.

Each call in the script has `rc`, `out` and `err`; `expected(call)` gives the argv the module must
run for it and the stdin it must pass (ANY_STDIN: not checked). Every call must come, in order, with
the C locale. Returns what the module exited or failed with.
"""

from contextlib import ExitStack
from unittest import mock

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

ANY_STDIN = object()


class Finished(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


def run_scripted(module, args, calls, expected, bin_path, check_mode=False, diff=False, patches=()):
    script = list(calls)

    def run_command(self, argv, data=None, binary_data=False, environ_update=None, check_rc=False, **kwargs):
        assert script, f"unexpected command {argv!r}"
        call = script.pop(0)
        want_argv, want_stdin = expected(call)
        assert argv == want_argv
        if want_stdin is not ANY_STDIN:
            assert data == want_stdin
        assert environ_update == {"LC_ALL": "C", "LANGUAGE": "C"}
        return call.rc, call.out, call.err

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return bin_path(name)

    def exit_json(self, **result):
        raise Finished(dict(result, failed=False))

    def fail_json(self, msg, **result):
        raise Finished(dict(result, msg=msg, failed=True))

    with ExitStack() as stack:
        stack.enter_context(patch_module_args(dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)))
        stack.enter_context(
            mock.patch.multiple(
                basic.AnsibleModule,
                run_command=run_command,
                get_bin_path=get_bin_path,
                exit_json=exit_json,
                fail_json=fail_json,
            )
        )
        for patch in patches:
            stack.enter_context(patch)
        finished = stack.enter_context(pytest.raises(Finished))
        module.main()
    assert not script, f"expected commands that did not run: {script!r}"
    return finished.value.result
