#!/usr/bin/env python3
"""Sample VmRSS of PID every --interval seconds until SIGTERM/SIGINT or
--max seconds, then print "baseline_kb peak_kb hwm_kb samples".

baseline is the first sample; peak the largest sample; hwm is VmHWM read at
the end (the kernel's own peak, covering anything between samples, but since
process start).
"""
import argparse
import signal
import sys
import time


def status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("pid", type=int)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--max", type=float, default=300.0)
    a = p.parse_args()
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    baseline = peak = None
    n = 0
    hwm = 0
    end = time.monotonic() + a.max
    print("sampling", flush=True)  # tells the caller sampling has begun
    while not stop["now"] and time.monotonic() < end:
        try:
            st = status(a.pid)
        except (FileNotFoundError, ProcessLookupError):
            break
        rss = st.get("VmRSS", 0)
        hwm = st.get("VmHWM", hwm)
        if baseline is None:
            baseline = rss
        peak = rss if peak is None else max(peak, rss)
        n += 1
        time.sleep(a.interval)
    try:
        hwm = status(a.pid).get("VmHWM", hwm)
    except (FileNotFoundError, ProcessLookupError):
        pass
    print(f"{baseline or 0} {peak or 0} {hwm} {n}", flush=True)
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
