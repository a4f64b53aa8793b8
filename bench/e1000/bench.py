#!/usr/bin/env python3
"""e1000 (MODEL=e1000e: e1000e) transmit rate, rvirt-vmm vs QEMU 7.2: the test guest sends N
60-byte frames as fast as its 8-descriptor ring takes them, over -netdev
stream to this script, which times the first to the last (frames per
second seen by the host). Both VMMs get the same command line; rounds
alternate which goes first. Usage: bench.py RVIRT_VMM QEMU GUEST"""
import json, os, socket, statistics, struct, subprocess, sys, tempfile, time

rvirt, qemu, guest = sys.argv[1:4]
N = int(os.environ.get("N", "20000"))
ROUNDS = int(os.environ.get("ROUNDS", "5"))
WARMUP = int(os.environ.get("WARMUP", "1"))
LIMIT = float(os.environ.get("LIMIT", "300"))
MODEL = os.environ.get("MODEL", "e1000")
# The machine and devices of each model: the e1000e as libvirt puts it on
# q35 (behind a root port).
MACHINE, DEVICES = {
    "e1000": ("pc", ["-device", "e1000,netdev=n0,mac=52:54:00:12:34:56,romfile="]),
    "e1000e": ("q35", [
        "-device", "pcie-root-port,id=pci.1,port=16,chassis=1,bus=pcie.0,addr=0x2",
        "-device", "e1000e,netdev=n0,mac=52:54:00:12:34:56,romfile=,bus=pci.1,addr=0x0"]),
}[MODEL]


def recv_exact(c, n):
    b = bytearray()
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError
        b += x
    return bytes(b)


def one(program, tmp):
    sock = os.path.join(tmp, "net.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock)
    srv.listen(1)
    srv.settimeout(LIMIT)
    args = [program, "-M", MACHINE, "-enable-kvm", "-cpu", "qemu64,-pni", "-m", "128",
            "-nodefaults", "-no-reboot", "-display", "none", "-serial", "none",
            "-netdev", f"stream,id=n0,server=off,addr.type=unix,addr.path={sock}",
            *DEVICES, "-kernel", guest, "-append", f"{MODEL}.bench={N}"]
    vm = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    try:
        c, _ = srv.accept()
        c.settimeout(LIMIT)
        first = last = None
        count = 0
        while count < N:
            (n,) = struct.unpack(">I", recv_exact(c, 4))
            f = recv_exact(c, n)
            if f[12:14] != b"\x88\xb5":
                continue
            if b"guest!" in f:
                now = time.monotonic()
                first = first or now
                last = now
                count += 1
            else:
                reply = (f[6:12] + bytes([2, 0, 0, 0, 0, 1]) + b"\x88\xb5" +
                         b"hello from the host").ljust(60, b"\0")
                c.sendall(struct.pack(">I", len(reply)) + reply)
        vm.wait(LIMIT)
        c.close()
        return (count - 1) / (last - first) if count > 1 else 0.0
    finally:
        if vm.poll() is None:
            vm.kill()
            vm.wait()
        srv.close()


def main():
    results = {"rvirt": [], "qemu": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(WARMUP + ROUNDS):
            order = [("rvirt", rvirt), ("qemu", qemu)]
            if r % 2:
                order.reverse()
            for name, prog in order:
                fps = one(prog, tmp)
                if r >= WARMUP:
                    results[name].append(fps)
                print(f"round {r} {name}: {fps:.0f} frames/s", flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"{MODEL} median frames/s: rvirt {med['rvirt']:.0f}  qemu {med['qemu']:.0f}  "
          f"rvirt/qemu {med['rvirt'] / med['qemu']:.2f}")
    out = os.path.join(os.path.dirname(__file__), "..", "results")
    os.makedirs(out, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with open(os.path.join(out, f"{MODEL}-{stamp}.json"), "w") as f:
        json.dump({"model": MODEL, "n": N, "samples": results, "median": med}, f, indent=1)


main()
