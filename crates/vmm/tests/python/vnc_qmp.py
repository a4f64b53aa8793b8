#!/usr/bin/env python3
"""The VNC side of a VMM's QMP monitor, driven the same way against QEMU
7.2 and rvirt-vmm by crates/vmm/tests/vnc.rs, which compares the two
transcripts.

usage: vnc_qmp.py QMP_SOCKET VNC_PORT|none

The VMM runs with -vnc 127.0.0.1:DISPLAY,password=on, or with -vnc none
(a shorter session: clients by descriptor only). Prints one JSON
object: the replies in order, the VNC bytes the clients saw, and the
events (timestamps dropped; the listening port and the clients' ports
replaced by names, since they differ between the two runs).
"""

import array
import faulthandler
import json
import socket
import struct
import sys
import time

faulthandler.dump_traceback_later(50, exit=True)

qmp_path = sys.argv[1]
vnc_port = None if sys.argv[2] == "none" else int(sys.argv[2])
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
for _ in range(400):
    try:
        s.connect(qmp_path)
        break
    except OSError:
        time.sleep(0.05)
f = s.makefile("rb")
events = []
replies = []
ports = {str(vnc_port): "VNC_PORT"}


def norm(v):
    """The listening port and each client's port by name."""
    if isinstance(v, dict):
        out = {k: norm(x) for k, x in v.items()}
        svc = v.get("service")
        if v.get("family") in ("ipv4", "ipv6") and isinstance(svc, str):
            out["service"] = ports.setdefault(svc, f"CLIENT_PORT_{len(ports)}")
        return out
    if isinstance(v, list):
        return [norm(x) for x in v]
    return v


def read_reply():
    while True:
        msg = json.loads(f.readline())
        if "event" in msg:
            events.append({"event": msg["event"], "data": norm(msg.get("data"))})
            continue
        return msg


def cmd(name, args=None, fds=None):
    c = {"execute": name}
    if args is not None:
        c["arguments"] = args
    data = json.dumps(c).encode()
    if fds:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.sendall(data)
    r = read_reply()
    replies.append({"command": c, "reply": norm(r)})
    return r


def recv_exact(sock, n):
    b = b""
    while len(b) < n:
        chunk = sock.recv(n - len(b))
        if not chunk:
            break
        b += chunk
    return b


def settle(count):
    """Waits until `count` events have arrived (they follow the VNC traffic
    asynchronously)."""
    deadline = time.time() + 10
    s.settimeout(0.1)
    while len(events) < count and time.time() < deadline:
        try:
            line = f.readline()
        except (socket.timeout, TimeoutError):
            continue
        msg = json.loads(line)
        if "event" in msg:
            events.append({"event": msg["event"], "data": norm(msg.get("data"))})
    s.settimeout(20)


vnc = []
greeting = json.loads(f.readline())
cmd("qmp_capabilities")
cmd("query-vnc")
if vnc_port is None:
    # No listener: no events, query-vnc disabled, no password auth.
    cmd("set_password", {"protocol": "vnc", "password": "abc"})
    cmd("expire_password", {"protocol": "vnc", "time": "now"})
    a, b = socket.socketpair()
    cmd("getfd", {"fdname": "c1"}, [b.fileno()])
    cmd("add_client", {"protocol": "vnc", "fdname": "c1"})
    a.settimeout(10)
    vnc.append(["fd banner", recv_exact(a, 12).decode()])
    a.sendall(b"RFB 003.008\n")
    vnc.append(["fd security types", list(recv_exact(a, 2))])
    cmd("query-vnc")
    a.close()
    cmd("quit")
    for line in f:
        msg = json.loads(line)
        if "event" in msg:
            events.append({"event": msg["event"], "data": norm(msg.get("data"))})
    print(json.dumps({"replies": replies, "vnc": vnc, "events": events}, indent=1, sort_keys=True))
    sys.exit(0)
cmd("set_password", {"protocol": "vnc", "password": "abc", "connected": "fail"})
cmd("set_password", {"protocol": "vnc", "password": "abc", "display": "nope"})
cmd("set_password", {"protocol": "spice", "password": "abc"})
cmd("set_password", {"protocol": "foo", "password": "abc"})
cmd("set_password", {"protocol": "vnc"})
cmd("expire_password", {"protocol": "vnc", "time": "+60"})
cmd("expire_password", {"protocol": "vnc", "time": "never"})
cmd("getfd", {"fdname": "c1"})
cmd("closefd", {"fdname": "zz"})
a, b = socket.socketpair()
cmd("getfd", {"fdname": "c1"}, [b.fileno()])
cmd("add_client", {"protocol": "vnc", "fdname": "nope"})
cmd("add_client", {"protocol": "bogus", "fdname": "c1"})
cmd("getfd", {"fdname": "c1"}, [b.fileno()])
cmd("add_client", {"protocol": "vnc", "fdname": "c1", "skipauth": True})
# The client passed by descriptor skips authentication.
a.settimeout(10)
vnc.append(["fd banner", recv_exact(a, 12).decode()])
a.sendall(b"RFB 003.008\n")
vnc.append(["fd security types", list(recv_exact(a, 2))])
a.sendall(b"\x01")
vnc.append(["fd security result", list(recv_exact(a, 4))])
a.sendall(b"\x01")
init = recv_exact(a, 24)
vnc.append(["fd size and format", list(init[:20])])
settle(2)
cmd("query-vnc")
a.close()
settle(3)
cmd("query-vnc")
# A TCP client with a wrong password.
cmd("set_password", {"protocol": "vnc", "password": "secret"})
c = socket.create_connection(("127.0.0.1", vnc_port), timeout=10)
recv_exact(c, 12)
c.sendall(b"RFB 003.008\n")
vnc.append(["tcp security types", list(recv_exact(c, 2))])
c.sendall(b"\x02")
recv_exact(c, 16)
c.sendall(b"\0" * 16)
head = recv_exact(c, 8)
reason = recv_exact(c, struct.unpack("!I", head[4:8])[0])
vnc.append(["tcp wrong password", list(head[:4]), reason.decode("latin-1")])
c.close()
settle(5)
# Expired: even an unset answer fails; "now" is in the past.
cmd("expire_password", {"protocol": "vnc", "time": "now"})
cmd("quit")
try:
    while True:
        line = f.readline()
        if not line:
            break
        msg = json.loads(line)
        if "event" in msg:
            events.append({"event": msg["event"], "data": norm(msg.get("data"))})
except (OSError, ValueError):
    pass
print(json.dumps({"replies": replies, "vnc": vnc, "events": events}, indent=1, sort_keys=True))
