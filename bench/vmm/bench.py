#!/usr/bin/env python3
"""rvirt-vmm vs QEMU microvm: start-up, exit, peak RSS and cost per exit.

Called by bench/vmm/run.sh (which builds everything and passes the paths).
Each run: a pipe for the child's stdout, t0 = CLOCK_MONOTONIC just before
posix_spawn; t_line when the guest's line has arrived on the pipe; t_exit when
wait4() has reaped the child.

Peak RSS comes from separate runs wrapped in GNU time (`/usr/bin/time -f %M`),
not from the timed runs' own wait4() rusage: Linux's ru_maxrss is the
process's signal->maxrss, which exec() raises to the RSS high-water mark of
the mm it replaces. posix_spawn()/vfork share the parent's mm, so a child
spawned straight from Python reports Python's own ~13 MiB whatever it runs
(`/bin/true` included). GNU time fork()s from a ~1 MiB process, so its child
starts near zero and %M is the VMM's own peak (floor ~1 MiB, `time true`).
The timed runs' ru_maxrss is kept in the JSON as `maxrss_kib_floored`.

Runs alternate between the two VMMs (and which one goes first alternates
each round) so that drift in host load hits both sides equally.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from child import Output  # noqa: E402

EXIT_COUNT = 100_000  # the `exits` guest's number of `out` to port 0xe0
MIB = 1024


def spawn_and_measure(argv, marker, timeout, time_bin=None):
    """Run argv once; return dict with line_ms, exit_ms, maxrss_kib, status.

    With time_bin, argv runs under GNU time and maxrss_kib is its %M."""
    rss_file = None
    if time_bin:
        rss_file = f"/tmp/rvirt-bench-vmm-{os.getpid()}.rss"
        argv = [time_bin, "-f", "%M", "-o", rss_file, "--"] + argv
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2),
        (os.POSIX_SPAWN_CLOSE, rfd),
    ]
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    os.close(wfd)
    os.close(devnull)
    buf = b""
    t_line = None
    output = Output(pid, rfd, t0 + int(timeout * 1e9))
    try:
        for now, chunk in output:
            if t_line is None:
                buf += chunk
                if marker in buf:
                    t_line = now
        _, status, ru = os.wait4(pid, 0)
        t_exit = time.monotonic_ns()
    finally:
        os.close(rfd)
    maxrss = None
    if rss_file:
        with open(rss_file) as f:
            # "Command exited with non-zero status N" may precede the number.
            maxrss = int(f.read().split()[-1])
        os.unlink(rss_file)
    return {
        "line_ms": None if t_line is None else (t_line - t0) / 1e6,
        "exit_ms": (t_exit - t0) / 1e6,
        "maxrss_kib": maxrss,
        "maxrss_kib_floored": ru.ru_maxrss,
        "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1000,
        "user_ms": ru.ru_utime * 1000,
        "status": os.waitstatus_to_exitcode(status),
        "killed": output.killed,
        "output_head": buf[:200].decode(errors="replace"),
    }


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--oneline", required=True)
    ap.add_argument("--exits", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--time", required=True, help="GNU time (for peak RSS)")
    ap.add_argument("--json", required=True)
    ap.add_argument("--commit", default="")
    a = ap.parse_args()

    def rvirt_argv(mem, guest):
        return [a.rvirt, "-m", str(mem), "-no-reboot", "-serial", "stdio",
                "-kernel", guest]

    def qemu_argv(mem, guest):
        return [a.qemu, "-M", "microvm", "-enable-kvm", "-cpu", "qemu64,-pni",
                "-m", str(mem), "-nodefaults", "-no-reboot", "-serial", "stdio",
                "-display", "none", "-device", "isa-debug-exit",
                "-kernel", guest]

    # (name, memory MiB, guest, marker, GNU time wrapper for peak RSS)
    cases = [
        ("oneline-128", 128, a.oneline, b"ONELINE", None),
        ("rss-128", 128, a.oneline, b"ONELINE", a.time),
        ("rss-1024", 1024, a.oneline, b"ONELINE", a.time),
        ("exits-128", 128, a.exits, b"EXITS DONE", None),
    ]
    vmms = {"rvirt": rvirt_argv, "qemu": qemu_argv}
    # rvirt exits 0 on the i8042 reset with -no-reboot; QEMU exits through
    # isa-debug-exit with (0 << 1) | 1 = 1.
    expected_status = {"rvirt": 0, "qemu": 1}
    samples = {v: {c[0]: [] for c in cases} for v in vmms}
    problems = []

    for w in range(a.warmup):
        for name, mem, guest, marker, tb in cases:
            for v, mk in vmms.items():
                spawn_and_measure(mk(mem, guest), marker, a.timeout, tb)

    for i in range(a.runs):
        order = ["rvirt", "qemu"] if i % 2 == 0 else ["qemu", "rvirt"]
        for name, mem, guest, marker, tb in cases:
            for v in order:
                r = spawn_and_measure(vmms[v](mem, guest), marker, a.timeout, tb)
                r["round"] = i
                samples[v][name].append(r)
                if r["line_ms"] is None or r["killed"] or r["status"] != expected_status[v]:
                    problems.append(f"{v} {name} round {i}: status {r['status']}"
                                    f"{' (killed on timeout)' if r['killed'] else ''}"
                                    f", line {'seen' if r['line_ms'] is not None else 'MISSING'}"
                                    f", output {r['output_head']!r}")
        print(f"  round {i + 1}/{a.runs} done", file=sys.stderr, flush=True)

    m = {}
    for v in vmms:
        s = samples[v]
        m[v] = {
            "line_ms": med([r["line_ms"] for r in s["oneline-128"]]),
            "exit_ms": med([r["exit_ms"] for r in s["oneline-128"]]),
            "rss128_mib": med([r["maxrss_kib"] for r in s["rss-128"]]) / MIB,
            "rss1024_mib": med([r["maxrss_kib"] for r in s["rss-1024"]]) / MIB,
            "exits_exit_ms": med([r["exit_ms"] for r in s["exits-128"]]),
        }
        m[v]["us_per_exit"] = (m[v]["exits_exit_ms"] - m[v]["exit_ms"]) * 1000 / EXIT_COUNT
        # Secondary, less sensitive to other load on the host: CPU time
        # (user+sys, from wait4) per exit, and the VMM's user-space share.
        m[v]["cpu_us_per_exit"] = (med([r["cpu_ms"] for r in s["exits-128"]])
                                   - med([r["cpu_ms"] for r in s["oneline-128"]])) * 1000 / EXIT_COUNT
        m[v]["user_us_per_exit"] = (med([r["user_ms"] for r in s["exits-128"]])
                                    - med([r["user_ms"] for r in s["oneline-128"]])) * 1000 / EXIT_COUNT

    def span(xs):
        xs = [x for x in xs if x is not None]
        return [min(xs), max(xs)] if xs else None

    spread = {v: {
        "line_ms": span([r["line_ms"] for r in samples[v]["oneline-128"]]),
        "exit_ms": span([r["exit_ms"] for r in samples[v]["oneline-128"]]),
        "rss128_kib": span([r["maxrss_kib"] for r in samples[v]["rss-128"]]),
        "rss1024_kib": span([r["maxrss_kib"] for r in samples[v]["rss-1024"]]),
        "exits_exit_ms": span([r["exit_ms"] for r in samples[v]["exits-128"]]),
    } for v in vmms}

    # metric key, label, unit, target ratio, absolute cap for rvirt (or None)
    rows = [
        ("line_ms", "fork -> 'ONELINE' on serial (-m 128)", "ms", 0.08, None),
        ("exit_ms", "fork -> process exit (-m 128)", "ms", 0.2, None),
        ("rss128_mib", "peak RSS, -m 128", "MiB", 0.08, 3.0),
        ("rss1024_mib", "peak RSS, -m 1024", "MiB", 0.08, 3.0),
        ("us_per_exit", "per exit, (exits - oneline) / 100000", "us", 0.85, None),
    ]
    table = []
    print()
    print(f"{'metric':38} {'unit':>4} {'rvirt':>8} {'QEMU':>8} {'ratio':>6}  {'target':18} result")
    for key, label, unit, target, cap in rows:
        rv, qv = m["rvirt"][key], m["qemu"][key]
        ratio = rv / qv if qv else float("nan")
        ok = ratio <= target and (cap is None or rv < cap)
        tgt = f"<= {target}" + (f", < {cap:g} {unit}" if cap else "")
        print(f"{label:38} {unit:>4} {rv:8.2f} {qv:8.2f} {ratio:6.3f}  {tgt:18} "
              f"{'PASS' if ok else 'MISS'}")
        table.append({"metric": key, "label": label, "unit": unit, "rvirt": rv,
                      "qemu": qv, "ratio": ratio, "target_ratio": target,
                      "target_abs_max": cap, "pass": ok})
    print(f"\n(exits guest, time to exit: rvirt {m['rvirt']['exits_exit_ms']:.1f} ms, "
          f"QEMU {m['qemu']['exits_exit_ms']:.1f} ms; medians of {a.runs} runs each, "
          f"alternating; load average at end {os.getloadavg()[0]:.2f})")
    print(f"  CPU time per exit (user+sys): rvirt {m['rvirt']['cpu_us_per_exit']:.2f} us "
          f"(user {m['rvirt']['user_us_per_exit']:.2f}), QEMU {m['qemu']['cpu_us_per_exit']:.2f} us "
          f"(user {m['qemu']['user_us_per_exit']:.2f}), ratio "
          f"{m['rvirt']['cpu_us_per_exit'] / m['qemu']['cpu_us_per_exit']:.3f}")
    for v in vmms:
        sp = spread[v]
        print(f"  {v:5} min-max: line {sp['line_ms'][0]:.1f}-{sp['line_ms'][1]:.1f} ms, "
              f"exit {sp['exit_ms'][0]:.1f}-{sp['exit_ms'][1]:.1f} ms, "
              f"exits guest {sp['exits_exit_ms'][0]:.0f}-{sp['exits_exit_ms'][1]:.0f} ms")
    if problems:
        print("\nruns that did not end as expected:")
        for p in problems:
            print("  " + p)

    try:
        qver = subprocess.run([a.qemu, "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
    except Exception:  # noqa: BLE001 - informational only
        qver = "?"
    out = {
        "benchmark": "vmm",
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "loadavg_end": os.getloadavg()},
        "rvirt_commit": a.commit,
        "qemu_version": qver,
        "runs": a.runs,
        "warmup": a.warmup,
        "command_lines": {"rvirt": rvirt_argv(128, "GUEST"),
                          "qemu": qemu_argv(128, "GUEST")},
        "guests": {"oneline": a.oneline, "exits": a.exits},
        "medians": m,
        "min_max": spread,
        "table": table,
        "problems": problems,
        "samples": samples,
    }
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nresults: {a.json}")


if __name__ == "__main__":
    main()
