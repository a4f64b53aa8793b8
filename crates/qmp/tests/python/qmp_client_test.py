#!/usr/bin/env python3
"""Drive a QMP monitor with the real qemu.qmp client library.

Usage: qmp_client_test.py SOCKET [--record FILE] [--expect-shape FILE] [--lenient-quit]

Connects to SOCKET with qemu.qmp.QMPClient (which reads the greeting and
negotiates), runs query-status, stop and cont, waits for the RESUME event,
runs query-status again and ends with quit. The VM must start paused (-S).

Every answer is collected into a JSON summary. --record writes it to FILE;
--expect-shape compares it with a summary recorded from another server
(field names and JSON types must match; values such as versions may differ).
Run it against qemu-system-x86_64 and rvirt-vmm on the same guest. Exits 0
on success, 1 with a message otherwise.
"""
import argparse
import asyncio
import json
import sys
import traceback

from qemu.qmp import QMPClient

TIMEOUT = 10


def shape_diff(ours, theirs, at="summary"):
    """Returns a description of the first difference in shape, or None."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if sorted(ours) != sorted(theirs):
            return f"{at}: keys {sorted(ours)} != {sorted(theirs)}"
        for key in ours:
            diff = shape_diff(ours[key], theirs[key], f"{at}.{key}")
            if diff:
                return diff
        return None
    if isinstance(ours, list) and isinstance(theirs, list):
        if ours and theirs:
            return shape_diff(ours[0], theirs[0], f"{at}[0]")
        return None
    kinds = (bool, int, float, str, type(None))
    def kind(v):
        # JSON has one number type: int and float are the same shape.
        for k in kinds:
            if isinstance(v, k):
                return "number" if k in (int, float) and k is not bool else k.__name__
        return type(v).__name__
    if kind(ours) != kind(theirs):
        return f"{at}: {ours!r} is not the same type as {theirs!r}"
    return None


async def execute(qmp, *args):
    """One command, with the deadline every step has: a server that never
    answers fails the run with a traceback naming the command."""
    return await asyncio.wait_for(qmp.execute(*args), TIMEOUT)


async def run(path, lenient_quit=False):
    summary = {}
    qmp = QMPClient("rvirt-qmp-test")
    await asyncio.wait_for(qmp.connect(path), TIMEOUT)
    summary["greeting"] = json.loads(bytes(qmp.greeting._raw))
    summary["query-status-before"] = await execute(qmp, "query-status")
    with qmp.listener(("RESUME",)) as listener:
        summary["stop"] = await execute(qmp, "stop")
        summary["cont"] = await execute(qmp, "cont")
        event = await asyncio.wait_for(listener.get(), TIMEOUT)
        summary["resume-event"] = json.loads(bytes(event))
    summary["query-status-after"] = await execute(qmp, "query-status")
    if summary["query-status-after"].get("status") != "running":
        raise RuntimeError(f"not running after cont: {summary['query-status-after']}")
    try:
        summary["quit"] = await execute(qmp, "quit")
    except EOFError:
        # QEMU may close the socket as it exits before qemu.qmp has read the
        # reply to quit. Tolerated only where asked (for the reference).
        if not lenient_quit:
            raise
        summary["quit"] = {}
    try:
        await asyncio.wait_for(qmp.disconnect(), TIMEOUT)
    except EOFError:
        # The hang-up of a monitor whose process exited after answering
        # quit, seen by qemu.qmp's reader before disconnect() was called:
        # whether it comes first depends only on scheduling, for QEMU and
        # rvirt alike (neither waits for the client to hang up first), so
        # it is tolerated for both. The reply to quit above is not.
        pass
    return summary


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("socket")
    parser.add_argument("--record")
    parser.add_argument("--expect-shape")
    parser.add_argument("--lenient-quit", action="store_true")
    args = parser.parse_args()
    try:
        summary = asyncio.run(run(args.socket, args.lenient_quit))
    except Exception as e:  # report any failure of the library or server
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        traceback.print_exc()
        return 1
    print(json.dumps(summary, indent=2, sort_keys=True))
    if args.record:
        with open(args.record, "w") as f:
            json.dump(summary, f, indent=2, sort_keys=True)
            f.write("\n")
    if args.expect_shape:
        with open(args.expect_shape) as f:
            expected = json.load(f)
        diff = shape_diff(summary, expected)
        if diff:
            print(f"FAIL: answers differ from {args.expect_shape}: {diff}", file=sys.stderr)
            return 1
    print("OK", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
