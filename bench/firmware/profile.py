#!/usr/bin/env python3
"""Where SeaBIOS's boot time goes, rvirt-vmm beside QEMU 7.2 (issue 14).

Boots the MBR test disk as bench/firmware does (microvm: bios-microvm.bin,
virtio-mmio; pc: bios-256k.bin, virtio-blk-pci) with SeaBIOS's debug log
on the 0x402 debug port (`-debugcon stdio -global isa-debugcon.iobase=0x402`:
Debian's SeaBIOS logs at level 1 there) and stamps every log line as it
arrives on the pipe (CLOCK_MONOTONIC from just before fork). The lines
are cut into SeaBIOS's phases by the first line of each (PHASES); a
phase's time is from its first line to the next phase's. Medians over
RUNS, VMMs alternating. --lines prints one run's whole stamped log per
VMM and machine, with the gap before each line: a wait (a loop polling a
device or the clock) shows as one long gap before the line after it.
"""
import argparse
import json
import os
import select
import signal
import statistics
import sys
import time

# (phase, the log line that starts it), in SeaBIOS 1.16's order (src/post.c).
PHASES = [
    ("entry: banner, Xen/QEMU/KVM detect, shadow RAM unlock (PAM)", b"SeaBIOS (version"),
    ("fw_cfg, e820, code relocation (memcpy)", b"Found QEMU fw_cfg"),
    ("platform set-up: PM base, boot order, clock", b"Moving pm_base"),
    ("PCI: bus init, probing, BAR allocation, device init", b"=== PCI bus & bridge init"),
    ("CPUs, PIR/MP/SMBIOS/ACPI tables, DSDT parse, mmio probes", b"cpu(s) max supported"),
    ("VGA ROM scan (clears the option-ROM area)", b"Scan for VGA option rom"),
    ("serial console set-up", b"No VGA found"),
    ("device probes: ATA, virtio, PS/2, serial, threads", b"Turning on vga text mode console"),
    ("option ROMs, boot menu, BCVs, malloc_prepboot (clears UMB/f-seg)", b"Scan for option roms"),
    ("e820 out, BIOS checksum, PAM lock, startBoot clears 0x7000-0x90000", b"Space available for UMB"),
    ("int 19h: read the boot sector", b"enter handle_19"),
    ("jump to 0000:7c00", b"Booting from 0000:7c00"),
]


def run(argv, timeout):
    """[(ms since fork, line)] for every line on stdout, and the exit ms."""
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_CLOSE, rfd)])
    os.close(wfd)
    os.close(devnull)
    lines, buf = [], b""
    deadline = t0 + int(timeout * 1e9)
    try:
        while True:
            left = (deadline - time.monotonic_ns()) / 1e9
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                break
            r, _, _ = select.select([rfd], [], [], left)
            if not r:
                continue
            chunk = os.read(rfd, 65536)
            t = (time.monotonic_ns() - t0) / 1e6
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                lines.append((t, line.rstrip(b"\r")))
        os.wait4(pid, 0)
    finally:
        os.close(rfd)
    return lines, (time.monotonic_ns() - t0) / 1e6


def phases(lines):
    """Phase -> ms (from its first line to the next phase's first line;
    the first phase from fork). Phases whose line never came are None."""
    starts = []
    at = 0
    for name, needle in PHASES:
        for i in range(at, len(lines)):
            if needle in lines[i][1]:
                starts.append((name, lines[i][0]))
                at = i + 1
                break
        else:
            starts.append((name, None))
    out, prev = {"fork -> SeaBIOS banner": None}, 0.0
    for k, (name, t) in enumerate(starts):
        if k == 0:
            out["fork -> SeaBIOS banner"] = t
        nxt = next((t2 for _, t2 in starts[k + 1:] if t2 is not None), None)
        out[name] = (nxt - t) if t is not None and nxt is not None else None
    out["fork -> 0000:7c00"] = starts[-1][1]
    return out


def main():
    ap = argparse.ArgumentParser()
    for k in ("rvirt", "qemu", "disk", "seabios_dir", "json"):
        ap.add_argument("--" + k.replace("_", "-"), required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--machines", default="microvm,pc")
    ap.add_argument("--lines", action="store_true")
    a = ap.parse_args()
    base = ["-m", "128", "-nodefaults", "-no-reboot", "-serial", "null",
            "-debugcon", "stdio", "-global", "isa-debugcon.iobase=0x402",
            "-drive", f"file={a.disk},format=raw,if=none,id=d0,readonly=on"]
    bios = lambda name: ["-bios", os.path.join(a.seabios_dir, name)]
    cases = {
        "microvm": ["-M", "microvm"] + bios("bios-microvm.bin")
        + ["-device", "virtio-blk-device,drive=d0,bootindex=1"],
        "pc": ["-M", "pc"] + bios("bios-256k.bin")
        + ["-device", "virtio-blk-pci,drive=d0,bootindex=1,disable-legacy=on"],
    }
    machines = a.machines.split(",")
    qemu_extra = ["-accel", "kvm", "-cpu", "qemu64,-pni", "-display", "none",
                  "-machine", "graphics=off"]
    argv = {"rvirt": lambda m: [a.rvirt, "-cpu", "qemu64,-pni"] + base + cases[m],
            "qemu": lambda m: [a.qemu] + qemu_extra + base + cases[m]}
    res = {m: {v: [] for v in argv} for m in machines}
    logs = {}
    for i in range(a.runs):
        for m in machines:
            for v in (["rvirt", "qemu"] if i % 2 == 0 else ["qemu", "rvirt"]):
                lines, _ = run(argv[v](m), 120)
                res[m][v].append(phases(lines))
                logs[(m, v)] = lines
        print(f"  run {i + 1}/{a.runs} done", file=sys.stderr, flush=True)
    table = []
    for m in machines:
        print(f"\n{m}: phase (median ms){'':36} {'rvirt':>8} {'QEMU':>8}")
        keys = list(res[m]["rvirt"][0])
        for k in keys:
            med = {}
            for v in argv:
                xs = [r[k] for r in res[m][v] if r.get(k) is not None]
                med[v] = statistics.median(xs) if xs else None
            fmt = lambda x: f"{x:8.0f}" if x is not None else f"{'-':>8}"
            print(f"  {k:66} {fmt(med['rvirt'])} {fmt(med['qemu'])}")
            table.append({"machine": m, "phase": k, **med})
    if a.lines:
        for (m, v), lines in logs.items():
            print(f"\n--- {m} {v}: ms since fork, gap before the line, line")
            prev = 0.0
            for t, line in lines:
                print(f"{t:9.1f} {t - prev:8.1f}  {line.decode(errors='replace')}")
                prev = t
    with open(a.json, "w") as f:
        json.dump({"bench": "firmware-profile", "runs": a.runs, "load": os.getloadavg(),
                   "phases": table,
                   "logs": {f"{m}/{v}": [(t, l.decode(errors="replace")) for t, l in ls]
                            for (m, v), ls in logs.items()}}, f, indent=1)
    print(f"samples: {a.json}")


if __name__ == "__main__":
    main()
