#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2: AHCI 4 KiB random reads per second, guest-driven
(the `ahcibench` test guest: READ DMA EXT through command slot 0 of q35's
built-in AHCI, one at a time, from ring 3, polled), a disk on port 0 as
libvirt 9.0 writes <disk bus='sata'>, both VMMs with the same command
line, alternately (bench/lib/guestbench.py). Called by bench/ahci/run.sh."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guestbench import compare  # noqa: E402


def argv(program, guest, image, n, blocks):
    return [
        program, "-M", "pc-q35-7.2", "-enable-kvm", "-cpu", "qemu64,-pni", "-m", "128",
        "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none", "-serial", "stdio",
        "-kernel", guest, "-append", f"ahcibench.n={n} ahcibench.blocks={blocks}",
        "-blockdev", json.dumps({"node-name": "hd", "read-only": False, "driver": "raw",
                                 "file": {"driver": "file", "filename": image,
                                          "aio": "threads",
                                          "cache": {"direct": False, "no-flush": False}}}),
        "-device", json.dumps({"driver": "ide-hd", "bus": "ide.0", "drive": "hd",
                               "id": "sata0-0-0"}),
    ]


def main():
    ap = argparse.ArgumentParser()
    for k in ("--rvirt", "--qemu", "--guest", "--image"):
        ap.add_argument(k, required=True)
    ap.add_argument("--blocks", type=int, required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    cmds = {k: argv(p, a.guest, a.image, a.n, a.blocks)
            for k, p in (("rvirt", a.rvirt), ("qemu", a.qemu))}
    # The guest's fast way out on QEMU (rvirt: the i8042 reset).
    cmds["qemu"] += ["-device", "isa-debug-exit"]
    res = compare(cmds, a.n, a.rounds, a.warmup,
                  f"AHCI 4 KiB random read (READ DMA EXT, one at a time), {a.n} requests")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), **res}, f, indent=1)


main()
