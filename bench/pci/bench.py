#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2: a PCI configuration access, and start-up on pc
with virtio-pci devices.

Called by bench/pci/run.sh. Cases, each run on both VMMs alternately:
- cf8/ecam on q35, cf8 on pc: the `pci` test guest with pci.bench=N reads
  00:00.0's IDs N times through CONFIG_ADDRESS/CONFIG_DATA (two port
  exits a read) and then through ECAM (one MMIO exit), between serial
  markers the host stamps (CLOCK_MONOTONIC when each line's newline
  arrives): microseconds per configuration read.
- start-up: fork -> the `oneline` guest's line on pc with a virtio-blk-pci,
  virtio-rng-pci, virtio-balloon-pci and virtio-serial-pci (QEMU runs
  SeaBIOS first, which enumerates and programs them; rvirt-vmm places them
  itself and boots the kernel directly).
Figures are medians over runs; ratio = rvirt / QEMU (lower is better).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from child import Output  # noqa: E402


def run(argv, timeout):
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_CLOSE, rfd)])
    os.close(wfd)
    os.close(devnull)
    lines, partial = [], b""
    output = Output(pid, rfd, t0 + int(timeout * 1e9))
    try:
        for now, chunk in output:
            partial += chunk
            while b"\n" in partial:
                line, partial = partial.split(b"\n", 1)
                lines.append(((now - t0) / 1e6, line.decode(errors="replace").strip()))
        _, status, _ = os.wait4(pid, 0)
    finally:
        os.close(rfd)
    return {"lines": lines, "status": os.waitstatus_to_exitcode(status), "killed": output.killed}


def stamp(r, text):
    return next((t for t, l in r["lines"] if l.endswith(text)), None)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    for k in ("rvirt", "qemu", "pci_guest", "oneline", "image", "json", "commit"):
        ap.add_argument("--" + k.replace("_", "-"), required=k != "commit", default="")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--n", type=int, default=20000)
    a = ap.parse_args()

    base = ["-cpu", "qemu64,-pni", "-m", "128", "-nodefaults", "-no-reboot",
            "-display", "none", "-serial", "stdio"]
    qemu_extra = ["-accel", "kvm", "-device", "isa-debug-exit"]
    devices = ["-drive", f"file={a.image},format=raw,if=none,id=d0",
               "-device", "virtio-blk-pci,drive=d0,disable-legacy=on",
               "-object", "rng-random,id=r0,filename=/dev/urandom",
               "-device", "virtio-rng-pci,rng=r0,disable-legacy=on",
               "-device", "virtio-balloon-pci,disable-legacy=on",
               "-device", "virtio-serial-pci,disable-legacy=on"]
    cases = {
        "config-q35": ["-M", "q35", "-kernel", a.pci_guest, "-append", f"pci.bench={a.n}"],
        "config-pc": ["-M", "pc", "-kernel", a.pci_guest, "-append", f"pci.bench={a.n}"],
        "startup-pc": ["-M", "pc", "-kernel", a.oneline] + devices,
    }

    def argv(vmm, case):
        if vmm == "qemu":
            return [a.qemu] + base + qemu_extra + cases[case]
        return [a.rvirt] + base + cases[case]

    samples = {c: {"rvirt": [], "qemu": []} for c in cases}
    problems = []
    for i in range(a.warmup + a.runs):
        order = ["rvirt", "qemu"] if i % 2 == 0 else ["qemu", "rvirt"]
        for c in cases:
            for v in order:
                r = run(argv(v, c), 120)
                if i < a.warmup:
                    continue
                m = {}
                if c.startswith("config"):
                    for p in ("cf8", "ecam"):
                        s, e = stamp(r, f"PCIBENCH {p} START"), stamp(r, f"PCIBENCH {p} END")
                        if s is not None and e is not None:
                            m[p] = (e - s) * 1000 / a.n
                    ok = "cf8" in m
                else:
                    m["line_ms"] = stamp(r, "ONELINE")
                    ok = m["line_ms"] is not None
                if not ok or r["killed"]:
                    problems.append(f"{v} {c} run {i}: {r['lines'][-3:]} status {r['status']}")
                samples[c][v].append(m)
        if i >= a.warmup:
            print(f"  run {i - a.warmup + 1}/{a.runs} done", file=sys.stderr, flush=True)

    rows = [("config-q35", "cf8", "q35: config read through CF8/CFC", "us"),
            ("config-q35", "ecam", "q35: config read through ECAM", "us"),
            ("config-pc", "cf8", "pc: config read through CF8/CFC", "us"),
            ("startup-pc", "line_ms", "pc + 4 virtio-pci: fork -> guest line", "ms")]
    table = []
    print(f"\n{'metric':42} {'unit':>4} {'rvirt':>9} {'QEMU':>9} {'ratio':>6}")
    for case, key, label, unit in rows:
        rv = med([s.get(key) for s in samples[case]["rvirt"]])
        qv = med([s.get(key) for s in samples[case]["qemu"]])
        ratio = rv / qv if rv and qv else None
        print(f"{label:42} {unit:>4} {rv if rv is not None else float('nan'):9.3f} "
              f"{qv if qv is not None else float('nan'):9.3f} "
              f"{ratio if ratio is not None else float('nan'):6.3f}")
        table.append({"case": case, "metric": key, "label": label, "unit": unit,
                      "rvirt": rv, "qemu": qv, "ratio": ratio})
    print(f"(medians of {a.runs} runs each, alternating; N={a.n}; "
          f"load average at end {os.getloadavg()[0]:.2f})")
    if problems:
        print("\nruns that did not end as expected:")
        for p in problems:
            print("  " + p)
    qver = subprocess.run([a.qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"benchmark": "pci", "time_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                   "rvirt_commit": a.commit, "qemu_version": qver, "runs": a.runs, "n": a.n,
                   "table": table, "samples": samples, "problems": problems}, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
