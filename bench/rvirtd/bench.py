#!/usr/bin/env python3
"""rvirtd + rvirt-vmm vs libvirtd + QEMU, side by side (issue 6, "Benchmark").

Standard library only. Both stacks get the same domain XML (microvm, the
`oneline` PVH guest, serial on a <serial type='file'> in a temporary
directory) and the same clock (CLOCK_MONOTONIC). See run.sh for the cases.

Clients: each stack's own CLI (rvirsh -> rvirtd, virsh -> libvirtd), one
process per command as a user runs them; virsh -> rvirtd is also measured
(unscored) to separate the daemon from the CLI, and rvirsh -> libvirtd for
list --all.
"""
import argparse
import json
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from private_libvirtd import PrivateLibvirtd  # noqa: E402

NEEDLE = b"ONELINE"
now = time.monotonic  # CLOCK_MONOTONIC
ENV = dict(os.environ, LC_ALL="C")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def domain_xml(name, kernel, serial):
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model><feature policy='disable' name='pni'/><feature policy='disable' name='svm'/></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_socket(path, timeout, what):
    import socket
    deadline = now() + timeout
    while now() < deadline:
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return
        except OSError:
            time.sleep(0.02)
        finally:
            s.close()
    raise RuntimeError(f"{what}: no socket at {path} after {timeout} s")


class Stack:
    """One daemon with its URI, serial directory and own CLI."""

    def __init__(self, key, label, uri, cli, serial_dir):
        self.key, self.label, self.uri = key, label, uri
        self.cli = cli  # e.g. ["virsh"] or [".../rvirsh"]
        self.serial_dir = serial_dir
        self.pid = None

    def cmd(self, *args, cli=None):
        return (cli or self.cli) + ["-c", self.uri] + list(args)

    def run(self, *args, cli=None, check=True):
        p = subprocess.run(self.cmd(*args, cli=cli), env=ENV, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(self.cmd(*args, cli=cli))}: {p.stderr.strip()}")
        return p

    def session(self, lines):
        """Many commands through one virsh process (untimed set-up work)."""
        p = subprocess.run(["virsh", "-c", self.uri], input="\n".join(lines) + "\n",
                           env=ENV, capture_output=True, text=True)
        return p.stdout, p.stderr

    def serial(self, name):
        return os.path.join(self.serial_dir, name + ".serial")

    def active(self, prefix):
        out = self.run("list", "--name", cli=["virsh"]).stdout
        return [n for n in out.split() if n.startswith(prefix)]

    def all_names(self, prefix):
        out = self.run("list", "--all", "--name", cli=["virsh"]).stdout
        return [n for n in out.split() if n.startswith(prefix)]

    def wait_inactive(self, names, timeout=120):
        want = set(names)
        deadline = now() + timeout
        while True:
            left = want.intersection(self.active(""))
            if not left:
                return
            if now() > deadline:
                raise RuntimeError(f"{self.label}: still active after {timeout} s: {sorted(left)[:5]}")
            time.sleep(0.05)


def pid_file(path):
    with open(path) as f:
        return int(f.read().strip())


def start_private_libvirtd(d):
    """A fresh libvirtd (and virtlogd) of its own, QEMU run as root in its
    own copy of qemu.conf (bench/lib/private_libvirtd.py). Clients reach it
    through d/run/libvirt/libvirt-sock. Returns the tini process (stop it
    with SIGTERM); every process it starts stays inside the namespace."""
    return PrivateLibvirtd(d).proc


def wait_line(path, timeout=30.0):
    """Polls the serial file (stat every 0.5 ms, read when it grew) until
    the guest's line is in it; returns the monotonic time it was seen."""
    deadline = now() + timeout
    size = 0
    while True:
        try:
            st = os.stat(path).st_size
        except FileNotFoundError:
            st = 0
        if st != size:
            size = st
            with open(path, "rb") as f:
                if NEEDLE in f.read():
                    return now()
        if now() > deadline:
            return None
        time.sleep(0.0005)


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def median(xs):
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------- cases

def case_start(stacks, name, runs, cli_for):
    """Start -> guest line, alternating the clients (first of each round
    rotates). cli_for: label -> (stack, cli)."""
    labels = list(cli_for)
    samples = {l: [] for l in labels}
    returned = {l: [] for l in labels}
    failures = {l: 0 for l in labels}
    for r in range(-1, runs):  # round -1: warm-up, untimed
        order = labels[r % len(labels):] + labels[:r % len(labels)] if r >= 0 else labels
        for l in order:
            st, cli = cli_for[l]
            path = st.serial(name)
            remove(path)
            t0 = now()
            p = subprocess.run(st.cmd("start", name, cli=cli), env=ENV, capture_output=True, text=True)
            t_ret = now()
            t1 = wait_line(path) if p.returncode == 0 else None
            if r >= 0:
                if t1 is None:
                    failures[l] += 1
                    log(f"  {l}: start failed or no line: {p.stderr.strip()}")
                else:
                    samples[l].append((t1 - t0) * 1e3)
                    returned[l].append((t_ret - t0) * 1e3)
            st.run("destroy", name, cli=["virsh"], check=False)
            st.wait_inactive([name])
    return samples, returned, failures


def case_rate(st, names, workers):
    """Starts every domain in `names`, `workers` CLI processes at a time
    (each worker starts its next domain as soon as its `start` returned);
    one poller thread notes when each guest's line is in its serial file.
    Rate = len(names) / (last line seen - first start issued)."""
    for n in names:
        remove(st.serial(n))
    todo = queue.Queue()
    for n in names:
        todo.put(n)
    seen, errors = {}, []
    pending = {n: st.serial(n) for n in names}
    sizes = {n: 0 for n in names}
    stop = threading.Event()

    def poller():
        while pending and not stop.is_set():
            for n, path in list(pending.items()):
                try:
                    sz = os.stat(path).st_size
                except FileNotFoundError:
                    continue
                if sz != sizes[n]:
                    sizes[n] = sz
                    with open(path, "rb") as f:
                        if NEEDLE in f.read():
                            seen[n] = now()
                            pending.pop(n, None)
            time.sleep(0.0005)

    def worker():
        while not stop.is_set():
            try:
                n = todo.get_nowait()
            except queue.Empty:
                return
            p = subprocess.run(st.cmd("start", n), env=ENV, capture_output=True, text=True)
            if p.returncode != 0:
                errors.append(f"{n}: {p.stderr.strip()}")
                pending.pop(n, None)

    pt = threading.Thread(target=poller, daemon=True)
    t0 = now()
    pt.start()
    ws = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    try:
        for w in ws:
            w.start()
        for w in ws:
            w.join()
        pt.join(timeout=60)
    finally:
        # Also on Ctrl-C: no new starts, let the running ones finish so the
        # clean-up sees every domain that was started.
        stop.set()
        for w in ws:
            if w.is_alive():
                w.join(30)
    pt.join()
    ok = len(seen)
    elapsed = (max(seen.values()) - t0) if seen else float("nan")
    # Clean up: destroy what still runs (libvirt keeps the crashed guests
    # paused; rvirt's are shut off (crashed) already).
    st.session([f"destroy {n}" for n in st.active("") if n in set(names)])
    st.wait_inactive(names)
    return {"domains": len(names), "ok": ok, "errors": errors, "seconds": elapsed,
            "per_second": ok / elapsed if seen else 0.0}


def case_list(cli_for, runs, prefix, many):
    labels = list(cli_for)
    samples = {l: [] for l in labels}
    rows = {}
    for r in range(-1, runs):
        order = labels[r % len(labels):] + labels[:r % len(labels)] if r >= 0 else labels
        for l in order:
            st, cli = cli_for[l]
            t0 = now()
            p = subprocess.run(st.cmd("list", "--all", cli=cli), env=ENV, capture_output=True, text=True)
            t1 = now()
            mine = sum(1 for line in p.stdout.splitlines() if prefix in line)
            rows[l] = len(p.stdout.splitlines())
            if p.returncode != 0 or mine < many:
                raise RuntimeError(f"{l}: list --all gave {mine} of {many} rows: {p.stderr.strip()}")
            if r >= 0:
                samples[l].append((t1 - t0) * 1e3)
    return samples, rows


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--list-runs", type=int, default=5)
    ap.add_argument("--many", type=int, default=1000)
    ap.add_argument("--throughput", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=10)
    ap.add_argument("--json", required=True)
    ap.add_argument("--libvirtd", choices=("private", "shared"), default="private")
    a = ap.parse_args()

    def on_signal(sig, frame):
        # Once: the clean-up that follows must not be cut short by a second
        # one (`timeout -s INT` signals the child, then its whole group).
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {sig}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    prefix = f"rvb{os.getpid()}-"
    names = [f"{prefix}{i:04d}" for i in range(a.many)]
    work = tempfile.mkdtemp(prefix="rvirt-bench-rvirtd.")
    os.chmod(work, 0o755)
    rvroot = os.path.join(work, "root")
    started = {}  # what this run started and must stop
    rvirtd = None
    res = {"commit": a.commit, "guest": a.guest, "prefix": prefix}
    rvirsh = [os.path.join(a.bin, "rvirsh")]
    lvrun = os.path.join(work, "libvirt/run") if a.libvirtd == "private" else "/run"
    lv = Stack("libvirt", "libvirtd", f"qemu+unix:///system?socket={lvrun}/libvirt/libvirt-sock", ["virsh"], os.path.join(work, "lv"))
    rv = Stack("rvirt", "rvirtd", f"qemu+unix:///system?socket={rvroot}/run/rvirt/rvirt-sock",
               rvirsh, os.path.join(work, "rv"))
    for st in (lv, rv):
        os.makedirs(st.serial_dir)
        os.makedirs(os.path.join(work, "xml", st.key))
    try:
        # ---- daemons
        if a.libvirtd == "private":
            lvdir = os.path.join(work, "libvirt")
            started["libvirtd"] = start_private_libvirtd(lvdir)
            lv.pid = pid_file(os.path.join(lvdir, "run/libvirtd.pid"))
        else:
            if not os.path.exists("/run/libvirt/libvirt-sock"):
                log("libvirtd is not running: starting virtlogd and libvirtd under tini")
                if not os.path.exists("/run/libvirt/virtlogd-sock"):
                    subprocess.run(["virtlogd", "-d"], check=True)
                    started["virtlogd"] = pid_file("/run/virtlogd.pid")
                lvlog = open(os.path.join(work, "libvirtd.log"), "w")
                started["libvirtd"] = subprocess.Popen(["setsid", "tini", "-s", "--", "libvirtd"],
                                                       stdin=subprocess.DEVNULL, stdout=lvlog, stderr=lvlog)
                wait_socket("/run/libvirt/libvirt-sock", 60, "libvirtd")
            lv.pid = pid_file("/run/libvirtd.pid")
        with open(f"/proc/{lv.pid}/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            lv_age = float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
        other = [n for n in lv.all_names("") if not n.startswith(prefix)]
        res["libvirtd"] = {"mode": a.libvirtd, "pid": lv.pid, "age_s": round(lv_age), "other_domains": len(other)}

        rverr = open(os.path.join(work, "rvirtd.stderr"), "w")
        rvirtd = subprocess.Popen([os.path.join(a.bin, "rvirtd"), "--root", rvroot,
                                   "--vmm", os.path.join(a.bin, "rvirt-vmm"), "--destroy-grace", "3"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=rverr,
                                  start_new_session=True)
        wait_socket(f"{rvroot}/run/rvirt/rvirt-sock", 10, "rvirtd")
        rv.pid = rvirtd.pid
        rv.run("version")
        lv.run("version")
        time.sleep(0.5)

        # ---- 3a: idle RSS
        idle = {"rvirt": rss_kib(rv.pid), "libvirt": rss_kib(lv.pid)}
        log(f"idle RSS: rvirtd {idle['rvirt']} KiB, libvirtd {idle['libvirt']} KiB "
            f"(libvirtd up {lv_age / 60:.0f} min, {len(other)} other domains)")

        # ---- domain definitions (untimed)
        def define(st, batch):
            lines = []
            for n in batch:
                path = os.path.join(work, "xml", st.key, n + ".xml")
                with open(path, "w") as f:
                    f.write(domain_xml(n, a.guest, st.serial(n)))
                lines.append(f"define {path}")
            out, err = st.session(lines)
            if out.count("defined from") != len(batch):
                raise RuntimeError(f"{st.label}: defined {out.count('defined from')} of {len(batch)}: {err[:500]}")

        first = names[:1 + a.throughput]
        for st in (lv, rv):
            define(st, first)

        # ---- 1: start -> line
        log(f"1. start -> line, {a.runs} runs per client, alternating")
        s, ret, fails = case_start((lv, rv), names[0], a.runs, {
            "rvirsh->rvirtd": (rv, rvirsh), "virsh->libvirtd": (lv, ["virsh"]),
            "virsh->rvirtd": (rv, ["virsh"])})
        res["start_to_line_ms"] = s
        res["start_returned_ms"] = ret
        res["start_failures"] = fails

        # ---- 2: domains per second
        tp = names[1:1 + a.throughput]
        rates = {}
        for mode, st, workers in (("sequential", lv, 1), ("sequential", rv, 1),
                                  ("concurrent", rv, a.parallel), ("concurrent", lv, a.parallel)):
            log(f"2. {len(tp)} domains {mode} on {st.label}")
            rates[(mode, st.key)] = case_rate(st, tp, workers)
        res["rate"] = {f"{m}/{k}": v for (m, k), v in rates.items()}

        # ---- 3b: RSS with MANY defined
        log(f"3. defining {a.many} domains on each daemon")
        rest = names[len(first):]
        before = {"rvirt": rss_kib(rv.pid), "libvirt": rss_kib(lv.pid)}
        for st in (rv, lv):
            for i in range(0, len(rest), 250):
                define(st, rest[i:i + 250])
        time.sleep(0.5)
        many_rss = {"rvirt": rss_kib(rv.pid), "libvirt": rss_kib(lv.pid)}
        res["rss_kib"] = {"idle": idle, f"before_defining_{len(rest)}": before,
                          f"defined_{a.many}": many_rss}
        res["rss_kib_per_definition"] = {k: (many_rss[k] - before[k]) / max(1, len(rest)) for k in before}

        # ---- 4: list --all
        log(f"4. list --all over {a.many} domains, {a.list_runs} runs per client, alternating")
        ls, rows = case_list({"rvirsh->rvirtd": (rv, rvirsh), "virsh->libvirtd": (lv, ["virsh"]),
                              "virsh->rvirtd": (rv, ["virsh"]), "rvirsh->libvirtd": (lv, rvirsh)},
                             a.list_runs, prefix, a.many)
        res["list_all_ms"] = ls
        res["list_rows"] = rows
        after_list = {"rvirt": rss_kib(rv.pid), "libvirt": rss_kib(lv.pid)}
        res["rss_kib"]["after_list"] = after_list
    finally:
        # A second Ctrl-C (or the group-wide SIGINT of `timeout -s INT`) must
        # not cut the clean-up short; the commands it runs inherit SIG_IGN.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        log("cleaning up")
        try:
            if os.path.exists(f"{lvrun}/libvirt/libvirt-sock"):
                # A start cut short by Ctrl-C can still be finishing: retry.
                for attempt in range(5):
                    mine = lv.all_names(prefix)
                    if not mine:
                        break
                    act = set(lv.active(prefix))
                    lv.session([f"destroy {n}" for n in mine if n in act] + [f"undefine {n}" for n in mine])
                    time.sleep(attempt * 0.5)
                left = lv.all_names(prefix)
                if left:
                    log(f"WARNING: libvirt still has {len(left)} domains {prefix}*")
            if a.libvirtd == "shared":
                for n in names:
                    remove(f"/var/log/libvirt/qemu/{n}.log")
        except Exception as e:  # keep cleaning
            log(f"libvirt clean-up: {e}")
        if rvirtd is not None:
            try:
                act = rv.active(prefix)
                if act:
                    rv.session([f"destroy {n}" for n in act])
            except Exception as e:
                log(f"rvirt clean-up: {e}")
            rvirtd.terminate()
            try:
                rvirtd.wait(5)
            except subprocess.TimeoutExpired:
                rvirtd.kill()
                rvirtd.wait()
            # Any VM left behind (runtime records name their pids).
            qdir = os.path.join(rvroot, "run/rvirt/qemu")
            for d in os.listdir(qdir) if os.path.isdir(qdir) else []:
                try:
                    with open(os.path.join(qdir, d, "vmm.pid")) as f:
                        pid = int(f.read().strip())
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if b"rvirt-vmm" in f.read():
                            os.kill(pid, signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        if "libvirtd" in started:
            started["libvirtd"].terminate()  # tini passes it on to libvirtd
            try:
                started["libvirtd"].wait(30)
            except subprocess.TimeoutExpired:
                started["libvirtd"].kill()
                started["libvirtd"].wait()
        if a.libvirtd == "private":
            # The private tree's virtlogd, and any QEMU a failure left behind.
            run = os.path.join(work, "libvirt/run")
            qemu_dir = os.path.join(run, "libvirt/qemu")
            pids = [os.path.join(qemu_dir, f) for f in (os.listdir(qemu_dir) if os.path.isdir(qemu_dir) else [])
                    if f.endswith(".pid")]
            for path, what in [(p, b"qemu") for p in pids] + [(os.path.join(run, "virtlogd.pid"), b"virtlogd")]:
                try:
                    pid = pid_file(path)
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if what in f.read():
                            os.kill(pid, signal.SIGKILL if what == b"qemu" else signal.SIGTERM)
                except (OSError, ValueError):
                    pass
        if "virtlogd" in started:
            try:
                os.kill(started["virtlogd"], signal.SIGTERM)
            except OSError:
                pass
        shutil.rmtree(work, ignore_errors=True)

    report(a, res, rates)


def report(a, res, rates):
    rows = []

    def row(case, rv, lv, ratio, target, ok, unit):
        rows.append((case, rv, lv, ratio, target, ok, unit))

    s = res["start_to_line_ms"]
    m_rv, m_lv, m_vr = (median(s[k]) for k in ("rvirsh->rvirtd", "virsh->libvirtd", "virsh->rvirtd"))
    r = m_rv / m_lv
    row("start -> guest line (median, ms)", f"{m_rv:.1f}", f"{m_lv:.1f}", f"{r:.3f}", "<= 0.1", r <= 0.1, "")
    r2 = m_vr / m_lv
    row("  same, virsh -> rvirtd", f"{m_vr:.1f}", f"{m_lv:.1f}", f"{r2:.3f}", "(info)", None, "")
    for mode in ("sequential", "concurrent"):
        x, y = rates[(mode, "rvirt")], rates[(mode, "libvirt")]
        r = x["per_second"] / y["per_second"] if y["per_second"] else float("nan")
        label = f"domains/s, {a.throughput} {mode}" + (f" ({a.parallel} at once)" if mode == "concurrent" else "")
        ok = r >= 10 and x["ok"] == x["domains"]
        row(label, f"{x['per_second']:.1f}", f"{y['per_second']:.2f}", f"{r:.1f}x", ">= 10x", ok, "")
    for k, label in (("idle", "daemon RSS idle (MiB)"), (f"defined_{a.many}", f"daemon RSS, {a.many} defined (MiB)")):
        x, y = res["rss_kib"][k]["rvirt"], res["rss_kib"][k]["libvirt"]
        r = x / y
        row(label, f"{x / 1024:.1f}", f"{y / 1024:.1f}", f"{r:.3f}", "< 0.2", r < 0.2, "")
    l = res["list_all_ms"]
    m_rv, m_lv = median(l["rvirsh->rvirtd"]), median(l["virsh->libvirtd"])
    r = m_lv / m_rv
    row(f"list --all, {a.many} defined (median, ms)", f"{m_rv:.1f}", f"{m_lv:.1f}", f"{r:.1f}x", ">= 10x", r >= 10, "")
    m_vr, m_rl = median(l["virsh->rvirtd"]), median(l["rvirsh->libvirtd"])
    row("  virsh -> rvirtd / rvirsh -> libvirtd", f"{m_vr:.1f}", f"{m_rl:.1f}", "", "(info)", None, "")

    w = max(len(x[0]) for x in rows)
    lvinfo = res["libvirtd"]
    print(f"rvirtd bench, commit {res['commit']}; libvirtd: {lvinfo['mode']}, up {lvinfo['age_s']} s "
          f"with {lvinfo['other_domains']} other domains at the start")
    print(f"{'case':<{w}}  {'rvirt':>9}  {'libvirt':>9}  {'ratio':>7}  {'target':>7}  result")
    fails = 0
    for case, x, y, ratio, target, ok, _ in rows:
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        fails += ok is False
        print(f"{case:<{w}}  {x:>9}  {y:>9}  {ratio:>7}  {target:>7}  {verdict}")
    ret = res["start_returned_ms"]
    print(f"start command returned (median ms): rvirsh->rvirtd {median(ret['rvirsh->rvirtd']):.1f}, "
          f"virsh->libvirtd {median(ret['virsh->libvirtd']):.1f}, virsh->rvirtd {median(ret['virsh->rvirtd']):.1f}")
    per = res["rss_kib_per_definition"]
    print(f"RSS per added definition: rvirtd {per['rvirt']:.1f} KiB, libvirtd {per['libvirt']:.1f} KiB"
          + ("" if a.libvirtd == "private" else "; libvirtd's figures are as found (its heap keeps its history)"))
    rs = res["rss_kib"]["after_list"]
    print(f"RSS after the list runs: rvirtd {rs['rvirt'] / 1024:.1f} MiB, libvirtd {rs['libvirt'] / 1024:.1f} MiB")
    probs = [f"{k}: {v} start failures" for k, v in res["start_failures"].items() if v]
    probs += [f"{k}: {len(v['errors'])} failed starts ({v['errors'][:1]})" for k, v in res["rate"].items() if v["errors"]]
    for p in probs:
        print("problem:", p)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)
    print(f"samples: {a.json}")
    return fails


if __name__ == "__main__":
    main()
