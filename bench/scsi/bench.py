#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2: virtio-scsi 4 KiB random reads per second,
guest-driven (the `scsimq` test guest with scsimq.bench=N, in ring 3, QD
requests in flight on the first request queue, polled), on pc's
virtio-scsi-pci with a scsi-hd on a raw image, both VMMs with the same
command line, alternately. Timing as bench/virtio's: host-side stamps of
the PHASE START/END lines (bench/lib/guestbench.py); the guest's TSC
ratio is printed as a cross-check. Called by bench/scsi/run.sh."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from guestbench import compare  # noqa: E402


def argv(program, guest, image, n, qd, blocks, queues):
    return [
        program, "-M", "pc", "-enable-kvm", "-cpu", "qemu64,-pni", "-m", "128",
        "-smp", "1", "-nodefaults", "-no-reboot", "-display", "none",
        "-serial", "stdio",
        "-kernel", guest, "-append", f"scsimq.bench={n} scsimq.qd={qd} scsimq.blocks={blocks}",
        "-device", json.dumps({"driver": "virtio-scsi-pci", "id": "scsi0",
                               "num_queues": queues, "bus": "pci.0", "addr": "0x4"}),
        "-blockdev", json.dumps({"node-name": "hd", "read-only": False, "driver": "raw",
                                 "file": {"driver": "file", "filename": image,
                                          "aio": "threads",
                                          "cache": {"direct": False, "no-flush": False}}}),
        "-device", json.dumps({"driver": "scsi-hd", "bus": "scsi0.0", "channel": 0,
                               "scsi-id": 0, "lun": 0, "drive": "hd", "id": "scsi0-0-0-0"}),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--image", required=True)
    ap.add_argument("--blocks", type=int, required=True)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--qd", type=int, default=16)
    ap.add_argument("--queues", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    cmds = {k: argv(p, a.guest, a.image, a.n, a.qd, a.blocks, a.queues)
            for k, p in (("rvirt", a.rvirt), ("qemu", a.qemu))}
    # The guest's fast way out on QEMU (rvirt: the i8042 reset).
    cmds["qemu"] += ["-device", "isa-debug-exit"]
    res = compare(cmds, a.n, a.rounds, a.warmup,
                  f"virtio-scsi 4 KiB random read, QD {a.qd}, {a.n} requests, num_queues={a.queues}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), **res}, f, indent=1)


main()
