# -*- coding: utf-8 -*-
# Copyright: hx.reliability developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs the maintenance_window binary built for the target's architecture."""

from __future__ import annotations

from ansible_collections.hx.reliability.plugins.plugin_utils.binary_module import (
    BinaryModuleAction,
)


class ActionModule(BinaryModuleAction):
    pass
