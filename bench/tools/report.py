#!/usr/bin/env python3
"""Render bench/run's results: the throughput table and the targets.

report.py ROWS_TSV METRICS_FILE
ROWS_TSV: id  label  status  rps  p50_ms  p99_ms  total  errors  note
          (status: ok | failed | skipped; "-" for missing numbers)
METRICS_FILE: key=value lines (idle_* and upload_* values in kB).
"""
import sys

MIB = 1024  # kB per MiB


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def load_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 9:
                parts += ["-"] * (9 - len(parts))
            rid, label, status, rps, p50, p99, total, errors, note = parts[:9]
            rows.append(dict(id=rid, label=label, status=status, rps=num(rps),
                             p50=num(p50), p99=num(p99), total=num(total),
                             errors=num(errors), note=note if note != "-" else ""))
    return rows


def load_metrics(path):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                if k:
                    out[k] = v
    except FileNotFoundError:
        pass
    return out


def fmt_ms(v):
    if v is None:
        return "-"
    if v < 1:
        return f"{v * 1000:.0f}us"
    if v < 1000:
        return f"{v:.2f}ms"
    return f"{v / 1000:.2f}s"


def fmt_ratio(a, b):
    if a is None or not b:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 10 else f"{r:.1f}x"


def mib(kb):
    return "-" if kb is None else f"{kb / MIB:.1f} MiB"


def main():
    rows = load_rows(sys.argv[1])
    m = load_metrics(sys.argv[2])
    by_id = {r["id"]: r for r in rows}

    def rps(rid):
        r = by_id.get(rid)
        return r["rps"] if r and r["status"] == "ok" else None

    a_rps, d_rps, dj_rps, sn_rps = rps("a"), rps("d"), rps("d-json"), rps("s-nginx")

    head = ["row", "what", "req/s", "p50", "p99", "vs (a)", "vs (d)", "errors"]
    table = []
    for r in rows:
        if r["status"] != "ok":
            table.append([r["id"], r["label"], r["status"].upper(), "", "", "", "",
                          r["note"]])
            continue
        d_ref = {"c": dj_rps, "d-json": dj_rps, "s": sn_rps, "s-pool": sn_rps,
                 "s-nginx": sn_rps}.get(r["id"], d_rps)
        err = int(r["errors"] or 0)
        table.append([r["id"], r["label"], f"{r['rps']:,.0f}", fmt_ms(r["p50"]),
                      fmt_ms(r["p99"]), fmt_ratio(r["rps"], a_rps),
                      fmt_ratio(r["rps"], d_ref),
                      str(err) + ("  <-- non-2xx/socket errors" if err else "")])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *table)]
    align_right = {2, 3, 4, 5, 6}

    def line(cells):
        out = []
        for i, (c, w) in enumerate(zip(cells, widths)):
            c = str(c)
            out.append(c.rjust(w) if i in align_right else c.ljust(w))
        return "  ".join(out).rstrip()

    print(line(head))
    print(line(["-" * w for w in widths]))
    for t in table:
        print(line(t))
    print()
    print("vs (a): req/s divided by row a (hyper, current_thread, hello world).")
    print("vs (d): req/s divided by row d (nginx+php-fpm hello); rows c and d-json")
    print("        are divided by d-json (the same JSON work on nginx+php-fpm); the static")
    print("        rows s, s-pool and s-nginx by s-nginx (nginx serving the same file).")

    # ---- velox ----------------------------------------------------------------
    print()
    print("Velox offload (one PHP worker, mock Velox, 2 s builds)")
    if "velox_error" in m:
        print(f"  NOT RUN: {m['velox_error']}")
    elif "velox_builds" in m:
        print(f"  {m['velox_builds']} concurrent builds (distinct specs): all done in {m['velox_builds_wall_s']} s, "
              f"{m['velox_builds_failed']} failed, {m['velox_upstream_calls']} upstream calls")
        print(f"  plain requests to the same worker meanwhile: {num(m['velox_plain_rps']):,.0f} req/s, "
              f"p99 {m['velox_plain_p99_ms']} ms, errors {m['velox_plain_errors']}")
        print(f"  worker held per velox_build() (call -> next waitRequest): p50 {m['velox_hold_p50_us']} us, "
              f"p99 {m['velox_hold_p99_us']} us, max {m['velox_hold_max_us']} us")
        if "velox_big_gbps" in m:
            print(f"  1 GiB artifact over loopback: {m['velox_big_gbps']} GB/s, "
                  f"RSS growth {mib(num(m['velox_big_rss_growth_kb']))}")
    else:
        print("  not selected")

    # ---- memory ---------------------------------------------------------------
    print()
    print("Memory")
    if "idle_rr_before_kb" in m or "idle_rr_error" in m or "idle_a_before_kb" in m:
        for who, name in (("rr", "rr hello (b)"), ("a", "hyper baseline (a), reference")):
            if f"idle_{who}_error" in m:
                print(f"  idle keep-alive conns, {name}: NOT RUN: {m[f'idle_{who}_error']}")
                continue
            if f"idle_{who}_before_kb" not in m:
                continue
            b = num(m[f"idle_{who}_before_kb"])
            a = num(m.get(f"idle_{who}_after_kb"))
            c = num(m.get(f"idle_{who}_closed_kb"))
            n = m.get(f"idle_{who}_conns", "?")
            fail = m.get(f"idle_{who}_failed", "0")
            print(f"  {n} idle keep-alive conns, {name}: RSS before {mib(b)}, "
                  f"with conns {mib(a)}, delta {mib(a - b if a is not None and b is not None else None)}"
                  + (f", after closing {mib(c)}" if c is not None else "")
                  + (f"  ({fail} connections failed)" if fail not in ("0", "") else ""))
    else:
        print("  idle keep-alive conns: not selected")
    if "upload_error" in m:
        print(f"  100 MiB multipart upload to rr: NOT RUN: {m['upload_error']}")
    elif "upload_baseline_kb" in m:
        b, p, h = (num(m.get(k)) for k in ("upload_baseline_kb", "upload_peak_kb", "upload_hwm_kb"))
        print(f"  100 MiB multipart upload to rr: RSS baseline {mib(b)}, sampled peak {mib(p)} "
              f"({m.get('upload_samples', '?')} samples / 10 ms), VmHWM {mib(h)}, "
              f"growth {mib(max(p, h) - b)} (max of peak and VmHWM, minus baseline)")
        print(f"    response: HTTP {m.get('upload_status', '?')} body {m.get('upload_body', '?')!r} "
              f"in {m.get('upload_time', '?')} s")
    else:
        print("  100 MiB upload: not selected")

    # ---- targets --------------------------------------------------------------
    print()
    print("Targets")
    checks = []
    b_rps = rps("b")

    def verdict(ok):
        return "PASS" if ok else "MISS"

    def ratio_target(name, num, den, at_least, percent):
        """num / den >= at_least, shown as a percentage or as a multiple."""
        if num and den:
            r = num / den
            shown = f"{r * 100:.1f}%" if percent else fmt_ratio(num, den)
            checks.append((name, shown, verdict(r >= at_least)))
        else:
            checks.append((name, "n/a", "NOT MEASURED"))

    ratio_target("(b) >= 70% of (a)", b_rps, a_rps, 0.70, percent=True)
    ratio_target("(g) handle() >= 70% of (b)", rps("g"), b_rps, 0.70, percent=True)
    ratio_target("(b) >= 15x (d)", b_rps, d_rps, 15, percent=False)
    if "idle_rr_after_kb" in m:
        v = num(m["idle_rr_after_kb"])
        checks.append((f"rr RSS with {m.get('idle_rr_conns', '?')} idle conns <= 64 MiB", mib(v),
                       verdict(v <= 64 * MIB and m.get("idle_rr_failed", "0") == "0")))
    else:
        checks.append(("rr RSS with 1000 idle conns <= 64 MiB", "n/a", "NOT MEASURED"))
    if "upload_baseline_kb" in m and m.get("upload_ok") == "1":
        b, p, h = (num(m.get(k)) for k in ("upload_baseline_kb", "upload_peak_kb", "upload_hwm_kb"))
        g = max(p, h) - b
        checks.append(("rr RSS growth during 100 MiB upload <= 16 MiB", mib(g), verdict(g <= 16 * MIB)))
    elif "upload_baseline_kb" in m:
        checks.append(("rr RSS growth during 100 MiB upload <= 16 MiB", "upload failed", "MISS"))
    else:
        checks.append(("rr RSS growth during 100 MiB upload <= 16 MiB", "n/a", "NOT MEASURED"))
    ratio_target("(f) PSR-7 >= 50% of (b)", rps("f"), b_rps, 0.50, percent=True)
    if "velox_builds" in m:
        wall, p99 = num(m["velox_builds_wall_s"]), num(m["velox_plain_p99_ms"])
        ok = m["velox_builds_failed"] == "0"
        checks.append((f"velox: {m['velox_builds']} builds of 2 s done in ~2 s", f"{wall:.2f} s",
                       verdict(ok and wall < 3.0)))
        checks.append(("velox: plain p99 < 5 ms meanwhile", f"{p99:.2f} ms", verdict(p99 < 5)))
        hold = num(m["velox_hold_p99_us"])
        checks.append(("velox: worker held p99 < 1 ms", f"{hold:.0f} us", verdict(hold < 1000)))
        if "velox_big_gbps" in m:
            g = num(m["velox_big_gbps"])
            checks.append(("velox: 1 GiB artifact >= 1 GB/s", f"{g:.2f} GB/s",
                           verdict(g >= 1 and m.get("velox_big_ok") == "1")))
            grow = num(m["velox_big_rss_growth_kb"])
            checks.append(("velox: RSS growth streaming it <= 32 MiB", mib(grow), verdict(grow <= 32 * MIB)))
    ratio_target("pool: 2 workers >= 1.7x 1 worker (1 ms CPU)", rps("p-cpu2"), rps("p-cpu1"), 1.7,
                 percent=False)
    ratio_target("pool hello >= 50% of (a)", rps("p-hello"), a_rps, 0.50, percent=True)
    hb, hp = by_id.get("hop-b"), by_id.get("hop-p")
    if hb and hp and hb["status"] == hp["status"] == "ok":
        checks.append(("master-worker hop, added p50 / p99 (1 conn)",
                       f"{fmt_ms(hp['p50'] - hb['p50'])} / {fmt_ms(hp['p99'] - hb['p99'])}", "info"))
    else:
        checks.append(("master-worker hop, added p50 / p99 (1 conn)", "n/a", "NOT MEASURED"))
    e_rps = rps("e")
    if e_rps:
        checks.append(("(b) vs (e) Swoole SWOOLE_BASE, 1 worker",
                       fmt_ratio(b_rps, e_rps) if b_rps else "n/a", "info"))
    if rps("e-pool"):
        ratio_target("pool hello >= 1.0x Swoole BASE, same workers", rps("p-hello"), rps("e-pool"),
                     1.0, percent=False)
    w = max(len(c[0]) for c in checks)
    w2 = max(len(c[1]) for c in checks)
    for name, value, v in checks:
        print(f"  {name.ljust(w)}  {value.rjust(w2)}  {v}")


if __name__ == "__main__":
    main()
