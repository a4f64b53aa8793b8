"""rvirtd's storage driver beside libvirtd's in one run (see run.sh)."""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

import libvirt

now = time.monotonic


def log(msg):
    print(msg, flush=True)


def wait_socket(path, timeout, what):
    deadline = now() + timeout
    while not os.path.exists(path):
        if now() > deadline:
            raise RuntimeError(f"{what}: no socket {path} after {timeout} s")
        time.sleep(0.02)


def start_private_libvirtd(d):
    """libvirtd (and virtlogd) of the run's own in a private mount
    namespace; its qemu.conf runs QEMU as root. Returns the process to
    SIGTERM at the end."""
    binds = {"run": "/run", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
             "cache": "/var/cache/libvirt", "etc": "/etc/libvirt"}
    for sub, real in binds.items():
        if sub in ("etc", "cache") and os.path.isdir(real):
            shutil.copytree(real, os.path.join(d, sub), symlinks=True)
        else:
            os.makedirs(os.path.join(d, sub), exist_ok=True)
    conf = os.path.join(d, "etc/qemu.conf")
    with open(conf, "a") as f:
        f.write('\nuser = "root"\ngroup = "root"\n')
    script = " && ".join([f"mount --bind {os.path.join(d, sub)} {real}" for sub, real in binds.items()]
                         + ["virtlogd -d", "exec tini -s -- libvirtd"])
    out = open(os.path.join(d, "libvirtd.log"), "w")
    p = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    wait_socket(os.path.join(d, "run/libvirt/libvirt-sock"), 60, "private libvirtd")
    return p


def vol_xml(name, fmt):
    alloc = "<allocation>0</allocation>" if fmt == "raw" else ""
    return (f"<volume><name>{name}</name><capacity unit='G'>1</capacity>{alloc}"
            f"<target><format type='{fmt}'/></target></volume>")


def bench(label, uri, pool_dir, n, runs):
    c = libvirt.open(uri)
    os.makedirs(pool_dir, exist_ok=True)
    pool = c.storagePoolDefineXML(
        f"<pool type='dir'><name>bench</name><target><path>{pool_dir}</path></target></pool>", 0)
    pool.create(0)
    res = {}
    try:
        for fmt in ("qcow2", "raw"):
            t0 = now()
            for i in range(n):
                pool.createXML(vol_xml(f"{fmt}{i}.img", fmt), 0)
            dt = now() - t0
            res[f"create_{fmt}_ms_per_vol"] = dt * 1000 / n
            log(f"{label}: vol-create-as {fmt}: {n} in {dt:.2f} s ({dt * 1000 / n:.2f} ms each)")
        times = []
        for _ in range(runs):
            t0 = now()
            pool.refresh(0)
            times.append((now() - t0) * 1000)
        res["refresh_ms"] = statistics.median(times)
        log(f"{label}: pool-refresh over {2 * n} volumes: median {res['refresh_ms']:.1f} ms "
            f"(runs {', '.join(f'{t:.1f}' for t in times)})")
        assert pool.numOfVolumes() == 2 * n, pool.numOfVolumes()
    finally:
        for v in pool.listAllVolumes(0):
            v.delete(0)
        pool.destroy()
        pool.undefine()
        c.close()
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rvirtd", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--json")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rvirt-storage-bench-")
    procs = []
    try:
        rvroot = os.path.join(work, "rv")
        rvlog = open(os.path.join(work, "rvirtd.log"), "w")
        procs.append(subprocess.Popen([a.rvirtd, "--root", rvroot], stdout=rvlog, stderr=rvlog,
                                      start_new_session=True))
        wait_socket(os.path.join(rvroot, "run/rvirt/rvirt-sock"), 30, "rvirtd")
        lvdir = os.path.join(work, "lv")
        procs.append(start_private_libvirtd(lvdir))
        rv = bench("rvirtd", f"qemu+unix:///system?socket={rvroot}/run/rvirt/rvirt-sock",
                   os.path.join(work, "rvpool"), a.n, a.runs)
        lv = bench("libvirtd", f"qemu+unix:///system?socket={lvdir}/run/libvirt/libvirt-sock",
                   os.path.join(work, "lvpool"), a.n, a.runs)
        log(f"\ncommit {a.commit}, {a.n} volumes of each format, load {os.getloadavg()[0]:.1f}")
        log(f"{'case':<32} {'rvirtd':>10} {'libvirtd':>10} {'libvirt/rvirt':>14}")
        for k, what in [("create_qcow2_ms_per_vol", "vol-create-as qcow2 (ms/vol)"),
                        ("create_raw_ms_per_vol", "vol-create-as raw (ms/vol)"),
                        ("refresh_ms", f"pool-refresh {2 * a.n} vols (ms)")]:
            log(f"{what:<32} {rv[k]:>10.2f} {lv[k]:>10.2f} {lv[k] / rv[k]:>13.1f}x")
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"commit": a.commit, "n": a.n, "rvirtd": rv, "libvirtd": lv}, f, indent=1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
