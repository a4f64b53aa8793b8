"""Running a benchmark guest with its serial lines stamped (shared by the
benchmarks' bench.py files).

run_once(argv, timeout, nice=0) spawns argv with stdout on a pipe and
stamps each line with CLOCK_MONOTONIC when the chunk holding its newline
arrives (ns since just before posix_spawn); at each `PHASE <name> START`
and `PHASE <name> END` line it also snapshots the process's threads
(threads(pid): name, ns on a CPU, ns waiting on a run queue, from
/proc/PID/task/*/schedstat). Returns the lines, the snapshots, the exit
time, CPU times, the exit status, whether it was killed at the deadline
and the end of stderr."""
import os
import time

from child import Output


def threads(pid):
    """{tid: (name, ns on a CPU, ns waiting on a run queue)} from schedstat."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run, wait, _ = f.read().split()
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                name = f.read().strip()
            out[t] = (name, int(run), int(wait))
        except (OSError, ValueError):
            pass
    return out


def run_once(argv, timeout, nice=0):
    """Runs argv; returns stamped lines, wall/CPU time, exit status."""
    if nice:
        argv = ["nice", "-n", str(nice)] + argv
        argv[0] = "/usr/bin/nice"
    rfd, wfd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    errfile = f"/tmp/rvirt-bench-{os.getpid()}.err"
    errfd = os.open(errfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    actions = [
        (os.POSIX_SPAWN_DUP2, devnull, 0),
        (os.POSIX_SPAWN_DUP2, wfd, 1),
        (os.POSIX_SPAWN_DUP2, errfd, 2),
        (os.POSIX_SPAWN_CLOSE, rfd),
    ]
    t0 = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    os.close(wfd)
    os.close(devnull)
    os.close(errfd)
    lines = []  # (ns since t0, text)
    snaps = {}  # marker line -> threads() as it arrived
    partial = b""
    output = Output(pid, rfd, t0 + int(timeout * 1e9))
    try:
        for now, chunk in output:
            partial += chunk
            while b"\n" in partial:
                line, partial = partial.split(b"\n", 1)
                text = line.decode(errors="replace").rstrip("\r")
                lines.append((now - t0, text))
                if text.startswith("PHASE ") and text.endswith((" START", " END")):
                    snaps[text] = threads(pid)
        _, status, ru = os.wait4(pid, 0)
        t_exit = time.monotonic_ns()
    finally:
        os.close(rfd)
    with open(errfile, errors="replace") as f:
        err = f.read()
    os.unlink(errfile)
    return {
        "lines": lines,
        "snaps": snaps,
        "exit_ms": (t_exit - t0) / 1e6,
        "cpu_ms": (ru.ru_utime + ru.ru_stime) * 1000,
        "user_ms": ru.ru_utime * 1000,
        "sys_ms": ru.ru_stime * 1000,
        "status": os.waitstatus_to_exitcode(status),
        "killed": output.killed,
        "stderr": err[-500:],
    }
