#!/usr/bin/env python3
"""Density: N idle VMs under rvirtd, then under a private libvirtd + QEMU
(issue 21). libvirt-python drives both daemons; see run.sh."""
import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import libvirt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from private_libvirtd import PrivateLibvirtd  # noqa: E402

now = time.monotonic
ENV = dict(os.environ, LC_ALL="C")
libvirt.registerErrorHandler(lambda *_: None, None)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def domain_xml(name, kernel, serial, mem_mib):
    return f"""<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>{mem_mib}</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='microvm'>hvm</type>
    <kernel>{kernel}</kernel>
    <cmdline>console=ttyS0</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model><feature policy='disable' name='pni'/><feature policy='disable' name='svm'/></cpu>
  <devices>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


def host_used_mib():
    m = meminfo()
    return (m["MemTotal"] - m["MemAvailable"]) / 1024


def status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def vmm_processes(prefix):
    """{domain name: [pid, ...]}: every process whose command line names
    `guest=PREFIX…` (rvirt-vmm and its exit helper; QEMU)."""
    found = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        for a in args:
            if a.startswith(b"guest=" + prefix.encode()):
                found.setdefault(a[6:].split(b",")[0].decode(), []).append(int(p))
                break
    return found


def limit(pid, name):
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith(name):
                    return line[len(name):].split()[0]
    except OSError:
        pass
    return "?"


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError):
        return None


def cli_time(cmd, runs=3):
    times = []
    lines = 0
    for _ in range(runs):
        t0 = now()
        r = subprocess.run(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        times.append((now() - t0) * 1000)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd}: {r.stderr.decode().strip()}")
        lines = sum(1 for line in r.stdout.decode().splitlines() if " running" in line)
    return statistics.median(times), lines


class Side:
    def __init__(self, key, uri, daemon_pid, list_cmds):
        self.key = key
        self.uri = uri
        self.pid = daemon_pid
        self.list_cmds = list_cmds  # {label: argv}


def start_batch(side, names, clients, reserve_kib, stop_flag):
    """Starts `names` with `clients` connections at once; returns (started,
    seconds, first error)."""
    q = queue.Queue()
    for n in names:
        q.put(n)
    started = []
    errors = []
    lock = threading.Lock()

    def worker():
        conn = libvirt.open(side.uri)
        try:
            while not stop_flag.is_set():
                try:
                    n = q.get_nowait()
                except queue.Empty:
                    return
                if meminfo()["MemAvailable"] < reserve_kib:
                    with lock:
                        errors.append(f"host MemAvailable below the reserve ({reserve_kib // 1024} MiB)")
                    stop_flag.set()
                    return
                try:
                    conn.lookupByName(n).create()
                    with lock:
                        started.append(n)
                except libvirt.libvirtError as e:
                    with lock:
                        errors.append(f"{n}: {e.get_error_message()}")
                    stop_flag.set()
                    return
        finally:
            conn.close()

    t0 = now()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return started, now() - t0, errors[0] if errors else None


def measure(side, prefix, n_running, base_used):
    time.sleep(1.0)  # let the last VMs settle (their first line, page faults)
    procs = vmm_processes(prefix)
    per_vm = []
    for name, pids in list(procs.items())[:50]:
        per_vm.append({
            "rss_kib": sum(int(status(p).get("VmRSS", "0 kB").split()[0]) for p in pids),
            "pss_kib": sum(pss_kib(p) for p in pids),
            "threads": sum(int(status(p).get("Threads", "0")) for p in pids),
            "processes": len(pids),
        })
    med = statistics.median
    st = status(side.pid)
    row = {
        "n": n_running,
        "vmm_processes_found": len(procs),
        "host_used_mib": round(host_used_mib() - base_used, 1),
        "daemon_rss_mib": round(int(st.get("VmRSS", "0 kB").split()[0]) / 1024, 1),
        "daemon_threads": int(st.get("Threads", "0")),
        "daemon_fds": nfds(side.pid),
        "vmm_rss_mib": round(med(v["rss_kib"] for v in per_vm) / 1024, 2) if per_vm else None,
        "vmm_pss_mib": round(med(v["pss_kib"] for v in per_vm) / 1024, 2) if per_vm else None,
        "vmm_threads": med(v["threads"] for v in per_vm) if per_vm else None,
        "vmm_processes": med(v["processes"] for v in per_vm) if per_vm else None,
        "list_ms": {},
    }
    for label, cmd in side.list_cmds.items():
        ms, running = cli_time(cmd)
        row["list_ms"][label] = round(ms, 1)
        row.setdefault("listed_running", running)
    return row


def run_side(side, a, prefix, work, ns, stop_flag, xml_for):
    conn = libvirt.open(side.uri)
    top = max(ns)
    names = [f"{prefix}{i:05d}" for i in range(top)]
    for n in names:
        conn.defineXML(xml_for(n))
    conn.close()
    base_used = host_used_mib()
    rows = []
    running = 0
    limit_met = None
    for n in sorted(ns):
        started, secs, err = start_batch(side, names[running:n], a.clients, a.reserve_mib * 1024, stop_flag)
        running += len(started)
        rate = len(started) / secs if secs > 0 else 0.0
        row = measure(side, prefix, running, base_used)
        row["start_rate_per_s"] = round(rate, 1)
        row["batch"] = len(started)
        rows.append(row)
        log(f"{side.key}: {running} running, {rate:.1f} starts/s, host +{row['host_used_mib']} MiB, "
            f"daemon {row['daemon_rss_mib']} MiB / {row['daemon_threads']} threads / {row['daemon_fds']} fds, "
            f"VMM rss {row['vmm_rss_mib']} pss {row['vmm_pss_mib']} MiB, {row['vmm_threads']} threads; "
            f"list --all {row['list_ms']} ms")
        if err:
            limit_met = err
            log(f"{side.key}: stopped at {running}: {err}")
            break
    return rows, limit_met


def teardown(uri, prefix):
    try:
        conn = libvirt.open(uri)
    except libvirt.libvirtError:
        return
    try:
        for d in conn.listAllDomains():
            if d.name().startswith(prefix):
                try:
                    if d.isActive():
                        d.destroy()
                except libvirt.libvirtError:
                    pass
                try:
                    d.undefine()
                except libvirt.libvirtError:
                    pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--ns", default="100,500,1000")
    ap.add_argument("--libvirt-ns", default=None, help="default: --ns")
    ap.add_argument("--mem-mib", type=int, default=128)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--reserve-mib", type=int, default=3072)
    ap.add_argument("--skip-libvirt", action="store_true")
    ap.add_argument("--pid-max", type=int, default=0,
                    help="raise kernel.pid_max to this for the run (restored after)")
    ap.add_argument("--json")
    a = ap.parse_args()
    ns = [int(x) for x in a.ns.split(",") if x]
    lns = [int(x) for x in (a.libvirt_ns or a.ns).split(",") if x]

    def on_signal(sig, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {sig}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    # Each VM costs a few tasks (its VMM's threads, rvirtd's per domain):
    # past ~3,600 VMs that is more than the kernel's default pid_max of
    # 32,768. Raised only when asked, deliberately, and put back after.
    old_pid_max = read_int("/proc/sys/kernel/pid_max")
    if a.pid_max > old_pid_max:
        with open("/proc/sys/kernel/pid_max", "w") as f:
            f.write(str(a.pid_max))
        log(f"kernel.pid_max raised from {old_pid_max} to {a.pid_max} for this run")
    try:
        run_all(a, ns, lns)
    finally:
        if read_int("/proc/sys/kernel/pid_max") != old_pid_max:
            with open("/proc/sys/kernel/pid_max", "w") as f:
                f.write(str(old_pid_max))
            log(f"kernel.pid_max restored to {old_pid_max}")


def run_all(a, ns, lns):
    prefix = f"dn{os.getpid()}-"
    res = {"prefix": prefix, "mem_mib": a.mem_mib, "clients": a.clients,
           "host": {"pid_max": read_int("/proc/sys/kernel/pid_max"),
                    "threads_max": read_int("/proc/sys/kernel/threads-max"),
                    "mem_total_mib": meminfo()["MemTotal"] // 1024,
                    "cpus": os.cpu_count()}}
    stop_flag = threading.Event()
    with tempfile.TemporaryDirectory(prefix="rvirt-bench-density.") as work:
        os.chmod(work, 0o755)
        serials = os.path.join(work, "serial")
        os.makedirs(serials)

        def xml_for(n):
            return domain_xml(n, a.guest, os.path.join(serials, n + ".log"), a.mem_mib)

        # ---- rvirtd
        rvroot = os.path.join(work, "rvirt")
        err = open(os.path.join(work, "rvirtd.log"), "w")
        rvirtd = subprocess.Popen([os.path.join(a.bin, "rvirtd"), "--root", rvroot,
                                   "--vmm", os.path.join(a.bin, "rvirt-vmm"), "--destroy-grace", "3"],
                                  stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True)
        sock = os.path.join(rvroot, "run/rvirt/rvirt-sock")
        uri = f"qemu+unix:///system?socket={sock}"
        try:
            deadline = now() + 30
            while not os.path.exists(sock):
                if now() > deadline or rvirtd.poll() is not None:
                    raise RuntimeError("rvirtd did not come up")
                time.sleep(0.02)
            res["rvirtd_limits"] = {"nofile": limit(rvirtd.pid, "Max open files"),
                                    "nproc": limit(rvirtd.pid, "Max processes")}
            side = Side("rvirt", uri, rvirtd.pid, {
                "rvirsh": [os.path.join(a.bin, "rvirsh"), "-c", uri, "list", "--all"],
                "virsh": ["virsh", "-c", uri, "list", "--all"]})
            res["rvirt"], res["rvirt_limit"] = run_side(side, a, prefix, work, ns, stop_flag, xml_for)
            booted = sum(1 for f in os.listdir(serials)
                         if b"IDLE" in open(os.path.join(serials, f), "rb").read())
            res["rvirt_booted"] = booted
            log(f"rvirt: {booted} guests printed IDLE")
        finally:
            teardown(uri, prefix)
            rvirtd.terminate()
            try:
                rvirtd.wait(30)
            except subprocess.TimeoutExpired:
                rvirtd.kill()
                rvirtd.wait()
        stop_flag.clear()
        for f in os.listdir(serials):
            os.unlink(os.path.join(serials, f))

        # ---- libvirtd + QEMU
        if not a.skip_libvirt:
            lv = PrivateLibvirtd(os.path.join(work, "libvirt"))
            try:
                side = Side("libvirt", lv.uri, lv.pid, {"virsh": ["virsh", "-c", lv.uri, "list", "--all"]})
                res["libvirt"], res["libvirt_limit"] = run_side(side, a, prefix, work, lns, stop_flag, xml_for)
            finally:
                teardown(lv.uri, prefix)
                lv.stop()
    report(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


def report(res):
    h = res["host"]
    print(f"host: {h['cpus']} CPUs, {h['mem_total_mib']} MiB, pid_max {h['pid_max']}, "
          f"threads-max {h['threads_max']}; rvirtd nofile {res.get('rvirtd_limits', {}).get('nofile')}, "
          f"nproc {res.get('rvirtd_limits', {}).get('nproc')}; {res['mem_mib']} MiB guests, "
          f"{res['clients']} clients starting")
    print(f"{'stack':8} {'N':>6} {'starts/s':>9} {'host+MiB':>9} {'MiB/VM':>7} {'daemon MiB':>10} "
          f"{'d.thr':>6} {'d.fds':>6} {'VMM rss':>8} {'VMM pss':>8} {'VMM thr':>8}  list --all ms")
    for key in ("rvirt", "libvirt"):
        for r in res.get(key, []):
            per = r["host_used_mib"] / r["n"] if r["n"] else 0
            print(f"{key:8} {r['n']:6} {r['start_rate_per_s']:9.1f} {r['host_used_mib']:9.1f} {per:7.2f} "
                  f"{r['daemon_rss_mib']:10.1f} {r['daemon_threads']:6} {r['daemon_fds']:6} "
                  f"{r['vmm_rss_mib'] or 0:8.2f} {r['vmm_pss_mib'] or 0:8.2f} {r['vmm_threads'] or 0:8}  "
                  + ", ".join(f"{k} {v}" for k, v in r["list_ms"].items()))
        if res.get(f"{key}_limit"):
            print(f"{key}: stopped by: {res[key + '_limit']}")
    # What each limit allows, from the largest N measured.
    rv = res.get("rvirt", [])
    if rv and rv[-1]["n"]:
        r = rv[-1]
        # Tasks (threads) each running VM costs the host: its VMM's (and
        # exit helper's) plus rvirtd's per VM.
        per_vm = (r["vmm_threads"] or 0) + r["daemon_threads"] / r["n"]
        fds = r["daemon_fds"] / r["n"]
        nofile = res.get("rvirtd_limits", {}).get("nofile")
        print(f"limits: {per_vm:.1f} tasks per rvirt VM ({r['vmm_threads']} in its VMM, "
              f"{r['daemon_threads'] / r['n']:.1f} in rvirtd): pid_max {h['pid_max']} allows "
              f"~{int(h['pid_max'] / per_vm)} VMs, threads-max {h['threads_max']} ~{int(h['threads_max'] / per_vm)}")
        if nofile and nofile.isdigit():
            print(f"limits: rvirtd holds {fds:.2f} fds per running VM: its nofile {nofile} allows "
                  f"~{int(int(nofile) / fds)} VMs")


if __name__ == "__main__":
    main()
