#!/usr/bin/env python3
"""Side-by-side timing for bench/*.sh: every command once per run, in turn, after warm-ups.

    measure.py [--runs N] [--warmup N] [--per-task N] [--unit s|ms] [--title TEXT]
               [--baseline NAME] [--ignore-failure] [--cpu-per N [--cpu-match TEXT]]
               -n NAME COMMAND [-n NAME COMMAND ...]

Unlike hyperfine, which runs all of one command's runs before the next command's, each run
here runs every command once, one after the other, so that the load of a shared machine
falls on all of them alike; a ratio is taken within a run (command / baseline of the same
run), and the table shows the median and min-max of those ratios next to the median and
min-max times. The baseline is the first command unless --baseline names another.

--per-task N: COMMAND holds ``{n}`` and is run with n=1 and n=N in each run; the figure is
the cost of one task, (t(N) - t(1)) / (N - 1), which removes the fixed start-up cost (an
ansible-playbook process, a connection). Figures are then in ms.

--cpu-per N: each command's CPU time (user + sys) is taken too, divided by N (the hosts a
play ran on), in a second table (ms): the command and every process it waited for (an
ansible-playbook, its forks, their ssh clients: getrusage's RUSAGE_CHILDREN), plus the CPU
that processes whose command line holds --cpu-match TEXT used meanwhile (read from /proc
before and after: the SSH connection masters that ControlPersist detaches, which no one
waits for; a master that ends during the command loses its last ticks).

Prints a markdown table, and appends one JSON object per table to the file named by
HX_BENCH_RESULTS (if set; and to --json FILE): suite, title, unit, baseline and per
command the run-by-run figures (always in seconds) and ratios. BENCH_QUICK=1 means 1 run and no warm-up unless given.
Standard library only.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    quick = os.environ.get("BENCH_QUICK") == "1"
    p.add_argument("--runs", type=int, default=1 if quick else 5)
    p.add_argument("--warmup", type=int, default=0 if quick else 1)
    p.add_argument("--per-task", type=int, default=0)
    p.add_argument("--unit", choices=["s", "ms"], default=None)
    p.add_argument("--title", default="")
    p.add_argument("--baseline", default=None)
    p.add_argument("--ignore-failure", action="store_true")
    p.add_argument("--cpu-per", type=int, default=0)
    p.add_argument("--cpu-match", default=None)
    p.add_argument("--json", default=None, help="also write this table's record to this file")
    p.add_argument("-n", "--name", nargs=2, action="append", metavar=("NAME", "COMMAND"), required=True)
    a = p.parse_args()
    if quick and "--runs" not in sys.argv:
        a.runs = 1
    a.unit = a.unit or ("ms" if a.per_task else "s")
    return a


def matching_cpu(text):
    """{pid: CPU seconds (user + sys)} of the processes whose command line holds text."""
    if not text:
        return {}
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    needle = text.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3): utime and stime are fields 14 and 15.
        found[pid] = (int(fields[11]) + int(fields[12])) / tick
    return found


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(command, a):
    """(wall seconds, CPU seconds) of one run of command."""
    before, cpu0 = matching_cpu(a.cpu_match), children_cpu()
    started = time.perf_counter()
    done = subprocess.run(["bash", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    cpu = children_cpu() - cpu0
    cpu += sum(t - before.get(pid, 0.0) for pid, t in matching_cpu(a.cpu_match).items())
    if done.returncode != 0 and not a.ignore_failure:
        sys.stderr.write(done.stderr.decode(errors="replace")[-4000:])
        sys.exit(f"measure.py: exit {done.returncode} from: {command}")
    return elapsed, cpu


def once(command, a):
    if not a.per_task:
        return timed(command, a)
    one, one_cpu = timed(command.replace("{n}", "1"), a)
    many, many_cpu = timed(command.replace("{n}", str(a.per_task)), a)
    return (many - one) / (a.per_task - 1), (many_cpu - one_cpu) / (a.per_task - 1)


def fmt(x, unit):
    v = x * 1000 if unit == "ms" else x
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if unit == "s" else f"{v:.1f}"


def main():
    a = parse()
    names = [n for n, _ in a.name]
    baseline = a.baseline or names[0]
    if baseline not in names:
        sys.exit(f"measure.py: --baseline {baseline!r} is not one of {names}")
    for _ in range(a.warmup):
        for _, command in a.name:
            once(command, a)
    times = {n: [] for n in names}
    cpu = {n: [] for n in names}
    for _ in range(a.runs):
        for name, command in a.name:
            wall, used = once(command, a)
            times[name].append(wall)
            cpu[name].append(used / a.cpu_per if a.cpu_per else 0.0)
    what = f"per task ({a.per_task}-task plays)" if a.per_task else "wall"
    report(a, names, baseline, times, a.unit, what, a.title)
    if a.cpu_per:
        report(a, names, baseline, cpu, "ms", f"controller CPU per host ({a.cpu_per} hosts)",
               f"{a.title}, controller CPU per host" if a.title else "controller CPU per host")


def report(a, names, baseline, times, unit, what, title):
    """Prints one table and appends its record."""
    rows = []
    for name in names:
        t = times[name]
        ratios = [x / b if b > 0 else float("nan") for x, b in zip(t, times[baseline])]
        rows.append(
            {
                "name": name,
                "runs": t,
                "median": statistics.median(t),
                "min": min(t),
                "max": max(t),
                "ratios": ratios,
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        )
    print(f"\n{title + ': ' if title else ''}{a.runs} runs, {a.warmup} warm-up, commands interleaved\n")
    print(f"| {what} | median {unit} | min-max {unit} | x {baseline}, median of runs | min-max of ratios |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['name']} | {fmt(r['median'], unit)} | {fmt(r['min'], unit)}-{fmt(r['max'], unit)} "
            f"| {r['ratio_median']:.2f} | {r['ratio_min']:.2f}-{r['ratio_max']:.2f} |"
        )
    record = {
        "suite": os.environ.get("HX_BENCH_SUITE", ""),
        "title": title,
        "unit": unit,
        "per_task": a.per_task or None,
        "warmup": a.warmup,
        "baseline": baseline,
        "commands": rows,
    }
    if a.json and title == a.title:
        with open(a.json, "w") as f:
            json.dump(record, f)
    out = os.environ.get("HX_BENCH_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
