#!/usr/bin/env python3
"""Time from "start a worker" to its Ready, re-executed vs forked from the template.

Runs tests/fixtures/template.php as a pool master (max_jobs 1, so every request replaces its
worker) with a boot that does real work, and reads the master's debug log lines
`worker ready ... boot_ms=<ms> forked=<bool>` (measured by the supervisor from the spawn, or
the fork order, to the worker's Ready frame). The first workers are left out: in template mode
they also wait for the template's own boot.

    python3 bench/tools/spawn_time.py                 # 2000 included class files + 0 ms sleep
    BOOT_MS=200 FILES=0 python3 bench/tools/spawn_time.py
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXT = os.environ.get("RR_EXT", os.path.join(ROOT, "target/release/rr.so"))
FILES = int(os.environ.get("FILES", "2000"))
BOOT_MS = os.environ.get("BOOT_MS", "0")
REPLACEMENTS = int(os.environ.get("REPLACEMENTS", "30"))
READY = re.compile(r"worker ready.*boot_ms=([0-9.]+) forked=(true|false)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def include_dir():
    d = tempfile.mkdtemp(prefix="rr-spawn-")
    for i in range(FILES):
        with open(os.path.join(d, f"c{i}.php"), "w") as f:
            methods = "".join(
                f"public function m{j}(int $x): int {{ return $x * {j} + {i}; }}\n" for j in range(10)
            )
            f.write(f"<?php\nfinal class BenchBoot{i} {{\n{methods}}}\n")
    return d


def run(template, includes):
    port = free_port()
    options = {
        "http.address": f"127.0.0.1:{port}",
        "http.pool.num_workers": 2,
        "http.pool.max_jobs": 1,
        "http.pool.template": template,
        "logs.level": "debug",
    }
    env = dict(os.environ, RR_TEST_OPTIONS=json.dumps(options), RR_TEST_BOOT_MS=BOOT_MS,
               RR_TEST_BOOT_INCLUDE=includes)
    cmd = ["php", "-n", "-d", f"extension={EXT}", os.path.join(ROOT, "tests/fixtures/template.php")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 30
        while sum(1 for l in list(lines) if READY.search(l)) < 2:
            if time.time() > deadline or proc.poll() is not None:
                sys.exit("the pool did not start:\n" + "".join(lines))
            time.sleep(0.02)
        for _ in range(REPLACEMENTS):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30).read()
            # Let the replacement boot before the next request takes the other worker.
            wanted = 2 + _ + 1
            while sum(1 for l in list(lines) if READY.search(l)) < wanted and time.time() < deadline + 60:
                time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    times = [float(m.group(1)) for m in map(READY.search, lines) if m]
    return times[2:]


def main():
    includes = include_dir() if FILES else ""
    print(f"boot: {FILES} included class files, {BOOT_MS} ms sleep; {REPLACEMENTS} replacements each")
    for template in (False, True):
        times = run(template, includes)
        name = "forked from template" if template else "re-executed"
        q = statistics.quantiles(times, n=10)
        print(f"{name:>21}: median {statistics.median(times):7.1f} ms  p10 {q[0]:7.1f}  p90 {q[-1]:7.1f}  (n={len(times)})")


if __name__ == "__main__":
    main()
