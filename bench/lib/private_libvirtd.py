"""A libvirtd 9.0 (and virtlogd) of the benchmark's own, as on a fresh
machine, shared by bench/rvirtd and bench/density. Standard library only.

It runs in a private mount namespace (`unshare -m`) with empty /run,
/var/lib/libvirt and /var/log/libvirt and copies of /etc/libvirt and
/var/cache/libvirt (the QEMU capabilities cache, so it does not re-probe
if the host has one) bind-mounted from the run's directory; clients reach
it through DIR/run/libvirt/libvirt-sock. Its copy of qemu.conf runs QEMU
as root: libvirt's default `libvirt-qemu` user cannot open /dev/kvm on a
machine where only root may (every start would fail and libvirtd would
re-probe QEMU for minutes); the host's own configuration is not touched.
Every process it starts stays inside the namespace; `stop` ends them all.
"""
import os
import shutil
import signal
import socket
import subprocess
import time

BINDS = {"run": "/run", "lib": "/var/lib/libvirt", "log": "/var/log/libvirt",
         "cache": "/var/cache/libvirt", "etc": "/etc/libvirt"}


def _accepts(path):
    """Whether a connection to the Unix socket at `path` is accepted: its
    file appears at bind, a moment before listen, and a client connecting
    in between is refused. (Asked by connecting: libvirtd binds the path
    inside its mount namespace, under another name in /proc/net/unix.)"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False


def _wait_socket(path, timeout, proc):
    deadline = time.monotonic() + timeout
    while not _accepts(path):
        if proc.poll() is not None:
            raise RuntimeError(f"the private libvirtd exited ({proc.returncode}); see its log")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the private libvirtd made no socket in {timeout} s")
        time.sleep(0.02)


class PrivateLibvirtd:
    def __init__(self, d, extra_qemu_conf=""):
        self.dir = d
        for sub, real in BINDS.items():
            if sub in ("etc", "cache") and os.path.isdir(real):
                shutil.copytree(real, os.path.join(d, sub), symlinks=True)
            else:
                os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, "etc/qemu.conf"), "a") as f:
            f.write('\n# bench: QEMU as root (see bench/lib/private_libvirtd.py)\n'
                    'user = "root"\ngroup = "root"\n' + extra_qemu_conf)
        script = " && ".join([f"mount --bind {os.path.join(d, sub)} {real}" for sub, real in BINDS.items()]
                             + ["virtlogd -d", "exec tini -s -- libvirtd"])
        self.log = os.path.join(d, "libvirtd.log")
        out = open(self.log, "w")
        self.proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                     start_new_session=True)
        self.sock = os.path.join(d, "run/libvirt/libvirt-sock")
        self.uri = f"qemu+unix:///system?socket={self.sock}"
        try:
            _wait_socket(self.sock, 120, self.proc)
            deadline = time.monotonic() + 10
            while not os.path.exists(os.path.join(d, "run/libvirtd.pid")) and time.monotonic() < deadline:
                time.sleep(0.02)
            with open(os.path.join(d, "run/libvirtd.pid")) as f:
                self.pid = int(f.read().strip())
        except Exception:
            self.stop()
            raise

    def stop(self):
        """libvirtd (through tini), then whatever QEMU and virtlogd of its
        namespace are left."""
        if self.proc.poll() is None:
            self.proc.terminate()  # tini passes it on to libvirtd
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        run = os.path.join(self.dir, "run")
        qemu_dir = os.path.join(run, "libvirt/qemu")
        pids = [os.path.join(qemu_dir, f) for f in (os.listdir(qemu_dir) if os.path.isdir(qemu_dir) else [])
                if f.endswith(".pid")]
        for path, what in [(p, b"qemu") for p in pids] + [(os.path.join(run, "virtlogd.pid"), b"virtlogd")]:
            try:
                with open(path) as f:
                    pid = int(f.read().strip())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if what in f.read():
                        os.kill(pid, signal.SIGKILL if what == b"qemu" else signal.SIGTERM)
            except (OSError, ValueError):
                pass
