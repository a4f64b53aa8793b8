#!/usr/bin/env python3
"""Record a QMP server's answers as golden data.

Usage: capture.py SOCKET OUTDIR

Connects to SOCKET (a QEMU started with -S -qmp unix:SOCKET,server=on,wait=off),
sends each case's raw bytes and stores the greeting, replies and events it got
into OUTDIR/NAME.json. Run once against qemu-system-x86_64 7.2; the Rust tests
compare rvirt's replies with these files by field names and JSON types.
"""
import json
import socket
import sys
import time

# (name, raw input, needs negotiation first)
CASES = [
    ("before-negotiation", '{"execute": "query-status", "id": 1}\n', False),
    ("unknown-before-negotiation", '{"execute": "no-such-command"}\n', False),
    ("qmp_capabilities", '{"execute": "qmp_capabilities", "id": "neg"}\n', False),
    ("qmp_capabilities-bad-enable", '{"execute": "qmp_capabilities", "arguments": {"enable": ["nope"]}}\n', False),
    ("qmp_capabilities-enable-type", '{"execute": "qmp_capabilities", "arguments": {"enable": "oob"}}\n', False),
    ("qmp_capabilities-again", '{"execute": "qmp_capabilities"}\n', True),
    ("query-version", '{"execute": "query-version", "id": 2}\n', True),
    ("query-commands", '{"execute": "query-commands"}\n', True),
    ("query-status", '{"execute": "query-status", "id": {"nested": [1, 2]}}\n', True),
    ("query-name", '{"execute": "query-name"}\n', True),
    ("query-uuid", '{"execute": "query-uuid"}\n', True),
    ("query-kvm", '{"execute": "query-kvm"}\n', True),
    ("query-cpus-fast", '{"execute": "query-cpus-fast"}\n', True),
    ("query-chardev", '{"execute": "query-chardev"}\n', True),
    ("query-block", '{"execute": "query-block"}\n', True),
    ("stop", '{"execute": "stop", "id": "s"}\n', True),
    ("cont", '{"execute": "cont", "id": "c"}\n', True),
    ("stop-cont-stop", '{"execute": "cont"}\n{"execute": "stop"}\n{"execute": "stop"}\n', True),
    ("system_reset", '{"execute": "system_reset"}\n', True),
    ("system_powerdown", '{"execute": "system_powerdown"}\n', True),
    ("hmp-info-status", '{"execute": "human-monitor-command", "arguments": {"command-line": "info status"}}\n', True),
    ("hmp-info-version", '{"execute": "human-monitor-command", "arguments": {"command-line": "info version"}}\n', True),
    ("hmp-info-cpus", '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus"}}\n', True),
    ("hmp-unknown", '{"execute": "human-monitor-command", "arguments": {"command-line": "frobnicate"}}\n', True),
    ("hmp-info-unknown", '{"execute": "human-monitor-command", "arguments": {"command-line": "info frobnicate"}}\n', True),
    ("hmp-bad-cpu-index", '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus", "cpu-index": 7}}\n', True),
    ("hmp-cpu-index-type", '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus", "cpu-index": "0"}}\n', True),
    ("missing-argument", '{"execute": "human-monitor-command", "id": 5}\n', True),
    ("wrong-type-argument", '{"execute": "human-monitor-command", "arguments": {"command-line": 42}}\n', True),
    ("unexpected-argument", '{"execute": "query-status", "arguments": {"verbose": true}}\n', True),
    ("unexpected-argument-2", '{"execute": "human-monitor-command", "arguments": {"command-line": "info status", "x": 1}}\n', True),
    ("unknown-command", '{"execute": "no-such-command", "id": 9}\n', True),
    ("not-an-object", '[1, 2, 3]\n', True),
    ("not-an-object-scalar", '42\n', True),
    ("not-an-object-string", '"query-status"\n', True),
    ("malformed-stray", '{"execute": @}\n', True),
    ("malformed-keyword", '{"execute": query}\n', True),
    ("malformed-missing-colon", '{"execute" "query-status"}\n', True),
    ("malformed-trailing-comma", '{"execute": "query-status",}\n', True),
    ("malformed-list-separator", '{"execute": "query-status", "id": [1 2]}\n', True),
    ("malformed-key-not-string", '{1: 2}\n', True),
    ("malformed-stray-close", '}\n', True),
    ("malformed-bad-escape", '{"execute": "query\\x"}\n', True),
    ("malformed-control-in-string", '{"execute": "query\tstatus"}\n', True),
    ("single-quotes", "{'execute': 'query-status'}\n", True),
    ("lacks-execute", '{"arguments": {}, "id": 3}\n', True),
    ("execute-not-string", '{"execute": 1, "id": 4}\n', True),
    ("arguments-not-object", '{"execute": "query-status", "arguments": [], "id": 6}\n', True),
    ("member-unexpected", '{"execute": "query-status", "foo": 1}\n', True),
    ("multi-line", '{\n "execute":\n  "query-kvm"\n}\n', True),
    ("two-in-one", '{"execute": "query-kvm", "id": 1}{"execute": "query-name", "id": 2}', True),
    ("malformed-extra-close", '{"execute": "query-kvm"}}\n', True),
    ("malformed-0xff", '\xff{"execute": "query-kvm"}\n', True),
    ("nesting-limit", '{"execute": "query-kvm", "id": ' + '[' * 1100 + ']' * 1100 + '}\n', True),
    ("hmp-negative-cpu-index", '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus", "cpu-index": -1}}\n', True),
    ("hmp-float-cpu-index", '{"execute": "human-monitor-command", "arguments": {"command-line": "info cpus", "cpu-index": 0.5}}\n', True),
    ("hmp-empty", '{"execute": "human-monitor-command", "arguments": {"command-line": ""}}\n', True),
    ("hmp-info-status-space", '{"execute": "human-monitor-command", "arguments": {"command-line": "  info   status  "}}\n', True),
    ("arguments-null", '{"execute": "query-status", "arguments": null}\n', True),
    ("big-integer", '{"execute": "query-status", "id": 123456789012345678901234567890}\n', True),
    ("quit", '{"execute": "quit"}\n', True),
]


def recv_all(sock, wait):
    sock.settimeout(wait)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data


def split(data):
    dec = json.JSONDecoder()
    text = data.decode()
    out, i = [], 0
    while i < len(text):
        while i < len(text) and text[i] in " \r\n\t":
            i += 1
        if i >= len(text):
            break
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def run_case(path, name, raw, negotiate):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    greeting = split(recv_all(s, 0.5))
    if negotiate:
        s.sendall(b'{"execute": "qmp_capabilities"}\n')
        recv_all(s, 0.3)
    s.sendall(raw.encode("latin-1"))
    replies = split(recv_all(s, 1.0))
    s.close()
    return {"input": raw, "negotiated": negotiate, "greeting": greeting[0],
            "output": replies}


def main():
    path, outdir = sys.argv[1], sys.argv[2]
    only = sys.argv[3:]
    for name, raw, negotiate in CASES:
        if only and name not in only:
            continue
        rec = run_case(path, name, raw, negotiate)
        with open(f"{outdir}/{name}.json", "w") as f:
            json.dump(rec, f, indent=2, sort_keys=True)
            f.write("\n")
        print(name, json.dumps(rec["output"])[:300])
        time.sleep(0.1)


if __name__ == "__main__":
    main()
