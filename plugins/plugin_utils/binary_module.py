# -*- coding: utf-8 -*-
# Copyright: hx.reliability developers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of every hx.reliability module: pick the binary for the target's CPU and run it.

Each module is built as one static binary per architecture, installed in the collection's
``bin/`` directory as ``<module>_<arch>`` (not under ``plugins/modules/``: no plugin loader
reads ``bin/``, so ``ansible-doc`` only sees the ``.py`` stubs and their ``.yml`` sidecars).
The action plugin named after the module finds the target's architecture (the
``hx_reliability_architecture`` variable if set, else gathered facts when the task runs on
the inventory host, else ``uname -m`` over the connection, asked once per host and run and
remembered in the controller's per-run temporary directory) and runs the matching binary
with the task's arguments. Everything else (option checks, check mode, the result) is the
binary's job.

Two ways to run the binary, with the same arguments (built by ansible-core's own
``_update_module_args``) and the same result handling:

* The fast path (default; ``hx_reliability_fast_path: false`` turns it off). The binary is
  cached on the target as ``~/.ansible/hx_reliability/<sha256>`` of the user the module runs
  as (become included): a directory of mode 0700 that the user owns, with no symbolic link
  in it and no ancestor another user can write. One shell command checks all that, checks
  the cached binary's SHA-256 and ``exec``s it with the arguments on stdin. Only on a cache
  miss is the binary transferred (staged in Ansible's temporary directory, copied into the
  cache and hashed there before it is ever run; hashed again whenever it was written since).
  Only a POSIX shell, ``id``, ``ls`` and ``sha256sum``, ``shasum`` or ``openssl`` are needed
  on the target.
* The normal path, what ansible-core does for any binary module: a temporary directory, the
  binary and an args file transferred, run, removed. The fast path falls back to it, with a
  warning, when the cache cannot be trusted or used (a directory other users can write or
  that a link leads into, a read-only or ``noexec`` home, no SHA-256 tool), and it is the
  only path for ``async`` (which binary modules do not support) and non-POSIX shells.

Ansible tells a module nothing of the controller side (its ``_ansible_*`` keys carry the
check and diff modes, verbosity, the version, the module name, temporary directories,
``target_log_info`` and the like; no user, playbook, play or task). The audit trail on the
target wants them, so the arguments carry them under ``_hx_reliability_controller``, which
the binaries' protocol layer (``rust/ansible-module``) strips before checking the options.
"""

from __future__ import annotations

import getpass
import hashlib
import inspect
import json
import os
import shlex

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_bytes
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash
from ansible.vars.clean import remove_internal_keys

try:  # ansible-core 2.19+: module arguments are encoded with a serialization profile
    from ansible.module_utils.common.json import Direction, get_module_encoder

    def _encode_args(args):
        # Binary modules get the 'legacy' profile (module_common._BuiltModule for 'binary').
        return json.dumps(args, cls=get_module_encoder("legacy", Direction.CONTROLLER_TO_MODULE))

except ImportError:  # ansible-core 2.15-2.18

    def _encode_args(args):
        return json.dumps(args)


_PARSE_TAKES_PROFILE = "profile" in inspect.signature(ActionBase._parse_returned_data).parameters

COLLECTION = "hx.reliability"
CONTROLLER_KEY = "_hx_reliability_controller"
BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "bin")

# uname -m spellings, and the name of the binary built for each.
ARCHITECTURES = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
}

# First word of every line the fast-path script prints itself (never a module's output).
MARKER = "__hx_reliability_fast_path__"

# The fast path, one command. @MARKER@, @SHA@, @STAGED@ (a path or '') and @ENV@ (the
# task's environment, for the module only) are filled in by _fast_command. Each way out
# that does not run the binary prints "MARKER <reason> <text>" on stdout and exits 0;
# "MARKER start" on stderr tells a become failure (the script never started) from a module
# failure, "MARKER run" an exec that failed from a module that ran.
# A task on a warm cache starts two programs before the binary: one `id` (its POSIX output,
# "uid=N(name) ...", gives both the uid and the name) and one `ls -ldn` for the cache
# directory, each directory above it and the cached binary (in the C locale a path sorts
# before every path it is a prefix of, so the lines come in the order asked; each line is
# matched to its path). The binary is hashed when it is copied into the cache, and again
# only when it was written since: when its mark, `.<sha256>.hashed`, made after a hash that
# matched, is missing or older than the binary (`test -nt`; a `test` without -nt hashes).
# Only the user and root can write in the cache (checked above, every task), and either
# could run anything as the user anyway; the mark spares a task the hash (coreutils'
# sha256sum does 0.35 GB/s: 9 ms for health_check's 2.9 MB). A warm task costs 2-3 ms on
# the target before the module, instead of 7.3 ms plus the hash with an `id` per question,
# an `ls` per path and a hash every time.
FAST_PATH_SCRIPT = r"""umask 077
M=@MARKER@
printf '%s\n' "$M start" >&2
say() { printf '%s\n' "$M $*"; exit 0; }
SHA=@SHA@
S=@STAGED@
nl='
'
i=$(LC_ALL=C id 2>/dev/null) || say nodir "cannot tell which user this is"
case " $i" in *" euid="*) i=${i#* euid=};; *) i=${i#uid=};; esac
i=${i%% *}
u=${i%%"("*}
n=${i#"$u"}
n=${n#"("}
n=${n%")"}
case $u in ''|*[!0-9]*) say nodir "cannot tell which user this is";; esac
[ -n "$n" ] || say nodir "cannot tell which user this is"
case $n in -*|*[!A-Za-z0-9._-]*) say nodir "user name '$n' cannot be expanded to a home directory";; esac
eval "h=~$n"
case $h in /*) ;; *) say nodir "user $n has no home directory";; esac
h=$(cd -P "$h" 2>/dev/null && pwd -P) || say nodir "cannot enter the home directory '$h' of user $n"
d=$h/.ansible/hx_reliability
case $d in *"$nl"*) say unsafe "the path $d has a line break";; esac
if [ ! -e "$d" ] && [ ! -L "$d" ]; then
  { [ -d "$h/.ansible" ] || mkdir "$h/.ansible"; } 2>/dev/null && mkdir "$d" 2>/dev/null || say nodir "cannot create $d"
fi
set -f
f=$d/$SHA
m=$d/.$SHA.hashed
set --
x=$d
while :; do
  [ -L "$x" ] && say unsafe "$x is a symbolic link"
  set -- "$x" "$@"
  [ "$x" = / ] && break
  x=${x%/*}
  x=${x:-/}
done
if [ -z "$S" ] && { [ -e "$f" ] || [ -L "$f" ]; }; then set -- "$@" "$f"; fi
L=$(LC_ALL=C ls -ldn -- "$@") || say unsafe "cannot read the mode of $*"
fl=
for x do
  l=${L%%"$nl"*}
  L=${L#*"$nl"}
  case $l in *" $x"|*" $x -> "*) ;; *) say unsafe "cannot read the mode of $x";; esac
  if [ "$x" = "$f" ]; then fl=$l; break; fi
  dl=$l
  set -- $l
  case $1 in d*) ;; *) say unsafe "$x is not a directory";; esac
  case $1 in ?????w*|????????w*) say unsafe "$x ($1) is writable by other users";; esac
  [ "$3" = "$u" ] || [ "$3" = 0 ] || say unsafe "$x is owned by uid $3"
done
set -- $dl
[ "$3" = "$u" ] || say unsafe "$d is owned by uid $3, not by uid $u who runs the module"
case $1 in drwx------|drwx------.) ;; *+) say unsafe "$d ($1) has an access control list";; *) chmod 700 "$d" || say unsafe "cannot set mode 0700 on $d";; esac
sum() {
  if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum <"$1") && s=${s%% *}
  elif command -v shasum >/dev/null 2>&1; then s=$(shasum -a 256 <"$1") && s=${s%% *}
  elif command -v openssl >/dev/null 2>&1; then s=$(openssl dgst -sha256 <"$1") && s=${s##* }
  else say nohash "found no sha256sum, shasum or openssl to check the cached binary with"
  fi
}
mark() { rm -f "$m" && : >"$m" || say nodir "cannot write $m"; }
if [ -n "$S" ]; then
  t=$d/.$SHA.$$
  rm -f "$t"
  cp "$S" "$t" 2>/dev/null || { rm -f "$t"; say nodir "cannot copy the binary into $d"; }
  sum "$t"
  [ "$s" = "$SHA" ] || { rm -f "$t"; say corrupt "the binary copied into $d has SHA-256 '$s'"; }
  chmod 700 "$t" && mv -f "$t" "$f" || { rm -f "$t"; say nodir "cannot install $f"; }
  mark
  fl=$(LC_ALL=C ls -ldn -- "$f") || say miss
fi
[ -n "$fl" ] || say miss
set -- $fl
case $1 in -*) ;; l*) rm -f "$f"; say miss;; *) say unsafe "$f is not a regular file";; esac
[ "$3" = "$u" ] || { rm -f "$f"; say miss; }
[ "$f" -nt "$m" ]
w=$?
if [ ! -f "$m" ] || [ -L "$m" ] || [ "$w" != 1 ]; then
  sum "$f"
  [ "$s" = "$SHA" ] || { rm -f "$f" "$m"; say miss; }
  mark
fi
[ -x "$f" ] || chmod 700 "$f"
[ -x "$f" ] || say noexec "$d cannot run programs (a noexec mount)"
printf '%s\n' "$M run" >&2
@ENV@exec "$f"
"""


def binary_for(module, machine):
    """The file name of the binary for ``machine`` (an ``uname -m`` value), or raise."""
    arch = ARCHITECTURES.get((machine or "").strip().lower())
    if arch is None:
        supported = ", ".join(sorted(set(ARCHITECTURES.values())))
        raise AnsibleActionFail(
            "%s.%s has no binary for architecture '%s'; supported: %s"
            % (COLLECTION, module, (machine or "").strip()[:80] or "unknown", supported)
        )
    return "%s_%s" % (module, arch)


def machine_from_uname(stdout):
    """The architecture in ``uname -m``'s output: its last line that is a known machine name.

    Whatever else a login prints (a banner, sudo's "unable to resolve host") is not the
    architecture; an unknown machine is the last non-empty line, for the error message.
    """
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower() in ARCHITECTURES:
            return line
    return lines[-1] if lines else ""


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def binary_sha256(path):
    """The SHA-256 of the binary at ``path``, hashed once per run of Ansible for each version
    of the file, not once per task and host: remembered in the controller's per-run
    temporary directory (shared by the workers, removed when the run ends), keyed by the
    path, size and modification time. A wrong value there can only make the target refuse
    the binary (it hashes what it runs), never run another one."""
    st = os.stat(path)
    key = "%s|%d|%d" % (path, st.st_size, st.st_mtime_ns)
    directory = os.path.join(C.DEFAULT_LOCAL_TMP, "hx_reliability_sha256")
    cache = os.path.join(directory, hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())
    try:
        with open(cache, encoding="ascii") as f:
            known = f.read()
        if len(known) == 64:
            return known
    except (OSError, ValueError):
        pass
    value = file_sha256(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.%d" % (cache, os.getpid())
    with open(tmp, "w", encoding="ascii") as f:
        f.write(value)
    os.replace(tmp, cache)
    return value


class BinaryModuleAction(ActionBase):
    """Runs ``bin/<module>_<arch>`` for the task's module."""

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super(BinaryModuleAction, self).run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        module = (self._task.resolved_action or self._task.action).split(".")[-1]
        try:
            target_vars = self._target_vars(task_vars)
            binary = os.path.join(BIN_DIR, binary_for(module, self._target_machine(task_vars, target_vars)))
            if not os.path.isfile(binary):
                raise AnsibleActionFail(
                    "the binary %s is not installed in this collection; build it with 'make build'" % binary
                )
            name = "%s.%s" % (COLLECTION, module)
            warnings = []
            res = None
            if self._fast_path_enabled(target_vars):
                res = self._run_fast(name, binary, task_vars, warnings)
            if res is None:
                res = self._run_transferred(name, binary, task_vars)
            data = self._finish(res)
            if warnings:
                data["warnings"] = list(data.get("warnings") or []) + warnings
            result = merge_hash(result, data)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # -- what to run -------------------------------------------------------------------

    def _target_vars(self, task_vars):
        """The variables of the host the module runs on (the delegate's when delegating)."""
        if self._task.delegate_to:
            delegated = (task_vars.get("ansible_delegated_vars") or {}).get(self._task.delegate_to)
            if delegated is not None:
                return delegated
        return task_vars

    def _var(self, target_vars, name, default=None):
        value = target_vars.get(name, default)
        return self._templar.template(value) if isinstance(value, str) else value

    def _fast_path_enabled(self, target_vars):
        if self._task.async_val or getattr(self._connection._shell, "SHELL_FAMILY", "sh") != "sh":
            return False
        return boolean(self._var(target_vars, "hx_reliability_fast_path", True), strict=False)

    def _target_machine(self, task_vars, target_vars):
        # An explicit choice wins: for hosts whose uname is unusual, and for tests that run
        # the aarch64 binary under qemu-user on an x86_64 machine.
        forced = self._var(target_vars, "hx_reliability_architecture")
        if forced:
            return str(forced)
        # Gathered facts describe the inventory host, not a delegate: only trust them
        # when the task runs where they were gathered.
        if not self._task.delegate_to:
            facts = task_vars.get("ansible_facts") or {}
            machine = facts.get("architecture") or facts.get("machine")
            if machine:
                return machine
        cache = self._machine_cache_path(task_vars)
        try:
            with open(cache, encoding="utf-8") as f:
                return f.read()
        except OSError:
            pass
        # Not as the become user: the machine is the same for every user, and a become
        # failure (or sudo's warnings) would otherwise be taken for the architecture.
        res = self._low_level_execute_command("uname -m", sudoable=False)
        if res.get("rc") != 0:
            raise AnsibleActionFail(
                "cannot find the target's architecture: 'uname -m' exited %s: %s"
                % (res.get("rc"), (res.get("stderr") or res.get("stdout") or "").strip()[-300:])
            )
        machine = machine_from_uname(res.get("stdout"))
        if machine.lower() in ARCHITECTURES:
            tmp = "%s.%d" % (cache, os.getpid())
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(machine)
            os.replace(tmp, cache)
        return machine

    def _machine_cache_path(self, task_vars):
        """Where this run remembers a host's machine: the controller's per-run temporary
        directory (shared by every worker, removed when the run ends), as ansible-core's
        own AnsiballZ cache is."""
        host = self._task.delegate_to or task_vars.get("inventory_hostname") or ""
        key = "%s|%s|%s" % (self._connection.transport, host, self._get_remote_addr(task_vars))
        directory = os.path.join(C.DEFAULT_LOCAL_TMP, "hx_reliability_machine")
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return os.path.join(directory, hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest())

    # -- arguments and results (one piece of code for both paths) ----------------------

    def _module_args(self, name, task_vars):
        """The task's arguments plus the `_ansible_*` keys, as ansible-core adds them."""
        args = dict(self._task.args)
        args[CONTROLLER_KEY] = self._controller(task_vars)
        self._update_module_args(name, args, task_vars)
        return _encode_args(args)

    def _controller(self, task_vars):
        """Who runs this task on the controller, for the audit trail: strings only."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = None
        found = {
            "controller_user": user,
            # The file and line the task is written at: the playbook, or the role file.
            "playbook": self._task.get_path() or None,
            "play": task_vars.get("ansible_play_name"),
            "task": self._task.get_name(),
        }
        return dict((k, str(v)) for k, v in found.items() if v)

    def _finish(self, res):
        data = self._parse_returned_data(res, "legacy") if _PARSE_TAKES_PROFILE else self._parse_returned_data(res)
        data.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(data)
        return data

    # -- the normal path ---------------------------------------------------------------

    def _run_transferred(self, name, binary, task_vars):
        """What ansible-core's _execute_module does for a binary module, from bin/."""
        shell = self._connection._shell
        tmpdir = shell.tmpdir or self._make_tmp_path()
        args = self._module_args(name, task_vars)
        remote = shell.join_path(tmpdir, "AnsiballZ_%s" % os.path.basename(binary))
        args_path = shell.join_path(tmpdir, "args")
        self._transfer_file(binary, remote)
        self._transfer_data(args_path, args)
        cmd = shell.build_module_command(self._compute_environment_string(), "", remote, arg_path=args_path).strip()
        self._fixup_perms2([tmpdir, remote, args_path], self._get_remote_user())
        return self._low_level_execute_command(cmd, sudoable=True)

    # -- the fast path -----------------------------------------------------------------

    def _run_fast(self, name, binary, task_vars, warnings):
        """Run the cached binary; None (and a warning) when the normal path must do it."""
        sha = binary_sha256(binary)
        args = self._module_args(name, task_vars)
        res, reason = self._fast_command(sha, "", args)
        if reason and reason[0] == "miss":
            shell = self._connection._shell
            tmpdir = shell.tmpdir or self._make_tmp_path()
            staged = shell.join_path(tmpdir, os.path.basename(binary))
            self._transfer_file(binary, staged)
            self._fixup_perms2([tmpdir, staged], self._get_remote_user(), execute=False)
            res, reason = self._fast_command(sha, staged, args)
            if reason and reason[0] == "miss":
                reason = ("miss", "the binary just installed in the cache is gone")
        if reason is None:
            return res
        warnings.append(
            "%s: not using the cached binary on this host (%s: %s); ran it the normal way. "
            "Set hx_reliability_fast_path: false to always do so." % (name, reason[0], reason[1] or "no detail")
        )
        return None

    def _fast_command(self, sha, staged, args):
        """Run the fast-path script once. Returns (result, None) when the binary ran, or
        (result, (reason, detail)) when it did not."""
        env = self._compute_environment_string().strip()
        script = (
            FAST_PATH_SCRIPT.replace("@MARKER@", MARKER)
            .replace("@SHA@", sha)
            .replace("@STAGED@", shlex.quote(staged))
            .replace("@ENV@", env + " " if env else "")
        )
        res = self._low_level_execute_command(script, sudoable=True, in_data=to_bytes(args, errors="surrogate_or_strict"))
        stdout = res.get("stdout") or ""
        stderr_lines = (res.get("stderr") or "").splitlines()
        started = "%s start" % MARKER in stderr_lines
        ran = "%s run" % MARKER in stderr_lines
        res["stderr"] = "\n".join(line for line in stderr_lines if not line.startswith(MARKER + " "))
        if stdout.startswith(MARKER + " "):
            words = stdout.strip().split(" ", 2)
            return res, (words[1], words[2] if len(words) > 2 else "")
        if not started:
            become = self._connection.become
            if become is not None:
                raise AnsibleActionFail(
                    "could not become '%s' with %s: %s"
                    % (self.get_become_option("become_user"), become.name, (res["stderr"] or stdout).strip()[-500:] or "rc %s" % res.get("rc"))
                )
            raise AnsibleActionFail(
                "the target's shell did not run the module command (rc %s): %s"
                % (res.get("rc"), (res["stderr"] or stdout).strip()[-500:])
            )
        if ran and not stdout.strip() and res.get("rc") in (126, 127):
            return res, ("noexec", "the cached binary could not be executed: %s" % res["stderr"].strip()[-300:])
        return res, None
