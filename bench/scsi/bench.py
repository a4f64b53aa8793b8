#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2: virtio-scsi 4 KiB random reads per second,
guest-driven (the `scsimq` test guest with scsimq.bench=N, in ring 3, QD
requests in flight on the first request queue, polled), on pc's
virtio-scsi-pci with a scsi-hd on a raw image, both VMMs with the same
command line, alternately. Timing as bench/virtio's: host-side stamps of
the PHASE START/END lines (bench/lib/stamped.py); the guest's TSC ratio is
printed as a cross-check. Called by bench/scsi/run.sh."""
import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from stamped import run_once  # noqa: E402


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


def phase(run, n):
    start = end = tsc = None
    for t, line in run["lines"]:
        w = line.split()
        if w[:3] == ["PHASE", "randread", "START"]:
            start = t
        elif w[:3] == ["PHASE", "randread", "END"]:
            end = t
        elif w[:2] == ["PHASE_STATS", "randread"]:
            f = dict(x.split("=", 1) for x in w[2:])
            if int(f["n"]) == n and int(f["errors"]) == 0:
                tsc = int(f["tsc"])
    if start is None or end is None or tsc is None:
        return None
    return {"rps": n / ((end - start) / 1e9), "tsc": tsc}


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
    vmms = {"rvirt": a.rvirt, "qemu": a.qemu}
    got = {k: [] for k in vmms}
    for r in range(a.warmup + a.rounds):
        order = list(vmms) if r % 2 == 0 else list(reversed(vmms))
        for k in order:
            cmd = argv(vmms[k], a.guest, a.image, a.n, a.qd, a.blocks, a.queues)
            if k == "qemu":
                # The guest's fast way out on QEMU (rvirt: the i8042 reset).
                cmd += ["-device", "isa-debug-exit"]
            run = run_once(cmd, 300)
            p = phase(run, a.n)
            if p is None:
                tail = "\n".join(l for _, l in run["lines"][-8:])
                sys.exit(f"{k}: no complete phase (exit {run['status']}):\n{tail}\n{run['stderr']}")
            if r >= a.warmup:
                got[k].append(p)
            print(f"round {r} {k}: {p['rps']:.0f} req/s", flush=True)
    med = {k: statistics.median(x["rps"] for x in v) for k, v in got.items()}
    tsc = {k: statistics.median(x["tsc"] for x in v) for k, v in got.items()}
    print(f"virtio-scsi 4 KiB random read, QD {a.qd}, {a.n} requests, "
          f"num_queues={a.queues}, median of {a.rounds}:")
    print(f"  rvirt-vmm {med['rvirt']:.0f} req/s, QEMU {med['qemu']:.0f} req/s, "
          f"rvirt/QEMU {med['rvirt'] / med['qemu']:.2f} "
          f"(guest TSC QEMU/rvirt {tsc['qemu'] / tsc['rvirt']:.2f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "samples": got, "median_rps": med}, f, indent=1)


main()
