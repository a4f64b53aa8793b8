#!/usr/bin/env python3
"""Guest-to-host throughput over a tap on the default NAT network:
rvirt-vmm vs QEMU 7.2 microvm, with the `dhcp` test guest.

Called by bench/nattap/run.sh inside a private network namespace. It starts
rvirtd with --default-network on a private tree, so the `default` network
(192.168.122.0/24 on virbr0, its nftables table, dnsmasq) is installed and
autostarted as on a first start, and enslaves a persistent tap to virbr0.
Each VMM in turn opens that tap (`-netdev tap,ifname=...`, userspace
virtio-net on both sides: QEMU's vhost is off by default). Two measures,
rounds alternating between the VMMs (the first of each pair alternates
too), medians over rounds:

- fork -> lease: CLOCK_MONOTONIC from just before the VMM is spawned to the
  arrival of the guest's `DHCP_OK` line on its stdout pipe (dnsmasq's
  answers; the guest's ring-0 driver code, which is emulated here).
- guest-to-host throughput: after its lease the guest sends N UDP datagrams
  of S payload bytes to a socket on virbr0's address (192.168.122.1) from a
  ring-3 loop as fast as the device takes them; the socket (8 MiB receive
  buffer) counts what arrives; throughput = bytes received / (last arrival -
  first arrival). Datagrams lost on the way (the tap's queue or the socket
  full) are reported as the delivered fraction; they do not count.
"""
import argparse
import datetime
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time

BRIDGE_ADDR = "192.168.122.1"
TAP = "rvbtap0"
MAC = "52:54:00:62:65:6e"


def sh(*argv, timeout=30):
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=timeout).stdout


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
            p.wait()
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


def argv_for(vmm, args, append):
    net = ["-netdev", f"tap,id=n0,ifname={TAP},script=no,downscript=no",
           "-device", f"virtio-net-device,netdev=n0,mac={MAC}"]
    if vmm == "rvirt":
        return [args.rvirt, "-M", "microvm", "-m", "128", "-nodefaults", "-no-reboot",
                "-serial", "stdio", *net, "-kernel", args.guest, "-append", append]
    return [args.qemu, "-M", "microvm,acpi=off", "-enable-kvm", "-cpu", "qemu64,-pni",
            "-global", "virtio-mmio.force-legacy=false", "-m", "128", "-nodefaults",
            "-no-reboot", "-display", "none", "-serial", "stdio", "-device", "isa-debug-exit",
            *net, "-kernel", args.guest, "-append", append]


def one(vmm, args, measure):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((BRIDGE_ADDR, 0))
    port = sock.getsockname()[1]
    append = f"net.udp={BRIDGE_ADDR}:{port}"
    if measure == "throughput":
        append += f" net.bench={args.n} net.size={args.size}"
    stats = {"first": None, "last": None, "n": 0, "bytes": 0}
    stop = threading.Event()
    t = threading.Thread(target=receiver, args=(sock, stats, stop))
    t.start()
    try:
        t_lease, out = run_vm(argv_for(vmm, args, append), "DHCP_OK", args.timeout)
    finally:
        stop.set()
        t.join()
        sock.close()
    if t_lease is None:
        raise RuntimeError(f"{vmm}: no lease:\n{out[-2000:]}")
    if "UDP_SENT" not in out:
        raise RuntimeError(f"{vmm}: no datagram sent:\n{out[-2000:]}")
    if measure == "lease":
        return t_lease
    if "BENCH END" not in out:
        raise RuntimeError(f"{vmm}: the benchmark did not finish:\n{out[-2000:]}")
    secs = (stats["last"] or 0) - (stats["first"] or 0)
    return {
        "mb_per_s": stats["bytes"] / secs / 1e6 if secs > 0 else 0.0,
        # The first datagram is the guest's greeting, not the benchmark's.
        "delivered": max(stats["n"] - 1, 0) / args.n,
        "secs": secs,
    }


class Network:
    """rvirtd on a private tree with the default network active, and the
    tap both VMMs use enslaved to its bridge."""

    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="rvirt-nattap-")
        self.uri = f"qemu+unix:///system?socket={self.dir}/run/rvirt/rvirt-sock"
        self.log = open(os.path.join(self.dir, "rvirtd.log"), "w")
        self.rvirtd = subprocess.Popen(
            [args.rvirtd, "--root", self.dir, "--vmm", args.rvirt, "--default-network"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run(["virsh", "-c", self.uri, "net-info", "default"],
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and any(l.split() == ["Active:", "yes"] for l in r.stdout.splitlines()):
                break
            if self.rvirtd.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the default network did not come up: {r.stderr.strip()}")
            time.sleep(0.1)
        sh("ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        sh("ip", "link", "set", TAP, "master", "virbr0", "up")

    def close(self):
        subprocess.run(["ip", "link", "del", TAP], capture_output=True, timeout=30)
        if self.rvirtd.poll() is None:
            # dnsmasq is stopped with the network, not with rvirtd.
            subprocess.run(["virsh", "-c", self.uri, "net-destroy", "default"],
                           capture_output=True, timeout=60)
            self.rvirtd.send_signal(signal.SIGTERM)
            try:
                self.rvirtd.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.rvirtd.kill()
                self.rvirtd.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirtd", required=True)
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

    sh("ip", "link", "set", "lo", "up")
    net = Network(args)
    try:
        results = {m: {"rvirt": [], "qemu": []} for m in ("lease", "throughput")}
        for measure in ("lease", "throughput"):
            for r in range(args.warmup + args.rounds):
                order = ["rvirt", "qemu"] if r % 2 == 0 else ["qemu", "rvirt"]
                for vmm in order:
                    v = one(vmm, args, measure)
                    if r >= args.warmup:
                        results[measure][vmm].append(v)
    finally:
        net.close()

    lease = {k: statistics.median(v) * 1000 for k, v in results["lease"].items()}
    tput = {k: statistics.median(x["mb_per_s"] for x in v) for k, v in results["throughput"].items()}
    deliv = {k: statistics.median(x["delivered"] for x in v) for k, v in results["throughput"].items()}
    print(f"{'default NAT network, tap on virbr0':34} {'rvirt-vmm':>12} {'QEMU 7.2':>12} {'rvirt/QEMU':>11}")
    print(f"{'fork -> DHCP lease (ms, median)':34} {lease['rvirt']:12.1f} {lease['qemu']:12.1f} "
          f"{lease['rvirt'] / lease['qemu']:11.2f}")
    print(f"{'guest->host UDP (MB/s, median)':34} {tput['rvirt']:12.1f} {tput['qemu']:12.1f} "
          f"{tput['rvirt'] / tput['qemu']:11.2f}")
    print(f"{'  datagrams delivered (median)':34} {deliv['rvirt']:12.0%} {deliv['qemu']:12.0%}")
    if args.json:
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"commit": args.commit, "when": datetime.datetime.utcnow().isoformat(),
                       "n": args.n, "size": args.size, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
