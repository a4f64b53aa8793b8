#!/usr/bin/env python3
"""rvirt-vmm vs QEMU 7.2: what a VNC client receives from a bochs-display.

Called by bench/display/run.sh. Each VMM runs the `displaybench` guest
(crates/test-guests: 1024x768x32 drawn whole, then a 64x64 box for each
byte on its serial) with the same command line and a VNC server on a unix
socket; the VMMs alternate, RUNS times. For each encoding (raw, zlib,
ZRLE: the ones both servers speak), a fresh RFB 3.8 client (this script;
32 bpp true colour) asks for:
- the full 1024x768 screen (a non-incremental request): ms from sending
  the request to the last byte of the update that covers the screen, and
  the bytes of that update;
- a small change, BOXES times: with an incremental request pending, a
  byte to the guest, which draws a 64x64 box: ms from the byte to the end
  of the update that follows, its bytes and the pixels it covers.
Then the VMM's memory with the display and a client: VmRSS and Pss
(smaps_rollup). Medians; ratio = rvirt / QEMU (lower is better).
"""
import argparse
import datetime
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

W, H = 1024, 768
ENCODINGS = {"raw": 0, "zlib": 6, "zrle": 16}


class Client:
    def __init__(self, path, encoding, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.got = 0
        assert self.exact(12).startswith(b"RFB 003.00")
        self.s.sendall(b"RFB 003.008\n")
        types = self.exact(self.exact(1)[0])
        assert 1 in types, types
        self.s.sendall(b"\x01")
        assert self.exact(4) == b"\0\0\0\0", "security result"
        self.s.sendall(b"\x01")
        self.w, self.h = struct.unpack(">HH", self.exact(4))
        self.exact(16)
        self.exact(struct.unpack(">I", self.exact(4))[0])
        # 32 bpp, depth 24, little endian, true colour, 8 bits each.
        self.s.sendall(struct.pack(">B3xBBBBHHHBBB3x", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0))
        self.s.sendall(struct.pack(">BxHi", 2, 1, ENCODINGS[encoding]))

    def exact(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise EOFError("server closed")
            b += c
        self.got += n
        return b

    def request(self, incremental):
        self.s.sendall(struct.pack(">BBHHHH", 3, incremental, 0, 0, self.w, self.h))

    def update(self):
        """Reads server messages until a FramebufferUpdate has been read
        whole; returns the pixels its rectangles cover."""
        while True:
            t = self.exact(1)[0]
            if t == 0:
                break
            if t == 2:
                continue
            if t == 3:
                self.exact(3)
                self.exact(struct.unpack(">I", self.exact(4))[0])
                continue
            raise RuntimeError(f"server message {t}")
        self.exact(1)
        (n,) = struct.unpack(">H", self.exact(2))
        area = 0
        for _ in range(n):
            x, y, w, h, enc = struct.unpack(">HHHHi", self.exact(12))
            if enc == 0:
                self.exact(w * h * 4)
            elif enc in (6, 16):
                self.exact(struct.unpack(">I", self.exact(4))[0])
            elif enc == 1:
                self.exact(4)
            elif enc < 0:
                continue
            else:
                raise RuntimeError(f"encoding {enc}")
            area += w * h
        return area

    def wait_quiet(self, quiet=0.3):
        """With an incremental request pending, reads updates until none
        comes for `quiet` s; leaves a request pending."""
        self.request(1)
        while True:
            r, _, _ = select.select([self.s], [], [], quiet)
            if not r:
                return
            self.update()
            self.request(1)

    def close(self):
        self.s.close()


class Vmm:
    def __init__(self, argv, sock):
        self.sock = sock
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.out = b""
        self.wait_for(b"DRAWN", 120)

    def wait_for(self, marker, timeout):
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while marker not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r}: {self.out[-200:]!r}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                c = os.read(fd, 4096)
                if not c:
                    raise EOFError(f"VMM exited: {self.out[-200:]!r}")
                self.out += c

    def poke(self):
        self.p.stdin.write(b"x")
        self.p.stdin.flush()

    def memory(self):
        st = open(f"/proc/{self.p.pid}/status").read()
        rss = int(next(l for l in st.splitlines() if l.startswith("VmRSS:")).split()[1])
        ro = open(f"/proc/{self.p.pid}/smaps_rollup").read()
        pss = int(next(l for l in ro.splitlines() if l.startswith("Pss:")).split()[1])
        return rss, pss

    def stop(self):
        self.p.kill()
        self.p.wait()


def measure(vmm, encoding, boxes, n_box):
    c = Client(vmm.sock, encoding)
    c.got = 0
    t0 = time.monotonic_ns()
    c.request(0)
    covered = 0
    while covered < W * H:
        covered += c.update()
        if covered < W * H:
            c.request(1)
    full_ms = (time.monotonic_ns() - t0) / 1e6
    full_bytes = c.got
    small = []
    for _ in range(boxes):
        c.wait_quiet()
        c.got = 0
        t0 = time.monotonic_ns()
        vmm.poke()
        area = c.update()
        ms = (time.monotonic_ns() - t0) / 1e6
        n_box[0] += 1
        small.append({"ms": ms, "bytes": c.got, "pixels": area})
    vmm.wait_for(f"BOX {n_box[0] - 1}\n".encode(), 30)
    c.close()
    return {"full_ms": full_ms, "full_bytes": full_bytes, "small": small}


def med(xs):
    return statistics.median(xs) if xs else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--boxes", type=int, default=10)
    ap.add_argument("--commit", default="")
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="rvirt-display-bench.")
    common = ["-M", "pc", "-accel", "kvm", "-m", "128", "-nodefaults", "-serial", "stdio",
              "-device", "bochs-display", "-kernel", a.guest]
    vmms = {
        "rvirt": lambda sock: [a.rvirt] + common + ["-vnc", f"unix:{sock}"],
        "qemu": lambda sock: [a.qemu] + common + ["-display", "none", "-vnc", f"unix:{sock}"],
    }
    samples = {k: {e: [] for e in ENCODINGS} for k in vmms}
    memory = {k: [] for k in vmms}
    for run in range(a.runs):
        order = list(vmms) if run % 2 == 0 else list(reversed(vmms))
        for name in order:
            sock = os.path.join(tmp, f"{name}-{run}.sock")
            vmm = Vmm(vmms[name](sock), sock)
            try:
                n_box = [0]
                for enc in ENCODINGS:
                    samples[name][enc].append(measure(vmm, enc, a.boxes, n_box))
                memory[name].append(vmm.memory())
            finally:
                vmm.stop()
        print(f"run {run + 1}/{a.runs} done", file=sys.stderr)

    rows = []
    def row(what, unit, r, q):
        ratio = f"{r / q:.2f}" if r is not None and q else "-"
        rows.append((what, unit, r, q, ratio))
    for enc in ENCODINGS:
        for key, unit in (("full_ms", "ms"), ("full_bytes", "B")):
            r = med([s[key] for s in samples["rvirt"][enc]])
            q = med([s[key] for s in samples["qemu"][enc]])
            row(f"full 1024x768, {enc}", unit, r, q)
        for key, unit in (("ms", "ms"), ("bytes", "B"), ("pixels", "px")):
            r = med([b[key] for s in samples["rvirt"][enc] for b in s["small"]])
            q = med([b[key] for s in samples["qemu"][enc] for b in s["small"]])
            row(f"64x64 box, {enc}", unit, r, q)
    row("VMM RSS with display+client", "KiB", med([m[0] for m in memory["rvirt"]]),
        med([m[0] for m in memory["qemu"]]))
    row("VMM PSS with display+client", "KiB", med([m[1] for m in memory["rvirt"]]),
        med([m[1] for m in memory["qemu"]]))
    print(f"{'':36} {'unit':>4} {'rvirt':>12} {'QEMU':>12} {'ratio':>6}")
    for what, unit, r, q, ratio in rows:
        fmt = lambda v: "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))
        print(f"{what:36} {unit:>4} {fmt(r):>12} {fmt(q):>12} {ratio:>6}")
    if a.json:
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump({"commit": a.commit, "when": datetime.datetime.utcnow().isoformat() + "Z",
                       "runs": a.runs, "boxes": a.boxes, "samples": samples, "memory": memory,
                       "summary": rows}, f, indent=1)
        print(f"samples: {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
