# -*- coding: utf-8 -*-
# Copyright: hx.reliability developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-only stdout callback: one JSON document with every task result, per host.

ansible.posix's json callback is not installed here (no Galaxy); this is all the ad-hoc
tests need: the raw result dicts, `failed` included, as the module returned them.
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: hx_results
type: stdout
short_description: print every task result as one JSON document (tests only)
description:
  - Prints one JSON object with a list of results (host, task, status, result) at the end of the run.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "hx_results"

    def __init__(self):
        super().__init__()
        self.results = []

    def _record(self, status, result):
        data = dict(result._result)
        data.setdefault("failed", status == "failed")
        self.results.append({"host": result._host.get_name(), "task": result._task.get_name(), "status": status, "result": data})

    def v2_runner_on_ok(self, result):
        self._record("ok", result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record("failed", result)

    def v2_runner_on_unreachable(self, result):
        self._record("unreachable", result)

    def v2_runner_on_skipped(self, result):
        self._record("skipped", result)

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps({"results": self.results}, default=str))
