#!/usr/bin/env python3
"""Open N keep-alive connections to HOST:PORT, send one GET on each, read the
response, then keep every socket open and idle.

Prints "READY <ok> <failed>" on stdout once all requests were answered (or
failed), then holds the sockets until SIGTERM/SIGINT or until --hold seconds
pass (a bounded run: it always stops by itself).

Needs a file-descriptor limit above N (ulimit -n 4096 for 1,000).
"""
import argparse
import selectors
import signal
import socket
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("-n", "--conns", type=int, default=1000)
    p.add_argument("--path", default="/")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds allowed for connecting and getting all responses")
    p.add_argument("--hold", type=float, default=120.0,
                   help="max seconds to keep the idle connections open")
    return p.parse_args()


def response_complete(buf: bytes) -> bool:
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = buf[:head_end].decode("latin-1").lower()
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            length = int(value.strip())
        elif name.strip() == "transfer-encoding" and "chunked" in value:
            return buf.endswith(b"0\r\n\r\n")
    return len(buf) - (head_end + 4) >= length


def main():
    a = parse_args()
    req = (f"GET {a.path} HTTP/1.1\r\nHost: {a.host}:{a.port}\r\n"
           f"Connection: keep-alive\r\nUser-Agent: rr-bench-idle\r\n\r\n").encode()
    stop = {"now": False}

    def on_signal(*_):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sel = selectors.DefaultSelector()
    socks, bufs = [], {}
    failed = 0
    deadline = time.monotonic() + a.timeout

    for _ in range(a.conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(5)
        try:
            s.connect((a.host, a.port))
            s.sendall(req)
        except OSError as e:
            failed += 1
            print(f"connect/send failed: {e}", file=sys.stderr)
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
        bufs[s] = b""
        sel.register(s, selectors.EVENT_READ)

    pending = len(socks)
    while pending and not stop["now"] and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:  # closed by the server: not an idle keep-alive conn
                failed += 1
                pending -= 1
                sel.unregister(s)
                socks.remove(s)
                s.close()
                continue
            bufs[s] += chunk
            if response_complete(bufs[s]):
                pending -= 1
                sel.unregister(s)
    failed += pending  # never answered in time
    ok = len(socks) - pending
    print(f"READY {ok} {failed}", flush=True)

    end = time.monotonic() + a.hold
    while not stop["now"] and time.monotonic() < end:
        time.sleep(0.1)
    for s in socks:
        s.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
