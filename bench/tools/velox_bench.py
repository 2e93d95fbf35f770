#!/usr/bin/env python3
"""The Velox offload benchmark: one rr worker, a mock Velox whose builds take BUILD_SECONDS.

velox_bench.py RR_SO WORKER_PHP METRICS_FILE TOOLS_DIR

1. 50 concurrent build requests (distinct specs, so each is its own Velox call: the worst case
   for rr) while wrk sends plain requests to the same PHP worker; prints how long the builds
   took and wrk's p99 for the plain requests.
2. How long each hand-off held the PHP worker (from RR\\velox_build() to the next
   waitRequest()), measured inside the worker with hrtime.
3. A 1 GiB artifact streamed over loopback: throughput, and rr's RSS growth meanwhile.

The mock speaks Velox's Connect JSON protocol (shared/velox-protocol.md): POST
/api.service.v1.BuildService/Build with a JSON BuildRequest, answered {"path", "logs"}.
Appends key=value lines to METRICS_FILE; prints a log as it goes.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BUILD_SECONDS = 2.0
BUILDS = 50
BIG = 1 << 30
SMALL = 1 << 20


def log(msg):
    print(f"[velox] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Mock(BaseHTTPRequestHandler):
    calls = 0
    lock = threading.Lock()
    small = big = ""

    def log_message(self, *args):
        pass

    def do_POST(self):
        if self.path != "/api.service.v1.BuildService/Build":
            return self.reply(404, "text/plain", b"404 page not found")
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return self.reply(415, "text/plain", b"")
        spec = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Mock.lock:
            Mock.calls += 1
        tag = spec["plugins"][0]["tag"]
        if tag == "big":
            path = Mock.big
        else:
            time.sleep(BUILD_SECONDS)
            path = Mock.small
        body = json.dumps({"path": path, "logs": "built by the benchmark mock"}).encode()
        self.reply(200, "application/json", body)

    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def write_file(path, size):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)


def wait_port(port, proc, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise SystemExit(f"rr exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("rr did not listen")


def get(url, sink=False):
    with urllib.request.urlopen(url, timeout=120) as r:
        if sink:
            n = 0
            while chunk := r.read(1 << 20):
                n += len(chunk)
            return r.status, n
        return r.status, r.read()


def percentile(values, p):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    rr_so, worker, metrics_path, tools = sys.argv[1:5]
    out = open(metrics_path, "a")

    def metric(k, v):
        out.write(f"{k}={v}\n")
        out.flush()

    tmp = tempfile.mkdtemp(prefix="rr-velox-bench.")
    Mock.small = os.path.join(tmp, "rr-small")
    Mock.big = os.path.join(tmp, "rr-big")
    write_file(Mock.small, SMALL)
    write_file(Mock.big, BIG)
    # 50 connections arrive at once: the default listen backlog of 5 would stall them.
    ThreadingHTTPServer.request_queue_size = 128
    mock = ThreadingHTTPServer(("127.0.0.1", 0), Mock)
    mock.daemon_threads = True
    threading.Thread(target=mock.serve_forever, daemon=True).start()

    port = free_port()
    conf = os.path.join(tmp, "rr.yaml")
    with open(conf, "w") as f:
        f.write(f"http:\n  address: 127.0.0.1:{port}\n"
                f"velox:\n  server_url: http://127.0.0.1:{mock.server_address[1]}\n"
                f"  artifacts_dir: {tmp}\n")
    php = subprocess.Popen(["php", "-d", f"extension={rr_so}", "-d", f"rr.config={conf}", worker],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_port(port, php)
        base = f"http://127.0.0.1:{port}"
        get(base + "/stats")  # warm up and clear

        # 1. 50 concurrent builds + plain requests through wrk meanwhile.
        wrk_out = os.path.join(tmp, "wrk-plain.txt")
        wrk = subprocess.Popen(["wrk", "-t1", "-c4", f"-d{int(BUILD_SECONDS) + 2}s", "--latency",
                                base + "/plain"], stdout=open(wrk_out, "w"), stderr=subprocess.STDOUT)
        time.sleep(0.2)
        done = []
        failed = []

        def build(i):
            t0 = time.time()
            try:
                status, n = get(f"{base}/build?tag=v1.0.{i}", sink=True)
                if status != 200 or n != SMALL:
                    failed.append(f"{status}/{n}")
            except Exception as e:  # noqa: BLE001 - reported below
                failed.append(str(e))
            done.append(time.time() - t0)

        t0 = time.time()
        threads = [threading.Thread(target=build, args=(i,)) for i in range(BUILDS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - t0
        wrk.wait()
        parsed = subprocess.run([sys.executable, os.path.join(tools, "wrkparse.py"), wrk_out],
                                capture_output=True, text=True).stdout.split("\t")
        log(f"{BUILDS} concurrent builds ({BUILD_SECONDS:.0f} s each upstream): all done in {wall:.2f} s, "
            f"slowest {max(done):.2f} s, failures {len(failed)}, upstream calls {Mock.calls}")
        log(f"plain requests meanwhile (wrk -c4): {parsed[0]} req/s, p50 {parsed[1]} ms, p99 {parsed[2]} ms, "
            f"errors {parsed[4].strip()}")
        metric("velox_builds", BUILDS)
        metric("velox_builds_wall_s", f"{wall:.3f}")
        metric("velox_builds_failed", len(failed))
        metric("velox_upstream_calls", Mock.calls)
        metric("velox_plain_rps", parsed[0])
        metric("velox_plain_p99_ms", parsed[2])
        metric("velox_plain_errors", parsed[4].strip())

        # 2. How long each hand-off held the worker.
        _, body = get(base + "/stats")
        held = json.loads(body)
        log(f"worker held per velox_build(): n={len(held)} p50 {percentile(held, 50):.1f} us, "
            f"p99 {percentile(held, 99):.1f} us, max {max(held):.1f} us")
        metric("velox_hold_p50_us", f"{percentile(held, 50):.1f}")
        metric("velox_hold_p99_us", f"{percentile(held, 99):.1f}")
        metric("velox_hold_max_us", f"{max(held):.1f}")

        # 3. A 1 GiB artifact.
        time.sleep(0.5)
        baseline = vmrss_kb(php.pid)
        peak = [baseline]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], vmrss_kb(php.pid))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.time()
        status, n = get(base + "/build?tag=big", sink=True)
        elapsed = time.time() - t0
        stop.set()
        sampler.join()
        gbps = n / elapsed / 1e9
        log(f"1 GiB artifact: HTTP {status}, {n} bytes in {elapsed:.2f} s = {gbps:.2f} GB/s; "
            f"RSS {baseline} kB -> peak {peak[0]} kB (+{(peak[0] - baseline) / 1024:.1f} MiB)")
        metric("velox_big_ok", int(status == 200 and n == BIG))
        metric("velox_big_gbps", f"{gbps:.3f}")
        metric("velox_big_rss_growth_kb", peak[0] - baseline)
    finally:
        php.terminate()
        try:
            php.wait(timeout=10)
        except subprocess.TimeoutExpired:
            php.kill()
        mock.shutdown()
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


if __name__ == "__main__":
    main()
