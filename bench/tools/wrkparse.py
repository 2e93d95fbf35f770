#!/usr/bin/env python3
"""Parse `wrk --latency` output (file or stdin) into one tab-separated line:
requests_per_sec  p50_ms  p99_ms  total_requests  errors
errors = non-2xx/3xx responses + socket errors (connect, read, write, timeout).
Missing values print as "-".
"""
import re
import sys

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse(out):
    rps = p50 = p99 = total = None
    errors = 0
    in_dist = False
    for line in out.splitlines():
        s = line.strip()
        if s.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist:
            m = re.match(r"(\d+)%\s+(\S+)", s)
            if m:
                if m.group(1) == "50":
                    p50 = to_ms(m.group(2))
                elif m.group(1) == "99":
                    p99 = to_ms(m.group(2))
                continue
            in_dist = False
        m = re.match(r"(\d+) requests in", s)
        if m:
            total = int(m.group(1))
        m = re.match(r"Requests/sec:\s+([\d.]+)", s)
        if m:
            rps = float(m.group(1))
        m = re.match(r"Non-2xx or 3xx responses:\s+(\d+)", s)
        if m:
            errors += int(m.group(1))
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            errors += sum(int(x) for x in m.groups())
    return rps, p50, p99, total, errors


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


if __name__ == "__main__":
    data = open(sys.argv[1]).read() if len(sys.argv) > 1 else sys.stdin.read()
    rps, p50, p99, total, errors = parse(data)
    print("\t".join([fmt(rps, ".2f"), fmt(p50, ".3f"), fmt(p99, ".3f"),
                     fmt(total, "d"), str(errors)]))
