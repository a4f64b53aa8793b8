#!/usr/bin/env python3
"""rvirt-vmm vs QEMU microvm: QMP round trip and `cont` to first serial byte.

Called by bench/qmp/run.sh (which builds everything and passes the paths).
Standard library only: raw AF_UNIX sockets, json, CLOCK_MONOTONIC
(time.monotonic_ns).

1. query-status round trip. Both VMMs are started once with -S on the same
   guest and stay alive side by side; one persistent, negotiated connection
   each. Each sample: t0, send `{"execute":"query-status"}`, read lines until
   the one reply (event lines are skipped, see is_event), t1. The ROUNDS
   samples per VMM are taken in blocks of BLOCK that alternate between the
   VMMs (which VMM goes first alternates too), after WARMUP_RT untimed round
   trips each. Scored with both VMs paused (status prelaunch); an unscored
   second pass does the same with the guest running: the measured VM is
   `cont`-ed for its block and `stop`-ped after it, so that only one vCPU
   spins at a time on the small host. With --floor, floor.c (a C server
   that answers every line with a canned reply) takes part in the paused
   pass's alternation: what the client, kernel and scheduler cost alone.
2. `cont` to the first serial byte. Per run a fresh VMM with -S and the
   guest's serial on a pipe (the child's stdout); once the monitor is
   negotiated and reports prelaunch, t0 is taken just before `cont` is
   sent; t1 when the first byte is readable on the pipe (poll). The time
   until the `cont` reply is recorded too. RUNS runs per VMM, alternating
   (which one goes first alternates each round), after WARMUP untimed rounds.
"""
import argparse
import datetime
import json
import os
import platform
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

QUERY_STATUS = b'{"execute":"query-status"}\n'
CONT = b'{"execute":"cont"}\n'
STOP = b'{"execute":"stop"}\n'
QUIT = b'{"execute":"quit"}\n'
TARGET_RT = 0.5  # issue 4: round trip at most half of QEMU's


class QmpError(Exception):
    pass


def is_event(ln):
    """rvirt writes events as {"event": ..., "timestamp": ...}, QEMU 7.2 as
    {"timestamp": ..., "event": ...}; replies start with {"return" or
    {"error" in both, so only other lines are parsed."""
    if ln.startswith(b'{"return"') or ln.startswith(b'{"error"'):
        return False
    if ln.startswith(b'{"event"'):
        return True
    try:
        return "event" in json.loads(ln)
    except ValueError:
        return False


class Qmp:
    """A minimal QMP client on a raw UNIX socket: one reply per request."""

    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise QmpError(f"no monitor at {path} after {timeout}s")
                time.sleep(0.002)
        s.settimeout(timeout)
        self.sock = s
        self.buf = bytearray()
        self.events = 0
        greeting = self.line()
        if not greeting.startswith(b'{"QMP"'):
            raise QmpError(f"unexpected greeting {greeting[:200]!r}")
        self.greeting = json.loads(greeting)
        self.check(self.cmd(b'{"execute":"qmp_capabilities"}\n'))

    def line(self):
        """One line ending in \\n (QMP output ends lines with \\r\\n)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                ln = bytes(self.buf[: i + 1])
                del self.buf[: i + 1]
                return ln
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QmpError("monitor closed the connection")
            self.buf += chunk

    def reply(self):
        """The next line that is not an event (see is_event)."""
        while True:
            ln = self.line()
            if is_event(ln):
                self.events += 1
                continue
            return ln

    def cmd(self, req):
        self.sock.sendall(req)
        return self.reply()

    @staticmethod
    def check(ln, want=None):
        if not ln.startswith(b'{"return"'):
            raise QmpError(f"error reply {ln[:300]!r}")
        if want is not None and want not in ln:
            raise QmpError(f"expected {want!r} in {ln[:300]!r}")
        return ln

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Vmm:
    """One VMM process with -S, a QMP socket and its serial on stdout."""

    def __init__(self, name, argv_fn, guest, tmpdir, serial_pipe, timeout):
        self.name = name
        self.sock_path = os.path.join(tmpdir, f"{name}-{time.monotonic_ns()}.qmp")
        self.log_path = os.path.join(tmpdir, f"{name}.stderr")
        argv = argv_fn(self.sock_path, guest)
        self.argv = argv
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if serial_pipe else subprocess.DEVNULL,
            stderr=self.log,
            close_fds=True,
        )
        self.qmp = None
        try:
            self.qmp = Qmp(self.sock_path, timeout)
        except Exception as e:
            self.kill()
            raise QmpError(f"{name}: {e}; stderr in {self.log_path}") from e

    def status(self):
        return json.loads(self.qmp.cmd(QUERY_STATUS))["return"]["status"]

    def quit(self, timeout=5.0):
        """`quit`, then reap; kill if it does not exit in time. Returns status."""
        if self.qmp:
            try:
                self.qmp.sock.sendall(QUIT)
            except OSError:
                pass
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = "killed"
        if self.qmp:
            self.qmp.close()
        self.log.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


def pct(xs, p):
    """Nearest-rank percentile."""
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def summary(xs):
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "p99": pct(xs, 99),
        "min": min(xs),
        "max": max(xs),
        "mean": statistics.fmean(xs),
    }


def round_trips(vmms, rounds, block, warmup, running, log):
    """query-status round trips in alternating blocks; µs samples per VMM."""
    samples = {v.name: [] for v in vmms}
    for v in vmms:
        if running:
            Qmp.check(v.qmp.cmd(CONT))
        for _ in range(warmup):
            Qmp.check(v.qmp.cmd(QUERY_STATUS))
        if running:
            Qmp.check(v.qmp.cmd(STOP))
    want = b'"running"' if running else b'"prelaunch"'
    nblocks = (rounds + block - 1) // block
    clock = time.monotonic_ns
    for b in range(nblocks):
        order = vmms if b % 2 == 0 else list(reversed(vmms))
        n = min(block, rounds - b * block)
        for v in order:
            q = v.qmp
            if running:
                Qmp.check(q.cmd(CONT))
            out = samples[v.name]
            send = q.sock.sendall
            reply = q.reply
            for _ in range(n):
                t0 = clock()
                send(QUERY_STATUS)
                ln = reply()
                t1 = clock()
                out.append((t1 - t0) / 1000.0)
            Qmp.check(ln, want)  # the last reply of the block: right state
            if running:
                Qmp.check(q.cmd(STOP))
    for v in vmms:
        log(f"  {v.name}: {len(samples[v.name])} round trips "
            f"({'running' if running else 'paused'}), "
            f"median {statistics.median(samples[v.name]):.1f} µs")
    return samples


def cont_to_first_byte(name, argv_fn, guest, tmpdir, timeout, settle):
    """One fresh VM: ms from sending `cont` to the first serial byte."""
    v = Vmm(name, argv_fn, guest, tmpdir, serial_pipe=True, timeout=timeout)
    try:
        st = v.status()
        if st != "prelaunch":
            raise QmpError(f"{name}: status {st!r} under -S, expected prelaunch")
        if settle:
            time.sleep(settle)
        out_fd = v.proc.stdout.fileno()
        os.set_blocking(out_fd, False)
        early = b""
        try:
            early = os.read(out_fd, 65536) or b""
        except BlockingIOError:
            pass
        if early:
            raise QmpError(f"{name}: serial output before cont: {early[:80]!r}")
        sock = v.qmp.sock
        poller = select.poll()
        poller.register(out_fd, select.POLLIN)
        poller.register(sock.fileno(), select.POLLIN)
        t_byte = t_reply = None
        first = b""
        t0 = time.monotonic_ns()
        sock.sendall(CONT)
        deadline = t0 + int(timeout * 1e9)
        while t_byte is None or t_reply is None:
            left_ms = (deadline - time.monotonic_ns()) / 1e6
            if left_ms <= 0:
                raise QmpError(f"{name}: no serial byte / cont reply within {timeout}s")
            for fd, ev in poller.poll(left_ms):
                now = time.monotonic_ns()
                if fd == out_fd and t_byte is None:
                    t_byte = now
                    first = os.read(out_fd, 64)
                    poller.unregister(out_fd)
                elif fd == sock.fileno() and t_reply is None:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise QmpError(f"{name}: monitor closed after cont")
                    v.qmp.buf += chunk
                    while b"\n" in v.qmp.buf:
                        ln = v.qmp.line()
                        if is_event(ln):
                            continue
                        Qmp.check(ln)
                        t_reply = now
                        poller.unregister(sock.fileno())
                        break
        res = {
            "first_byte_ms": (t_byte - t0) / 1e6,
            "cont_reply_ms": (t_reply - t0) / 1e6,
            "first_bytes": first.decode("latin-1"),
        }
    finally:
        rc = v.quit()
        v.kill()
    res["exit_status"] = rc
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirt", required=True)
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--floor", help="the floor server built from floor.c (optional)")
    ap.add_argument("--rounds", type=int, default=10000)
    ap.add_argument("--block", type=int, default=500)
    ap.add_argument("--warmup-rt", type=int, default=1000)
    ap.add_argument("--running-rounds", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--settle-ms", type=float, default=50)
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    # The same command line for both (rvirt-vmm takes QEMU's options).
    def args(sock, guest):
        return ["-M", "microvm", "-enable-kvm", "-cpu", "qemu64,-pni", "-m", "64",
                "-nodefaults", "-display", "none", "-S",
                "-qmp", f"unix:{sock},server=on,wait=off",
                "-serial", "stdio", "-kernel", guest]

    def rvirt_argv(sock, guest):
        return [a.rvirt] + args(sock, guest)

    def qemu_argv(sock, guest):
        return [a.qemu] + args(sock, guest)

    argvs = {"rvirt": rvirt_argv, "qemu": qemu_argv}
    tmpdir = tempfile.mkdtemp(prefix="rvirt-bench-qmp-")
    try:
        return measure(a, argvs, rvirt_argv, qemu_argv, tmpdir, log)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def measure(a, argvs, rvirt_argv, qemu_argv, tmpdir, log):
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    problems = []

    # 1. query-status round trips, both VMs alive side by side.
    log(f"query-status round trips: {a.rounds} per VMM in blocks of {a.block}, "
        f"{a.warmup_rt} warm-up each")
    vmms = []
    try:
        for name in ("rvirt", "qemu"):
            vmms.append(Vmm(name, argvs[name], a.guest, tmpdir, False, a.timeout))
        greetings = {v.name: v.qmp.greeting for v in vmms}
        if a.floor:
            vmms.append(Vmm("floor", lambda sock, guest: [a.floor, sock], a.guest,
                            tmpdir, False, a.timeout))
        rt = round_trips(vmms, a.rounds, a.block, a.warmup_rt, False, log)
        rt_running = {}
        if a.running_rounds > 0:
            rt_running = round_trips(vmms[:2], a.running_rounds,
                                     min(a.block, a.running_rounds),
                                     a.warmup_rt // 10, True, log)
        events = {v.name: v.qmp.events for v in vmms}
    finally:
        for v in vmms:
            rc = v.quit()
            if rc != 0:
                problems.append(f"{v.name} (round trips) exited with {rc}")

    # 2. cont -> first serial byte, fresh VMs, alternating.
    log(f"cont to first serial byte: {a.runs} runs per VMM, alternating, "
        f"{a.warmup} warm-up round(s)")
    cont = {"rvirt": [], "qemu": []}
    for r in range(a.warmup + a.runs):
        order = ["rvirt", "qemu"] if r % 2 == 0 else ["qemu", "rvirt"]
        for name in order:
            res = cont_to_first_byte(name, argvs[name], a.guest, tmpdir,
                                     a.timeout, a.settle_ms / 1000.0)
            if res["exit_status"] != 0:
                problems.append(f"{name} (cont run {r}) exited with {res['exit_status']}")
            if r >= a.warmup:
                cont[name].append(res)
    for name in cont:
        firsts = {x["first_bytes"][:1] for x in cont[name]}
        if firsts != {"C"}:
            problems.append(f"{name}: first serial bytes {firsts!r}, expected 'C' (COUNT)")
    load_after = os.getloadavg()

    # Report.
    def ratio(x, y):
        return x / y if y else float("nan")

    rs, qs = summary(rt["rvirt"]), summary(rt["qemu"])
    rows = []
    rt_ratio = ratio(rs["median"], qs["median"])
    rows.append(("query-status round trip median (µs)", rs["median"], qs["median"],
                 rt_ratio, f"<= {TARGET_RT}", "PASS" if rt_ratio <= TARGET_RT else "MISS"))
    rows.append(("query-status round trip p99 (µs)", rs["p99"], qs["p99"],
                 ratio(rs["p99"], qs["p99"]), "-", "info"))
    if "floor" in rt:
        fs = summary(rt["floor"])
        rows.append(("  median minus floor median (µs)", rs["median"] - fs["median"],
                     qs["median"] - fs["median"],
                     ratio(rs["median"] - fs["median"], qs["median"] - fs["median"]),
                     "-", "info"))
    if rt_running:
        rr, qr = summary(rt_running["rvirt"]), summary(rt_running["qemu"])
        rows.append(("  same, guest running, median (µs)", rr["median"], qr["median"],
                     ratio(rr["median"], qr["median"]), "-", "info"))
        rows.append(("  same, guest running, p99 (µs)", rr["p99"], qr["p99"],
                     ratio(rr["p99"], qr["p99"]), "-", "info"))
    cr = [x["first_byte_ms"] for x in cont["rvirt"]]
    cq = [x["first_byte_ms"] for x in cont["qemu"]]
    rows.append(("cont -> first serial byte median (ms)", statistics.median(cr),
                 statistics.median(cq), ratio(statistics.median(cr), statistics.median(cq)),
                 "-", "info"))
    ar = [x["cont_reply_ms"] for x in cont["rvirt"]]
    aq = [x["cont_reply_ms"] for x in cont["qemu"]]
    rows.append(("cont -> cont reply median (ms)", statistics.median(ar),
                 statistics.median(aq), ratio(statistics.median(ar), statistics.median(aq)),
                 "-", "info"))

    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}}  {'rvirt':>9}  {'QEMU':>9}  {'ratio':>6}  {'target':>7}  verdict")
    for name, x, y, rat, tgt, verdict in rows:
        print(f"{name:<{w}}  {x:>9.2f}  {y:>9.2f}  {rat:>6.3f}  {tgt:>7}  {verdict}")
    print(f"(round trips: {rs['n']} per VMM, min rvirt {rs['min']:.1f} / QEMU {qs['min']:.1f} µs; "
          f"cont: {len(cr)} runs each, rvirt {min(cr):.1f}-{max(cr):.1f} ms, "
          f"QEMU {min(cq):.1f}-{max(cq):.1f} ms; load {load_before[0]:.2f} -> {load_after[0]:.2f})")
    if "floor" in rt:
        print(f"(floor: floor.c answering the same client, {fs['n']} round trips alternating "
              f"with the VMMs: median {fs['median']:.1f} µs, p99 {fs['p99']:.1f} µs)")
    for p in problems:
        print(f"problem: {p}")

    result = {
        "benchmark": "qmp",
        "started_utc": started.isoformat(),
        "commit": a.commit,
        "host": {"uname": " ".join(platform.uname()), "cpus": os.cpu_count(),
                 "loadavg_before": load_before, "loadavg_after": load_after},
        "config": {k: v for k, v in vars(a).items() if k != "json"},
        "argv": {"rvirt": rvirt_argv("SOCK", a.guest), "qemu": qemu_argv("SOCK", a.guest)},
        "greetings": greetings,
        "events_skipped": events,
        "query_status_us": {
            "paused": {n: {"summary": summary(rt[n]), "samples": rt[n]} for n in rt},
            "floor_note": "floor: floor.c, a C server answering each line with a canned reply",
            "running": {n: {"summary": summary(rt_running[n]), "samples": rt_running[n]}
                        for n in rt_running},
            "ratio_median": rt_ratio,
            "target": TARGET_RT,
            "verdict": "PASS" if rt_ratio <= TARGET_RT else "MISS",
        },
        "cont_to_first_byte": {
            n: {"first_byte_ms_median": statistics.median([x["first_byte_ms"] for x in cont[n]]),
                "cont_reply_ms_median": statistics.median([x["cont_reply_ms"] for x in cont[n]]),
                "runs": cont[n]} for n in cont
        },
        "problems": problems,
    }
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(result, f, indent=1)
    print(f"JSON: {a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
