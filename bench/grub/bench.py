#!/usr/bin/env python3
"""rvirtd start -> GRUB's first serial line vs libvirtd 9.0 + QEMU 7.2
(issue 14, "Benchmark"). Called by bench/grub/run.sh; standard library only.

Both daemons get the same domain (pc, SeaBIOS with <bios useserial='yes'/>,
no <kernel>, <boot dev='hd'/>, the GRUB disk on virtio, COM1 on a
<serial type='file'>), each on its own copy of the disk. A sample is
CLOCK_MONOTONIC from just before the `start` process is spawned until each
marker is first in the serial file (stat every 0.5 ms, read when it grew):
SeaBIOS's banner, SeaBIOS handing over to the MBR ("Booting from Hard
Disk"), GRUB's boot sector ("GRUB loading", through SeaBIOS's console),
GRUB's kernel, its core image read and unpacked ("Welcome to GRUB"),
GRUB's first line on its own serial terminal (grub.cfg's `echo`: the
issue's metric), and the kernel GRUB then boots (the bzimage test guest,
"LONG_MODE"). Then the domain is destroyed. Clients: each stack's own CLI
(rvirsh -> rvirtd, virsh -> libvirtd), alternating, the first of each round
rotating; one untimed round first.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from private_libvirtd import PrivateLibvirtd  # noqa: E402

now = time.monotonic  # CLOCK_MONOTONIC
ENV = dict(os.environ, LC_ALL="C")
MARKERS = [("banner", b"SeaBIOS (version", "start -> SeaBIOS banner"),
           ("mbr", b"Booting from Hard Disk", "start -> MBR (SeaBIOS boots the disk)"),
           ("grub_mbr", b"GRUB loading", "start -> GRUB's boot sector"),
           ("grub_up", b"Welcome to GRUB", "start -> GRUB's kernel up (core unpacked)"),
           ("grub_line", b"GRUB: first line", "start -> GRUB's first serial line"),
           ("kernel", b"LONG_MODE", "start -> the kernel GRUB booted")]
NAME = "rvgrub"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def domain_xml(disk, serial):
    # The CPU as bench/rvirtd's (QEMU's `host` model aborts on this host).
    return f"""<domain type='kvm'>
  <name>{NAME}</name>
  <memory unit='MiB'>128</memory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
    <bios useserial='yes'/>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model><feature policy='disable' name='pni'/><feature policy='disable' name='svm'/></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{disk}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


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


def virsh(cli, uri, *args, check=True):
    p = subprocess.run(cli + ["-c", uri] + list(args), env=ENV, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"{' '.join(cli)} {' '.join(args)}: {p.stderr.strip()}")
    return p


def watch(path, t0, deadline):
    """Marker -> ms from t0, as each first appears in the serial file; once
    GRUB's line is there, the kernel gets at most 60 s more."""
    seen, size = {}, 0
    while len(seen) < len(MARKERS) and now() < deadline:
        if "grub_line" in seen and now() > t0 + seen["grub_line"] / 1e3 + 60:
            break
        try:
            st = os.stat(path).st_size
        except FileNotFoundError:
            st = 0
        if st != size:
            size = st
            t = now()
            with open(path, "rb") as f:
                data = f.read()
            for key, needle, _ in MARKERS:
                if key not in seen and needle in data:
                    seen[key] = (t - t0) * 1e3
        time.sleep(0.0005)
    return seen


# Each stack's VMs share one CPU cgroup of the host: rvirtd's `rvirt`,
# libvirt's `machine` (cgroup v1 paths, then v2). Another user's VMs in the
# same group (a density run beside this one) shrink this VM's CPU share on a
# loaded host, so each sample records how many tasks the group held.
GROUPS = {"rvirt": ["/sys/fs/cgroup/cpu/rvirt", "/sys/fs/cgroup/rvirt"],
          "libvirt": ["/sys/fs/cgroup/cpu/machine", "/sys/fs/cgroup/machine.slice"]}


def group_tasks(key):
    for root in GROUPS[key]:
        if os.path.isdir(root):
            n = 0
            for d, _, files in os.walk(root):
                name = "tasks" if "tasks" in files else "cgroup.threads"
                if name in files:
                    try:
                        with open(os.path.join(d, name)) as f:
                            n += sum(1 for _ in f)
                    except OSError:
                        pass
            return n
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--disk", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--json", required=True)
    a = ap.parse_args()

    def on_signal(sig, frame):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {sig}")
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)

    work = tempfile.mkdtemp(prefix="rvirt-bench-grub.")
    os.chmod(work, 0o755)
    rvroot = os.path.join(work, "root")
    stacks = {
        "rvirt": {"cli": [os.path.join(a.bin, "rvirsh")],
                  "uri": f"qemu+unix:///system?socket={rvroot}/run/rvirt/rvirt-sock"},
        "libvirt": {"cli": ["virsh"]},
    }
    lv = rvirtd = None
    samples = {k: [] for k in stacks}
    problems = []
    try:
        lv = PrivateLibvirtd(os.path.join(work, "libvirt"))
        stacks["libvirt"]["uri"] = lv.uri
        rverr = open(os.path.join(work, "rvirtd.stderr"), "w")
        rvirtd = subprocess.Popen([os.path.join(a.bin, "rvirtd"), "--root", rvroot,
                                   "--vmm", os.path.join(a.bin, "rvirt-vmm"), "--destroy-grace", "3"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=rverr,
                                  start_new_session=True)
        wait_socket(f"{rvroot}/run/rvirt/rvirt-sock", 10, "rvirtd")
        for key, st in stacks.items():
            st["serial"] = os.path.join(work, f"{key}.serial")
            st["disk"] = os.path.join(work, f"{key}.img")
            shutil.copy(a.disk, st["disk"])
            xml = os.path.join(work, f"{key}.xml")
            with open(xml, "w") as f:
                f.write(domain_xml(st["disk"], st["serial"]))
            virsh(["virsh"], st["uri"], "define", xml)
        order = list(stacks)
        for r in range(-1, a.runs):  # round -1: warm-up, untimed
            for key in (order[r % 2:] + order[:r % 2]) if r >= 0 else order:
                st = stacks[key]
                try:
                    os.unlink(st["serial"])
                except FileNotFoundError:
                    pass
                t0 = now()
                p = subprocess.Popen(st["cli"] + ["-c", st["uri"], "start", NAME], env=ENV,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                seen = watch(st["serial"], t0, t0 + a.timeout)
                seen["group_tasks"] = group_tasks(key)
                err = p.communicate()[1]
                virsh(["virsh"], st["uri"], "destroy", NAME, check=False)
                if p.returncode != 0 or "grub_line" not in seen:
                    tail = open(st["serial"], "rb").read()[-300:] if os.path.exists(st["serial"]) else b""
                    problems.append(f"{key} round {r}: start {p.returncode} {err.strip()!r}; "
                                    f"seen {sorted(seen)}; serial tail {tail!r}")
                if r >= 0:
                    samples[key].append(seen)
                log(f"  round {r}: {key} " + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in seen.items()))
                deadline = now() + 30
                while virsh(["virsh"], st["uri"], "domstate", NAME, check=False).stdout.strip() != "shut off":
                    if now() > deadline:
                        raise RuntimeError(f"{key}: {NAME} still running 30 s after destroy")
                    time.sleep(0.05)
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        for key, st in stacks.items():
            if "uri" in st and (key != "rvirt" or rvirtd is not None):
                virsh(["virsh"], st["uri"], "destroy", NAME, check=False)
                virsh(["virsh"], st["uri"], "undefine", NAME, check=False)
        if rvirtd is not None:
            rvirtd.terminate()
            try:
                rvirtd.wait(10)
            except subprocess.TimeoutExpired:
                rvirtd.kill()
                rvirtd.wait()
        if lv is not None:
            lv.stop()
        shutil.rmtree(work, ignore_errors=True)

    table = []
    print(f"grub bench, commit {a.commit}, {a.runs} runs, medians (ms)")
    print(f"{'metric':42} {'rvirt':>9} {'libvirt':>9} {'ratio':>6}")
    for key, _, label in MARKERS:
        vals = {k: [s[key] for s in samples[k] if key in s] for k in stacks}
        rv = statistics.median(vals["rvirt"]) if vals["rvirt"] else None
        lvm = statistics.median(vals["libvirt"]) if vals["libvirt"] else None
        ratio = rv / lvm if rv and lvm else None
        f = lambda x, w, p: f"{x:{w}.{p}f}" if x is not None else f"{'-':>{w}}"
        print(f"{label:42} {f(rv, 9, 1)} {f(lvm, 9, 1)} {f(ratio, 6, 3)}")
        table.append({"metric": key, "label": label, "rvirt": rv, "libvirt": lvm, "ratio": ratio,
                      "n": {k: len(v) for k, v in vals.items()}})
    most = {k: max((s.get("group_tasks") or 0 for s in samples[k]), default=0) for k in stacks}
    print(f"tasks in each stack's CPU cgroup at the samples (most): rvirt {most['rvirt']}, "
          f"libvirt {most['libvirt']} (a few per VM; more are other users' VMs sharing its CPU share)")
    for p in problems:
        print("problem:", p, file=sys.stderr)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"bench": "grub", "commit": a.commit, "runs": a.runs,
                   "when": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                   "load": os.getloadavg(), "results": table, "samples": samples,
                   "problems": problems}, f, indent=1)
    print(f"samples: {a.json}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
