#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2 booting a disk through the same SeaBIOS.

Called by bench/firmware/run.sh. The boot disk (crates/test-guests: an MBR
that prints "MBR real mode" from its boot sector, enters long mode and
powers off) on:
- microvm: bios-microvm.bin, the disk on virtio-mmio;
- pc: bios-256k.bin, the disk on virtio-blk-pci (SeaBIOS shadows itself
  through PAM, enumerates PCI and boots through bootindex);
- q35: the same behind a pcie-root-port;
- pc-ide: bios-256k.bin, the disk on the PIIX3 IDE (ide.0 master; SeaBIOS
  reads it by PIO through the legacy ports);
- q35-ahci: the disk on q35's AHCI (port 0; PRDs).
CASES picks a subset (bench/firmware/run.sh: CASES=pc-ide,q35-ahci).
Each VMM gets the same firmware file (-bios) and the same disk; QEMU runs
SeaBIOS's console on COM1 as rvirt does (-machine graphics=off). Stamps are
CLOCK_MONOTONIC from just before fork to the read that first holds a marker:
SeaBIOS's banner, the MBR's first serial byte ("MBR"), and the process's
exit after the guest powers off. Medians over runs (VMMs alternate);
ratio = rvirt / QEMU (lower is better).
"""
import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from child import Output  # noqa: E402


def run(argv, markers, timeout):
    """Spawns argv; the ms from fork to the first read holding each marker,
    and to the exit."""
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, devnull, 2), (os.POSIX_SPAWN_CLOSE, rfd)])
    os.close(wfd)
    os.close(devnull)
    out, seen = b"", {}
    output = Output(pid, rfd, t0 + int(timeout * 1e9))
    try:
        for now, chunk in output:
            out += chunk
            for name, m in markers.items():
                if name not in seen and m in out:
                    seen[name] = (now - t0) / 1e6
        _, status, _ = os.wait4(pid, 0)
        seen["exit"] = (time.monotonic_ns() - t0) / 1e6
    finally:
        os.close(rfd)
    return {"seen": seen, "status": os.waitstatus_to_exitcode(status), "killed": output.killed,
            "tail": out[-200:].decode(errors="replace")}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    for k in ("rvirt", "qemu", "disk", "seabios_dir", "json", "commit"):
        ap.add_argument("--" + k.replace("_", "-"), required=k != "commit", default="")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--cases", default="", help="comma-separated subset of the cases")
    a = ap.parse_args()
    # ide-hd and AHCI disks are writable (QEMU refuses a read-only ide-hd):
    # each VMM boots its own copy, made once (the MBR writes nothing).
    tmp = tempfile.mkdtemp(prefix="rvirt-bench-firmware-")
    copies = {}
    for v in ("rvirt", "qemu"):
        copies[v] = os.path.join(tmp, f"{v}.img")
        shutil.copy(a.disk, copies[v])

    base = ["-m", "128", "-nodefaults", "-no-reboot", "-serial", "stdio",
            "-drive", f"file={a.disk},format=raw,if=none,id=d0,readonly=on"]
    bios = lambda name: ["-bios", os.path.join(a.seabios_dir, name)]
    cases = {
        "microvm": ["-M", "microvm"] + bios("bios-microvm.bin")
        + ["-device", "virtio-blk-device,drive=d0,bootindex=1"],
        "pc": ["-M", "pc"] + bios("bios-256k.bin")
        + ["-device", "virtio-blk-pci,drive=d0,bootindex=1,disable-legacy=on"],
        "q35": ["-M", "q35"] + bios("bios-256k.bin")
        + ["-device", "pcie-root-port,port=16,chassis=1,id=rp0,bus=pcie.0,multifunction=on,addr=0x2",
           "-device", "virtio-blk-pci,drive=d0,bootindex=1,bus=rp0"],
        # The ATA controllers SeaBIOS drives itself: PIIX3 IDE by PIO
        # through the legacy ports, AHCI through PRDs.
        "pc-ide": ["-M", "pc"] + bios("bios-256k.bin")
        + ["-device", "ide-hd,drive=d1,bus=ide.0,unit=0,bootindex=1"],
        "q35-ahci": ["-M", "q35"] + bios("bios-256k.bin")
        + ["-device", "ide-hd,drive=d1,bus=ide.0,bootindex=1"],
    }
    if a.cases:
        wanted = a.cases.split(",")
        unknown = [c for c in wanted if c not in cases]
        if unknown:
            ap.error(f"unknown cases {unknown}; known: {list(cases)}")
        cases = {c: cases[c] for c in wanted}
    qemu_extra = ["-accel", "kvm", "-cpu", "qemu64,-pni", "-display", "none",
                  "-machine", "graphics=off"]
    markers = {"seabios": b"SeaBIOS (version", "mbr": b"MBR", "done": b"DONE"}

    def argv(vmm, case):
        extra = cases[case]
        if "drive=d1" in " ".join(extra):
            extra = ["-drive", f"file={copies[vmm]},format=raw,if=none,id=d1"] + extra
        if vmm == "qemu":
            return [a.qemu] + qemu_extra + base + extra
        return [a.rvirt, "-cpu", "qemu64,-pni"] + base + extra

    samples = {c: {"rvirt": [], "qemu": []} for c in cases}
    problems = []
    for i in range(a.warmup + a.runs):
        order = ["rvirt", "qemu"] if i % 2 == 0 else ["qemu", "rvirt"]
        for c in cases:
            for v in order:
                r = run(argv(v, c), markers, 120)
                if i < a.warmup:
                    continue
                if r["killed"] or "done" not in r["seen"]:
                    problems.append(f"{v} {c} run {i}: {r['tail']!r} status {r['status']}")
                samples[c][v].append(r["seen"])
        if i >= a.warmup:
            print(f"  run {i - a.warmup + 1}/{a.runs} done", file=sys.stderr, flush=True)

    table = []
    print(f"\n{'metric':46} {'unit':>4} {'rvirt':>9} {'QEMU':>9} {'ratio':>6}")
    for case in cases:
        for key, label in (("seabios", "fork -> SeaBIOS banner"),
                           ("mbr", "fork -> MBR's first byte"),
                           ("exit", "fork -> exit (guest powered off)")):
            rv = med([s.get(key) for s in samples[case]["rvirt"]])
            qv = med([s.get(key) for s in samples[case]["qemu"]])
            ratio = rv / qv if rv and qv else None
            nan = float("nan")
            print(f"{case + ': ' + label:46} {'ms':>4} {rv if rv is not None else nan:9.1f} "
                  f"{qv if qv is not None else nan:9.1f} {ratio if ratio is not None else nan:6.3f}")
            table.append({"case": case, "metric": key, "label": label, "unit": "ms",
                          "rvirt": rv, "qemu": qv, "ratio": ratio})
    ata = {r["case"]: r for r in table if r["metric"] == "mbr"}
    if "pc-ide" in ata and "q35-ahci" in ata:
        ide, ahci = ata["pc-ide"], ata["q35-ahci"]
        if ide["rvirt"] and ahci["rvirt"] and ide["qemu"] and ahci["qemu"]:
            print(f"\nfork -> MBR via IDE / via AHCI: rvirt {ide['rvirt'] / ahci['rvirt']:.3f}, "
                  f"QEMU {ide['qemu'] / ahci['qemu']:.3f}")
    shutil.rmtree(tmp, ignore_errors=True)
    for p in problems:
        print("problem:", p, file=sys.stderr)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"bench": "firmware", "commit": a.commit, "runs": a.runs,
                   "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                   "results": table, "problems": problems}, f, indent=1)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
