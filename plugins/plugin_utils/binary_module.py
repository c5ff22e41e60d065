# -*- coding: utf-8 -*-
# Copyright: hx.reliability developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of every hx.reliability module: pick the binary for the target's CPU.

Each module is built as one static binary per architecture, installed beside its sidecar
docs as ``plugins/modules/<module>_<arch>``. The action plugin named after the module finds
the target's architecture (the ``hx_reliability_architecture`` variable if set, else gathered facts
when the task runs on the inventory host, else ``uname -m`` over the connection, which
needs no Python on the target) and runs
the matching binary with the task's arguments. Everything else (option checks, check mode,
the result) is the binary's job.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

COLLECTION = "hx.reliability"

# uname -m spellings, and the name of the binary built for each.
ARCHITECTURES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
}


def binary_for(module, machine):
    """The module name of the binary for ``machine`` (an ``uname -m`` value), or raise."""
    arch = ARCHITECTURES.get((machine or "").strip().lower())
    if arch is None:
        supported = ", ".join(sorted(set(ARCHITECTURES.values())))
        raise AnsibleActionFail(
            "%s.%s has no binary for architecture '%s'; supported: %s"
            % (COLLECTION, module, (machine or "").strip() or "unknown", supported)
        )
    return "%s.%s_%s" % (COLLECTION, module, arch)


class BinaryModuleAction(ActionBase):
    """Runs ``<module>_<arch>`` for the task's module."""

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(BinaryModuleAction, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        module = (self._task.resolved_action or self._task.action).split(".")[-1]
        try:
            binary = binary_for(module, self._target_machine(task_vars))
            found = self._shared_loader_obj.module_loader.find_plugin_with_context(binary)
            if not found.resolved:
                raise AnsibleActionFail(
                    "the binary %s is not installed in this collection; build it with 'make build'"
                    % binary
                )
            result = merge_hash(result, self._execute_module(module_name=binary, task_vars=task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _target_machine(self, task_vars):
        # An explicit choice wins: for hosts whose uname is unusual, and for tests that run
        # the aarch64 binary under qemu-user on an x86_64 machine.
        forced = task_vars.get("hx_reliability_architecture")
        if forced:
            return str(forced)
        # Gathered facts describe the inventory host, not a delegate: only trust them
        # when the task runs where they were gathered.
        if not self._task.delegate_to:
            facts = task_vars.get("ansible_facts") or {}
            machine = facts.get("architecture") or facts.get("machine")
            if machine:
                return machine
        res = self._low_level_execute_command("uname -m")
        if res.get("rc") != 0:
            raise AnsibleActionFail(
                "cannot find the target's architecture: 'uname -m' exited %s: %s"
                % (res.get("rc"), (res.get("stderr") or res.get("stdout") or "").strip())
            )
        return res.get("stdout", "").strip()
