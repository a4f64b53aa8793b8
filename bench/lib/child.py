"""Reading a benchmarked child's output with a deadline, shared by the
benchmarks that time a VMM's lines (bench/firmware, pci, virtio, vmm).
Standard library only."""
import os
import select
import signal
import time


class Output:
    """What child `pid` writes to the pipe `rfd`, as it arrives: iterate
    for (monotonic ns when read, bytes) until end of file (the child, the
    pipe's only writer, has exited). Past `deadline_ns` (monotonic) the
    child is SIGKILLed and the iteration ends with `killed` set; the
    caller still reaps it."""

    def __init__(self, pid, rfd, deadline_ns):
        self.pid, self.rfd, self.deadline = pid, rfd, deadline_ns
        self.killed = False

    def __iter__(self):
        while True:
            left = (self.deadline - time.monotonic_ns()) / 1e9
            if left <= 0:
                os.kill(self.pid, signal.SIGKILL)
                self.killed = True
                return
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                continue
            chunk = os.read(self.rfd, 65536)
            now = time.monotonic_ns()
            if not chunk:
                return
            yield now, chunk
