#!/usr/bin/env python3
"""Confined vs unconfined rvirt (issue 18). Standard library only; see run.sh."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

now = time.monotonic  # CLOCK_MONOTONIC
ENV = dict(os.environ, LC_ALL="C")
LIBVIRT_SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


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


class Daemon:
    """An rvirtd on its own --root tree, confined or not."""

    def __init__(self, binary, vmm, tmp, name, args):
        self.root = os.path.join(tmp, name)
        os.makedirs(self.root)
        self.sock = os.path.join(self.root, "run/rvirt/rvirt-sock")
        self.log = open(os.path.join(self.root, "rvirtd.log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "--root", self.root, "--vmm", vmm, "--destroy-grace", "3", *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        deadline = now() + 10
        while not os.path.exists(self.sock):
            if now() > deadline or self.proc.poll() is not None:
                self.stop()
                with open(os.path.join(self.root, "rvirtd.log")) as f:
                    said = f.read().strip().splitlines()[-3:]
                raise RuntimeError(f"rvirtd {name} did not come up: {said}")
            time.sleep(0.01)

    def virsh(self, *args, check=True):
        return subprocess.run(["virsh", "-c", f"qemu+unix:///system?socket={self.sock}", *args],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              check=check, timeout=60)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_to_line(d, name, serial):
    """ms from spawning `virsh start` to ONELINE in the serial file."""
    if os.path.exists(serial):
        os.unlink(serial)
    t0 = now()
    p = subprocess.Popen(["virsh", "-c", f"qemu+unix:///system?socket={d.sock}", "start", name],
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = t0 + 30
    while True:
        try:
            with open(serial, "rb") as f:
                if b"ONELINE" in f.read():
                    break
        except FileNotFoundError:
            pass
        if now() > deadline:
            raise RuntimeError(f"{name}: no line: {p.stderr.read() if p.poll() is not None else ''}")
        time.sleep(0.0005)
    ms = (now() - t0) * 1000
    p.wait(30)
    # The guest powers off by itself; wait until the domain is shut off.
    deadline = now() + 30
    while b"shut off" not in d.virsh("domstate", name).stdout:
        if now() > deadline:
            d.virsh("destroy", name, check=False)
            break
        time.sleep(0.01)
    return ms


def run_vmm(vmm, kernel, sandbox):
    args = [vmm, "-M", "microvm", "-m", "128", "-nodefaults", "-no-reboot", "-serial", "stdio",
            "-kernel", kernel]
    if sandbox:
        args += ["-sandbox", LIBVIRT_SANDBOX]
    t0 = now()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = now() - t0
    p.returncode = status
    if status != 0:
        raise RuntimeError(f"{args}: status {status}: {p.stderr.read().decode()}")
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--oneline", required=True)
    ap.add_argument("--exits", required=True)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--exit-runs", type=int, default=10)
    ap.add_argument("--json")
    ap.add_argument("--also", action="append", default=[],
                    help="NAME=RVIRTD: another rvirtd build, confined, in the same rounds")
    a = ap.parse_args()
    vmm = os.path.join(a.bin, "rvirt-vmm")
    rvirtd = os.path.join(a.bin, "rvirtd")
    samples = {"confined": [], "unconfined": [], "exits": {}}
    also = [x.split("=", 1) for x in a.also]
    with tempfile.TemporaryDirectory(prefix="rvirt-confine-bench-") as tmp:
        daemons = {}
        try:
            # Made inside the try, so that one that fails to come up stops
            # those before it.
            daemons["confined"] = Daemon(rvirtd, vmm, tmp, "confined", [])
            daemons["unconfined"] = Daemon(rvirtd, vmm, tmp, "unconfined", ["--unconfined"])
            for name, binary in also:
                samples[name] = []
                daemons[name] = Daemon(binary, vmm, tmp, name, [])
            serials = {}
            for k, d in daemons.items():
                serials[k] = os.path.join(tmp, f"{k}.serial")
                xml = os.path.join(tmp, f"{k}.xml")
                with open(xml, "w") as f:
                    f.write(domain_xml(f"cb-{k}", a.oneline, serials[k]))
                d.virsh("define", xml)
            # One warm-up each (page cache, the loader's library list).
            for k, d in daemons.items():
                start_to_line(d, f"cb-{k}", serials[k])
            for i in range(a.runs):
                order = list(daemons) if i % 2 == 0 else list(reversed(list(daemons)))
                for k in order:
                    samples[k].append(start_to_line(daemons[k], f"cb-{k}", serials[k]))
        finally:
            for d in daemons.values():
                d.stop()
    for guest, kernel in (("oneline", a.oneline), ("exits", a.exits)):
        for sandbox in (False, True):
            key = f"{guest}-{'sandbox' if sandbox else 'plain'}"
            samples["exits"][key] = []
        run_vmm(vmm, kernel, False)
    for i in range(a.exit_runs):
        for guest, kernel in (("oneline", a.oneline), ("exits", a.exits)):
            order = (False, True) if i % 2 == 0 else (True, False)
            for sandbox in order:
                key = f"{guest}-{'sandbox' if sandbox else 'plain'}"
                samples["exits"][key].append(run_vmm(vmm, kernel, sandbox))
    med = statistics.median

    def per_exit(which, idx):
        e = med(s[idx] for s in samples["exits"][f"exits-{which}"])
        o = med(s[idx] for s in samples["exits"][f"oneline-{which}"])
        return (e - o) / 100_000 * 1e9  # ns

    def paired(key):
        # Each round's confined / unconfined (the two run back to back, so
        # they see about the same host load), then the median.
        return med(c / u for c, u in zip(samples[key], samples["unconfined"]))

    rows = [
        ("start -> guest line, via rvirtd (ms)", med(samples["confined"]), med(samples["unconfined"]), True),
        ("  paired (median of round ratios)", None, None, paired("confined")),
        ("per exit, wall (ns)", per_exit("sandbox", 0), per_exit("plain", 0), True),
        ("per exit, CPU time (ns)", per_exit("sandbox", 1), per_exit("plain", 1), False),
    ]
    for i, (name, _) in enumerate(also):
        rows.insert(2 + 2 * i, (f"  {name}: start -> line (ms)", med(samples[name]), med(samples["unconfined"]), False))
        rows.insert(3 + 2 * i, (f"  {name}: paired", None, None, paired(name)))
    print(f"{'':42} {'confined':>10} {'unconfined':>10} {'ratio':>7}  target")
    for name, c, u, scored in rows:
        if c is None:
            # A paired ratio: scored as the medians are.
            ratio, c, u, scored = scored, float("nan"), float("nan"), True
        else:
            ratio = c / u if u else float("nan")
        verdict = ("PASS" if ratio <= 1.1 else "MISS") if scored else "(info)"
        cs, us = ("", "") if c != c else (f"{c:.1f}", f"{u:.1f}")  # NaN: a paired row
        print(f"{name:42} {cs:>10} {us:>10} {ratio:7.3f}  <= 1.1 {verdict}")
    print(f"start -> line samples (ms): " + "; ".join(
        f"{k} {min(v):.1f}-{max(v):.1f}" for k, v in samples.items() if k != "exits"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(samples, f, indent=1)


if __name__ == "__main__":
    main()
