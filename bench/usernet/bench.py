#!/usr/bin/env python3
"""User-mode networking: rvirt-vmm (-netdev user, served by passt) vs QEMU
7.2 microvm (-netdev user, slirp), with the `dhcp` test guest.

Called by bench/usernet/run.sh. Two measures, rounds alternating between
the VMMs (the first of each pair alternates too), medians over rounds:

- fork -> lease: CLOCK_MONOTONIC from just before the VMM is spawned to the
  arrival of the guest's `DHCP_OK` line on its stdout pipe (the guest's
  DISCOVER/OFFER/REQUEST/ACK in ring 0, which is emulated here; passt's
  start-up is inside for rvirt, slirp's set-up for QEMU).
- guest-to-host throughput: after its lease the guest sends N UDP datagrams
  of S payload bytes to the router's address, which both map to the host's
  loopback, from a ring-3 loop (native speed) as fast as the device takes
  them. A UDP socket on 127.0.0.1 (8 MiB receive buffer) counts what
  arrives; throughput = bytes received / (last arrival - first arrival).
  Datagrams lost on the way (a full socket anywhere) are reported as the
  delivered fraction; they do not count.
"""
import argparse
import datetime
import json
import os
import select
import socket
import statistics
import subprocess
import threading
import time


def receiver(sock, stats, stop):
    """Counts datagrams on sock until stop is set and 1 s passed quietly."""
    buf = bytearray(65536)
    sock.settimeout(0.2)
    quiet = 0.0
    while True:
        try:
            n = sock.recv_into(buf)
        except socket.timeout:
            if stop.is_set():
                quiet += 0.2
                if quiet >= 1.0:
                    return
            continue
        quiet = 0.0
        now = time.monotonic()
        if stats["first"] is None:
            stats["first"] = now
        stats["last"] = now
        stats["n"] += 1
        stats["bytes"] += n


def run_vm(argv, want, timeout):
    """Spawns argv, returns (seconds to the line `want`, all output)."""
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    out = b""
    t_line = None
    deadline = t0 + timeout
    fd = p.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            p.kill()
            raise RuntimeError(f"timeout: {argv[0]}: {out.decode(errors='replace')[-2000:]}")
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        chunk = os.read(fd, 65536)
        now = time.monotonic()
        if not chunk:
            break
        out += chunk
        if t_line is None and want.encode() + b"\n" in out:
            t_line = now - t0
    p.wait(timeout=max(1, deadline - time.monotonic()))
    return t_line, out.decode(errors="replace")


def argv_for(vmm, args, guest, append):
    if vmm == "rvirt":
        return [args.rvirt, "-M", "microvm", "-m", "128", "-nodefaults", "-no-reboot",
                "-serial", "stdio", "-netdev", "user,id=n0",
                "-device", "virtio-net-device,netdev=n0", "-kernel", guest, "-append", append]
    return [args.qemu, "-M", "microvm,acpi=off", "-enable-kvm", "-cpu", "qemu64,-pni",
            "-global", "virtio-mmio.force-legacy=false", "-m", "128", "-nodefaults",
            "-no-reboot", "-display", "none", "-serial", "stdio", "-device", "isa-debug-exit",
            "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
            "-kernel", guest, "-append", append]


def one(vmm, args, measure):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    append = f"net.udp=router:{port}"
    if measure == "throughput":
        append += f" net.bench={args.n} net.size={args.size}"
    stats = {"first": None, "last": None, "n": 0, "bytes": 0}
    stop = threading.Event()
    t = threading.Thread(target=receiver, args=(sock, stats, stop))
    t.start()
    try:
        t_lease, out = run_vm(argv_for(vmm, args, args.guest, append), "DHCP_OK", args.timeout)
    finally:
        stop.set()
        t.join()
        sock.close()
    if t_lease is None:
        raise RuntimeError(f"{vmm}: no lease:\n{out[-2000:]}")
    if measure == "lease":
        return t_lease
    if "BENCH END" not in out:
        raise RuntimeError(f"{vmm}: the benchmark did not finish:\n{out[-2000:]}")
    # The first datagram is the guest's greeting, not the benchmark's.
    secs = (stats["last"] or 0) - (stats["first"] or 0)
    payload = stats["bytes"] - (stats["n"] and 0)
    return {
        "mb_per_s": payload / secs / 1e6 if secs > 0 else 0.0,
        "delivered": (stats["n"] - 1) / args.n,
        "secs": secs,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--size", type=int, default=1400)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--commit", default="")
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    results = {m: {"rvirt": [], "qemu": []} for m in ("lease", "throughput")}
    for measure in ("lease", "throughput"):
        for r in range(args.warmup + args.rounds):
            order = ["rvirt", "qemu"] if r % 2 == 0 else ["qemu", "rvirt"]
            for vmm in order:
                v = one(vmm, args, measure)
                if r >= args.warmup:
                    results[measure][vmm].append(v)

    lease = {k: statistics.median(v) * 1000 for k, v in results["lease"].items()}
    tput = {k: statistics.median(x["mb_per_s"] for x in v) for k, v in results["throughput"].items()}
    deliv = {k: statistics.median(x["delivered"] for x in v) for k, v in results["throughput"].items()}
    print(f"{'measure':34} {'rvirt-vmm+passt':>16} {'QEMU slirp':>12} {'rvirt/QEMU':>11}")
    print(f"{'fork -> DHCP lease (ms, median)':34} {lease['rvirt']:16.1f} {lease['qemu']:12.1f} "
          f"{lease['rvirt'] / lease['qemu']:11.2f}")
    print(f"{'guest->host UDP (MB/s, median)':34} {tput['rvirt']:16.1f} {tput['qemu']:12.1f} "
          f"{tput['rvirt'] / tput['qemu']:11.2f}")
    print(f"{'  datagrams delivered (median)':34} {deliv['rvirt']:16.0%} {deliv['qemu']:12.0%}")
    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"commit": args.commit, "when": datetime.datetime.utcnow().isoformat(),
                       "n": args.n, "size": args.size, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
