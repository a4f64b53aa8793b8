"""One guest-driven request-rate benchmark, rvirt-vmm vs QEMU, alternately
(shared by bench/scsi and bench/ahci): each VMM runs its command line, the
guest prints `PHASE randread START`/`END` and `PHASE_STATS randread n=N
errors=E ... tsc=T`; the rate is N over the host-side time between the two
stamped lines (stamped.py). compare() prints every round, the medians,
rvirt/QEMU and the guest's TSC ratio, and returns the samples."""
import statistics
import sys

from stamped import run_once


def phase(run, n):
    """The randread phase of one run: requests/s and guest cycles, or None."""
    start = end = tsc = None
    for t, line in run["lines"]:
        w = line.split()
        if w[:3] == ["PHASE", "randread", "START"]:
            start = t
        elif w[:3] == ["PHASE", "randread", "END"]:
            end = t
        elif w[:2] == ["PHASE_STATS", "randread"]:
            f = dict(x.split("=", 1) for x in w[2:])
            if int(f["n"]) == n and int(f["errors"]) == 0:
                tsc = int(f["tsc"])
    if start is None or end is None or tsc is None:
        return None
    return {"rps": n / ((end - start) / 1e9), "tsc": tsc}


def compare(cmds, n, rounds, warmup, label):
    """cmds: {"rvirt": argv, "qemu": argv}. Runs warmup + rounds pairs, the
    first of each pair alternating; exits with the guest's last lines when
    a run does not complete its phase."""
    got = {k: [] for k in cmds}
    for r in range(warmup + rounds):
        order = list(cmds) if r % 2 == 0 else list(reversed(list(cmds)))
        for k in order:
            run = run_once(cmds[k], 300)
            p = phase(run, n)
            if p is None:
                tail = "\n".join(l for _, l in run["lines"][-8:])
                sys.exit(f"{k}: no complete phase (exit {run['status']}):\n{tail}\n{run['stderr']}")
            if r >= warmup:
                got[k].append(p)
            print(f"round {r} {k}: {p['rps']:.0f} req/s", flush=True)
    med = {k: statistics.median(x["rps"] for x in v) for k, v in got.items()}
    tsc = {k: statistics.median(x["tsc"] for x in v) for k, v in got.items()}
    print(f"{label}, median of {rounds}:")
    print(f"  rvirt-vmm {med['rvirt']:.0f} req/s, QEMU {med['qemu']:.0f} req/s, "
          f"rvirt/QEMU {med['rvirt'] / med['qemu']:.2f} "
          f"(guest TSC QEMU/rvirt {tsc['qemu'] / tsc['rvirt']:.2f})")
    return {"samples": got, "median_rps": med}
