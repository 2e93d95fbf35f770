#!/usr/bin/env python3
"""Table for bench/nextcloud/run.

usage: report.py ROWS.tsv target=ratio...
ROWS.tsv: server, target, rps, p50_ms, p99_ms, requests, errors, unexpected_status, workers,
          rss_kb_before, rss_kb_after, private_kb_before, private_kb_after (kB summed over the
          workers; "before" is after the warm-up, "after" is after the measured run),
          cpu_s (CPU seconds of all the server's processes during the measured run).
"""
import sys


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def main():
    rows = {}
    for line in open(sys.argv[1]):
        f = line.rstrip("\n").split("\t")
        rows[(f[0], f[1])] = f
    ratios = dict(a.split("=", 1) for a in sys.argv[2:])
    targets = [t for t in ratios if ("rr", t) in rows or ("php-fpm", t) in rows]

    print(f"{'target':<13} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7} {'wrong':>6}")
    for t in targets:
        for s in ("php-fpm", "rr"):
            f = rows.get((s, t))
            if f is None or len(f) < 9:
                print(f"{t:<13} {s:<8} {'failed':>9}")
                continue
            print(f"{t:<13} {s:<8} {f[2]:>9} {f[3]:>8} {f[4]:>8} {f[5]:>9} {f[6]:>7} {f[7]:>6}")
    print()
    print(f"{'target':<13} {'rr/fpm req/s':>12} {'goal':>6} {'met':>4} {'p99 fpm':>8} {'p99 rr':>8} {'p99 lower':>9}")
    for t in targets:
        r, p = rows.get(("rr", t)), rows.get(("php-fpm", t))
        if not r or not p or len(r) < 9 or len(p) < 9 or not num(r[2]) or not num(p[2]):
            print(f"{t:<13} {'-':>12}")
            continue
        ratio = num(r[2]) / num(p[2])
        goal = float(ratios[t])
        clean = all(num(x[6]) == 0 and (x[7] in ("0", "-")) for x in (r, p))
        met = "yes" if ratio >= goal and clean else "NO"
        lower = "yes" if num(r[4]) < num(p[4]) else "NO"
        print(f"{t:<13} {ratio:>11.1f}x {goal:>5}x {met:>4} {p[4]:>8} {r[4]:>8} {lower:>9}"
              + ("" if clean else "   (errors or unexpected statuses: see above)"))
    print()
    print("server CPU per request (us: user + system of all its processes during the run, php-fpm's")
    print("nginx included; 'fpm/rr' is how many times more requests rr serves per CPU second)")
    print(f"{'target':<13} {'php-fpm':>9} {'rr':>9} {'fpm/rr':>7}")
    for t in targets:
        r, p = rows.get(("rr", t)), rows.get(("php-fpm", t))
        per = {}
        for s, f in (("php-fpm", p), ("rr", r)):
            if f and len(f) >= 14 and num(f[13]) is not None and num(f[5]):
                per[s] = num(f[13]) * 1e6 / num(f[5])
        cells = [f"{per[s]:>9.0f}" if s in per else f"{'-':>9}" for s in ("php-fpm", "rr")]
        ratio = f"{per['php-fpm'] / per['rr']:>6.1f}x" if len(per) == 2 and per["rr"] else f"{'-':>7}"
        print(f"{t:<13} {cells[0]} {cells[1]} {ratio}")
    print()
    print("memory per worker (kB; 'warm' after the warm-up, 'end' after the measured run;")
    print("growth = (end - warm) summed over the workers / requests served in the run)")
    print(f"{'target':<13} {'server':<8} {'n':>2} {'RSS warm':>9} {'RSS end':>9} {'priv warm':>9} {'priv end':>9} {'growth B/req':>12}")
    for t in targets:
        for s in ("php-fpm", "rr"):
            f = rows.get((s, t))
            if not f or len(f) < 13 or not num(f[8]):
                continue
            n = int(num(f[8])) or 1
            rb, ra, pb, pa, reqs = (num(x) or 0 for x in (f[9], f[10], f[11], f[12], f[5]))
            growth = (ra - rb) * 1024 / reqs if reqs else 0
            print(f"{t:<13} {s:<8} {n:>2} {rb / n:>9.0f} {ra / n:>9.0f} {pb / n:>9.0f} {pa / n:>9.0f} {growth:>12.1f}")


if __name__ == "__main__":
    main()
