#!/usr/bin/env python3
"""Table for bench/nextcloud/run.

usage: report.py ROWS.tsv target=ratio...
ROWS.tsv: server, target, round, rps, p50_ms, p99_ms, requests, errors, unexpected_status,
          workers, rss_kb_before, rss_kb_after, private_kb_before, private_kb_after (kB summed
          over the workers; "before" is after the warm-up, "after" is after the measured run),
          cpu_s (CPU seconds of all the server's processes during the measured run).
          A row "server, target, round, failed" marks a target that could not be measured.

Each round measured php-fpm and then rr on the same target, so each round gives one ratio; the
goal is judged on the median of the rounds' ratios, and every round's ratio is printed with it.
"""
import statistics
import sys

SERVERS = ("php-fpm", "rr")
# Columns after server, target, round.
RPS, P50, P99, REQUESTS, ERRORS, WRONG, WORKERS, RSS_B, RSS_A, PRIV_B, PRIV_A, CPU = range(3, 15)


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def measured(f):
    return f is not None and len(f) > WORKERS and num(f[RPS]) is not None


def clean(f):
    return num(f[ERRORS]) == 0 and f[WRONG] in ("0", "-")


def cpu_us(f):
    if len(f) > CPU and num(f[CPU]) is not None and num(f[REQUESTS]):
        return num(f[CPU]) * 1e6 / num(f[REQUESTS])
    return None


def main():
    rows = {}
    for line in open(sys.argv[1]):
        f = line.rstrip("\n").split("\t")
        rows[(f[0], f[1], int(f[2]))] = f
    ratios = dict(a.split("=", 1) for a in sys.argv[2:])
    targets = [t for t in ratios if any(k[1] == t for k in rows)]
    rounds = sorted({k[2] for k in rows})

    print(f"{'target':<13} {'round':>5} {'server':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} {'errors':>7} {'wrong':>6} {'CPU us/req':>10}")
    for t in targets:
        for r in rounds:
            for s in SERVERS:
                f = rows.get((s, t, r))
                if f is None:
                    continue
                if not measured(f):
                    print(f"{t:<13} {r:>5} {s:<8} {'failed':>9}")
                    continue
                cpu = cpu_us(f)
                cpu = f"{cpu:>10.0f}" if cpu is not None else f"{'-':>10}"
                print(f"{t:<13} {r:>5} {s:<8} {f[RPS]:>9} {f[P50]:>8} {f[P99]:>8} {f[REQUESTS]:>9} {f[ERRORS]:>7} {f[WRONG]:>6} {cpu}")
    print()
    print("rr/fpm req/s per round and their median; 'met' needs the median at the goal and no")
    print("error or wrong status in any round; 'p99 lower' counts the rounds where rr's p99 is lower")
    print(f"{'target':<13} {'rounds':<24} {'median':>7} {'goal':>6} {'met':>4} {'p99 lower':>9} {'CPU fpm/rr':>10}")
    for t in targets:
        per_round, cpu_ratios, lower, all_clean = [], [], 0, True
        for r in rounds:
            fr, fp = rows.get(("rr", t, r)), rows.get(("php-fpm", t, r))
            if not measured(fr) or not measured(fp) or not num(fp[RPS]):
                continue
            per_round.append(num(fr[RPS]) / num(fp[RPS]))
            all_clean = all_clean and clean(fr) and clean(fp)
            lower += num(fr[P99]) < num(fp[P99])
            cr, cp = cpu_us(fr), cpu_us(fp)
            if cr and cp:
                cpu_ratios.append(cp / cr)
        if not per_round:
            print(f"{t:<13} {'-':<24}")
            continue
        median = statistics.median(per_round)
        goal = float(ratios[t])
        met = "yes" if median >= goal and all_clean else "NO"
        each = " ".join(f"{x:.1f}" for x in per_round)
        cpu = f"{statistics.median(cpu_ratios):>9.1f}x" if cpu_ratios else f"{'-':>10}"
        print(f"{t:<13} {each:<24} {median:>6.2f}x {goal:>5}x {met:>4} {f'{lower}/{len(per_round)}':>9} {cpu}"
              + ("" if all_clean else "   (errors or unexpected statuses: see above)"))
    print()
    print("CPU per request: user + system of all the server's processes during each run, php-fpm's")
    print("nginx included; 'CPU fpm/rr' is the median over the rounds of how many times more")
    print("requests rr serves per CPU second")
    print()
    print("memory per worker (kB; 'warm' after the warm-up, 'end' after the measured run, of the")
    print("last round; growth = (end - warm) summed over the workers / requests served in that run)")
    print(f"{'target':<13} {'server':<8} {'n':>2} {'RSS warm':>9} {'RSS end':>9} {'priv warm':>9} {'priv end':>9} {'growth B/req':>12}")
    last = rounds[-1] if rounds else None
    for t in targets:
        for s in SERVERS:
            f = rows.get((s, t, last))
            if not measured(f) or len(f) <= PRIV_A or not num(f[WORKERS]):
                continue
            n = int(num(f[WORKERS])) or 1
            rb, ra, pb, pa, reqs = (num(x) or 0 for x in (f[RSS_B], f[RSS_A], f[PRIV_B], f[PRIV_A], f[REQUESTS]))
            growth = (ra - rb) * 1024 / reqs if reqs else 0
            print(f"{t:<13} {s:<8} {n:>2} {rb / n:>9.0f} {ra / n:>9.0f} {pb / n:>9.0f} {pa / n:>9.0f} {growth:>12.1f}")


if __name__ == "__main__":
    main()
