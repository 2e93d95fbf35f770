#!/usr/bin/env python3
"""CPU time (user + system) that process trees use while it runs.

usage: tree_cpu.py PID...    (stops on SIGTERM or SIGINT, then prints seconds, e.g. 4.210)

Every 100 ms it reads /proc/<pid>/stat of each PID and its descendants. A process counts from
its first reading (0 if it was born after the first sample) to its last, so a worker that is
replaced during the run counts for its part of the run only (the cumulative times a parent
collects from reaped children would count the whole life of the worker).
"""
import os
import signal
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def descendants(roots):
    seen, stack = [], list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.append(pid)
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    stack.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return seen


def ticks(pid):
    """(start time, utime + stime) in clock ticks, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]), int(fields[11]) + int(fields[12])


def main():
    roots = [int(p) for p in sys.argv[1:]]
    if not roots:
        sys.exit("usage: tree_cpu.py PID...")
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    first, last = {}, {}
    initial = True
    while True:
        for pid in descendants(roots):
            t = ticks(pid)
            if t is None:
                continue
            key = (pid, t[0])  # a reused pid is another process
            first.setdefault(key, t[1] if initial else 0)
            last[key] = t[1]
        initial = False
        if stop:
            break
        time.sleep(0.1)
    print(f"{sum(last[k] - first[k] for k in last) / HZ:.3f}")


if __name__ == "__main__":
    main()
