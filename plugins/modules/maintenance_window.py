# -*- coding: utf-8 -*-
# Copyright: hx.reliability developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# maintenance_window is a static Rust binary, built per architecture as
# maintenance_window_<arch> beside this file; the action plugin of the same name picks one
# for the target. This file only anchors the documentation in maintenance_window.yml: it is
# never sent to a host.
