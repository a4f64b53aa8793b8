#!/usr/bin/env python3
"""rvirt-vmm vs QEMU: virtio-blk requests per second, guest-driven, on
microvm's virtio-mmio or (--pci) pc's virtio-blk-pci.

Called by bench/virtio/run.sh (which builds everything and passes the paths).
Both VMMs boot the `blkbench` test guest on the same raw image in tmpfs with
the same -drive/-device options. The guest runs four phases (seqread,
seqwrite, randread, randwrite) of N 4 KiB requests at queue depth QD and
prints `PHASE <name> START` / `PHASE <name> END` on the serial line.

Timing: host-side. The child's stdout is a pipe; each line is stamped with
CLOCK_MONOTONIC when the chunk holding its newline arrives. A phase lasts
from its START line's stamp to its END line's (the END line's ~18 serial
bytes, one exit each, are inside: ~0.1-0.3 ms against phases of 100+ ms).
Requests per second = N / that. The guest also prints its RDTSC delta per
phase (`PHASE_STATS ... tsc=`); its ratio (QEMU cycles / rvirt cycles) is
printed as a cross-check, it needs no TSC frequency.

Rounds alternate between the VMMs (the first of each pair alternates too),
so drift in host load hits both sides; the figures are medians over rounds.
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

PHASES = ["seqread", "seqwrite", "randread", "randwrite"]


def threads(pid):
    """{tid: (name, ns on a CPU, ns waiting on a run queue)} from schedstat."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run, wait, _ = f.read().split()
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
            out[t] = (name, int(run), int(wait))
        except (OSError, ValueError):
            pass
    return out


def run_once(argv, timeout, nice=0):
    """Runs argv; returns stamped lines, wall/CPU time, exit status."""
    if nice:
        argv = ["nice", "-n", str(nice)] + argv
        argv[0] = "/usr/bin/nice"
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    errfile = f"/tmp/rvirt-bench-virtio-{os.getpid()}.err"
    errfd = os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, errfd, 2),
        (os.POSIX_SPAWN_CLOSE, rfd),
    ]
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    os.close(wfd)
    os.close(devnull)
    os.close(errfd)
    lines = []  # (ns since t0, text)
    snaps = {}  # marker line -> threads() as it arrived
    partial = b""
    output = Output(pid, rfd, t0 + int(timeout * 1e9))
    try:
        for now, chunk in output:
            partial += chunk
            while b"\n" in partial:
                line, partial = partial.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                lines.append((now - t0, text))
                if text.startswith("PHASE ") and text.endswith((" START", " END")):
                    snaps[text] = threads(pid)
        _, status, ru = os.wait4(pid, 0)
        t_exit = time.monotonic_ns()
    finally:
        os.close(rfd)
    with open(errfile, errors="replace") as f:
        err = f.read()
    os.unlink(errfile)
    return {
        "lines": lines,
        "snaps": snaps,
        "exit_ms": (t_exit - t0) / 1e6,
        "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1000,
        "user_ms": ru.ru_utime * 1000,
        "sys_ms": ru.ru_stime * 1000,
        "status": os.waitstatus_to_exitcode(status),
        "killed": output.killed,
        "stderr": err[-500:],
    }


def parse(run, n):
    """Per phase: host seconds, req/s, and the guest's PHASE_STATS fields."""
    start, end, stats = {}, {}, {}
    for t, line in run["lines"]:
        w = line.split()
        if len(w) >= 3 and w[0] == "PHASE" and w[2] == "START":
            start[w[1]] = t
        elif len(w) >= 3 and w[0] == "PHASE" and w[2] == "END":
            end[w[1]] = t
        elif len(w) >= 2 and w[0] == "PHASE_STATS":
            stats[w[1]] = {k: int(v) for k, v in (x.split("=", 1) for x in w[2:])}
    out = {}
    for p in PHASES:
        if p in start and p in end and p in stats and stats[p].get("n") == n:
            dt = (end[p] - start[p]) / 1e9
            out[p] = {"s": dt, "rps": n / dt, **stats[p]}
            a = run["snaps"].get(f"PHASE {p} START", {})
            b = run["snaps"].get(f"PHASE {p} END", {})
            # Per thread over the phase; the vCPU is the one that ran most
            # (the guest polls). Everything else is the VMM's device side.
            d = {t: (b[t][0], b[t][1] - a.get(t, ("", 0, 0))[1],
                     b[t][2] - a.get(t, ("", 0, 0))[2]) for t in b}
            if d:
                vcpu = max(d, key=lambda t: d[t][1])
                out[p]["vcpu_run_us_per_req"] = d[vcpu][1] / 1e3 / n
                out[p]["dev_cpu_us_per_req"] = sum(x[1] for t, x in d.items() if t != vcpu) / 1e3 / n
                out[p]["dev_wait_us_per_req"] = sum(x[2] for t, x in d.items() if t != vcpu) / 1e3 / n
                out[p]["threads"] = {f"{x[0]}/{t}": [x[1], x[2]] for t, x in d.items()}
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--image", required=True, help="raw image (in tmpfs)")
    ap.add_argument("--format", default="raw", choices=["raw", "qcow2"],
                    help="qcow2: a new image (qemu-img create, --prealloc) before every run, "
                    "so each VMM's writes allocate alike")
    ap.add_argument("--prealloc", default="off", choices=["off", "metadata"],
                    help="qcow2 preallocation= of the images made for each run")
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--qd", default="16,1", help="comma-separated queue depths")
    ap.add_argument("--cache", default="writeback", help="comma-separated cache= modes")
    ap.add_argument("--aio", default="threads")
    ap.add_argument("--extra-append", default="", help="more guest command line")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="another rvirt-vmm binary in the same rounds, compared with QEMU too")
    ap.add_argument("--pci", action="store_true",
                    help="pc with virtio-blk-pci (modern) instead of microvm's virtio-mmio")
    ap.add_argument("--nice", type=int, default=0,
                    help="run both VMMs at this nice value (e.g. -10: ahead of other work)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--json", required=True)
    ap.add_argument("--commit", default="")
    a = ap.parse_args()

    machine, device, pci = "microvm,acpi=off", "virtio-blk-device,drive=d0", ""
    if a.pci:
        # Modern only on both (QEMU's default on a conventional bus is a
        # transitional device); the guest finds it on bus 0.
        machine = "pc"
        device = "virtio-blk-pci,drive=d0,disable-legacy=on"
        pci = "blkbench.pci=1"

    def common(cache, qd):
        return ["-M", machine, "-enable-kvm", "-cpu", "qemu64,-pni",
                "-m", "128", "-nodefaults", "-no-reboot", "-display", "none",
                "-serial", "stdio",
                "-drive", f"file={a.image},format={a.format},if=none,id=d0,cache={cache},aio={a.aio}",
                "-device", device,
                "-kernel", a.guest,
                "-append", f"blkbench.n={a.n} blkbench.qd={qd} {pci} {a.extra_append}".strip()]

    # QEMU only: isa-debug-exit (the guest's fast way out; microvm has no
    # i8042) and virtio-mmio version 2 (microvm's transports default to the
    # legacy version 1 interface). rvirt-vmm rejects both options and has
    # neither need: its transports are version 2 and it exits on the
    # guest's i8042 reset / triple fault.
    qemu_only = ["-device", "isa-debug-exit"]
    if not a.pci:
        qemu_only += ["-global", "virtio-mmio.force-legacy=false"]
    vmms = {
        "rvirt": lambda cache, qd: [a.rvirt] + common(cache, qd),
        "qemu": lambda cache, qd: [a.qemu] + common(cache, qd) + qemu_only,
    }
    expected_status = {"rvirt": 0, "qemu": 1}
    extra = []
    for spec in a.also:
        name, path = spec.split("=", 1)
        vmms[name] = (lambda path: lambda cache, qd: [path] + common(cache, qd))(path)
        expected_status[name] = 0
        extra.append(name)
    def run(argv):
        if a.format == "qcow2":
            # A fresh image for every run: after one run its clusters are
            # allocated, and the next VMM would measure a different thing.
            if os.path.exists(a.image):
                os.unlink(a.image)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-o",
                            f"preallocation={a.prealloc}", a.image, f"{a.size_mib}M"],
                           check=True)
        return run_once(argv, a.timeout, a.nice)

    cases = [(c, int(q)) for c in a.cache.split(",") for q in a.qd.split(",")]
    samples = {f"{c}/qd{q}": {v: [] for v in vmms} for c, q in cases}
    problems = []

    for _ in range(a.warmup):
        for c, q in cases:
            for v, mk in vmms.items():
                run(mk(c, q))

    for i in range(a.rounds):
        names = list(vmms)
        order = names[i % len(names):] + names[:i % len(names)]
        if len(names) == 2 and i % 2:
            order = ["qemu", "rvirt"]
        for c, q in cases:
            key = f"{c}/qd{q}"
            for v in order:
                r = run(vmms[v](c, q))
                r["phases"] = parse(r, a.n)
                r["round"] = i
                samples[key][v].append(r)
                bad = [p for p in PHASES if p not in r["phases"]]
                errs = sum(x.get("errors", 0) + x.get("rekicks", 0) for x in r["phases"].values())
                if bad or errs or r["killed"] or r["status"] != expected_status[v]:
                    tail = [l for _, l in r["lines"][-4:]]
                    problems.append(f"{v} {key} round {i}: status {r['status']}"
                                    f"{' (killed on timeout)' if r['killed'] else ''}, "
                                    f"phases missing {bad}, errors+rekicks {errs}, "
                                    f"last lines {tail}, stderr {r['stderr'][-200:]!r}")
        print(f"  round {i + 1}/{a.rounds} done", file=sys.stderr, flush=True)

    summary = {}

    def fmt(x, f):
        return (f % x) if x is not None else "-"

    print()
    print(f"virtio-blk{'-pci on pc' if a.pci else ' on microvm'}, 4 KiB requests, N={a.n} per phase, median of {a.rounds} rounds "
          f"(host-timed serial markers); image {a.image}"
          + (f" (qcow2, fresh each run, preallocation={a.prealloc})" if a.format == "qcow2" else "")
          + (f"; both VMMs at nice {a.nice}" if a.nice else ""))
    print("ratio = median rvirt / median QEMU; paired = median over rounds of the "
          "round's rvirt/QEMU (scored);\ntsc = QEMU/rvirt guest TSC cycles (medians); "
          "best = each VMM's fastest round (least disturbed by other work)")
    print(f"{'case':15} {'phase':9} {'rvirt req/s':>11} {'QEMU req/s':>10} {'ratio':>6} "
          f"{'paired':>6}  {'tsc':>6}  {'best r':>8} {'best Q':>8} {'ratio':>6}  {'kicks/req r/q':>14}  paired >= 1.0")
    for c, q in cases:
        key = f"{c}/qd{q}"
        summary[key] = {}
        for p in PHASES:
            row = {}
            for v in vmms:
                ph = [r["phases"].get(p) for r in samples[key][v]]
                ph = [x for x in ph if x]
                row[v] = {
                    "rps": med([x["rps"] for x in ph]),
                    "rps_min_max": [min(x["rps"] for x in ph), max(x["rps"] for x in ph)] if ph else None,
                    "tsc": med([x["tsc"] for x in ph]),
                    "kicks_per_req": med([x["kicks"] / a.n for x in ph]),
                    "dev_cpu_us_per_req": med([x.get("dev_cpu_us_per_req") for x in ph]),
                    "dev_wait_us_per_req": med([x.get("dev_wait_us_per_req") for x in ph]),
                }
            for v in ["rvirt"] + extra:
                cmp = {}
                rv, qv = row[v]["rps"], row["qemu"]["rps"]
                ratio = rv / qv if rv and qv else None
                # Paired: the runs of one round saw about the same host load.
                pairs = [(x["phases"].get(p), y["phases"].get(p))
                         for x, y in zip(samples[key][v], samples[key]["qemu"])]
                cmp["paired_ratios"] = [x["rps"] / y["rps"] for x, y in pairs if x and y]
                cmp["paired_ratio"] = med(cmp["paired_ratios"])
                # Best round of each: the run least disturbed by other work.
                bv = [row[x]["rps_min_max"][1] if row[x]["rps_min_max"] else None for x in (v, "qemu")]
                cmp["best_ratio"] = bv[0] / bv[1] if bv[0] and bv[1] else None
                tr = (row["qemu"]["tsc"] / row[v]["tsc"]
                      if row["qemu"]["tsc"] and row[v]["tsc"] else None)
                cmp["ratio"] = ratio
                cmp["tsc_ratio"] = tr
                # Scored on the paired ratio: host load moves both VMMs'
                # figures several-fold between rounds, the pairs far less.
                cmp["pass"] = cmp["paired_ratio"] is not None and cmp["paired_ratio"] >= 1.0
                if v == "rvirt":
                    row.update(cmp)
                    label = f"{key:15} {p:9}"
                else:
                    row[f"{v}_vs_qemu"] = cmp
                    label = f"{'':15} {'  ' + v:9}"
                print(f"{label} {fmt(rv, '%11.0f')} {fmt(qv, '%10.0f')} "
                      f"{fmt(ratio, '%6.3f')} {fmt(cmp['paired_ratio'], '%6.3f')}  {fmt(tr, '%6.3f')}  "
                      f"{fmt(bv[0], '%8.0f')} {fmt(bv[1], '%8.0f')} "
                      f"{fmt(cmp['best_ratio'], '%6.3f')}  "
                      f"{fmt(row[v]['kicks_per_req'], '%6.3f')}/{fmt(row['qemu']['kicks_per_req'], '%-6.3f')}  "
                      f"{'PASS' if cmp['pass'] else 'MISS'}")
            summary[key][p] = row
        # Whole-process CPU time (all threads, user+sys) per request, over
        # the 4 phases; includes boot and exit (a few ms).
        for v in vmms:
            cpu = med([r["cpu_ms"] for r in samples[key][v]])
            usr = med([r["user_ms"] for r in samples[key][v]])
            summary[key][f"{v}_cpu_us_per_req"] = cpu * 1000 / (4 * a.n) if cpu else None
            summary[key][f"{v}_user_us_per_req"] = usr * 1000 / (4 * a.n) if usr else None
        for v in ["rvirt"] + extra:
            cells = []
            for p in PHASES:
                r, q = summary[key][p][v], summary[key][p]["qemu"]
                cells.append(f"{p} {fmt(r['dev_cpu_us_per_req'], '%.1f')}/{fmt(q['dev_cpu_us_per_req'], '%.1f')}"
                             f" (wait {fmt(r['dev_wait_us_per_req'], '%.1f')}/{fmt(q['dev_wait_us_per_req'], '%.1f')})")
            print(f"{'':15} device-side CPU us/req {v}/QEMU (all threads but the vCPU; "
                  f"run-queue wait): " + ", ".join(cells))
    print(f"(load average at end {os.getloadavg()[0]:.2f})")
    if problems:
        print("\nruns that did not end as expected:")
        for p in problems:
            print("  " + p)

    try:
        qver = subprocess.run([a.qemu, "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
    except Exception:  # noqa: BLE001 - informational only
        qver = "?"
    for key in samples:
        for v in samples[key]:
            for r in samples[key][v]:
                r["lines"] = [[t / 1e6, l] for t, l in r["lines"]]  # ms
    out = {
        "benchmark": "virtio-blk",
        "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "host": {"kernel": platform.release(), "cpus": os.cpu_count(),
                 "loadavg_end": os.getloadavg()},
        "rvirt_commit": a.commit,
        "qemu_version": qver,
        "rounds": a.rounds,
        "warmup": a.warmup,
        "n": a.n,
        "nice": a.nice,
        "command_lines": {v: mk("CACHE", "QD") for v, mk in vmms.items()},
        "also": a.also,
        "summary": summary,
        "problems": problems,
        "samples": samples,
    }
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nresults: {a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
