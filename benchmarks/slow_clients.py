"""Do stuck clients delay the others? Readers' latency with and without them.

``python -m benchmarks.slow_clients [--readers 300] [--stuck 300] [--seconds 10]``

Runs the test app under ``python -m wsgi_push`` (loopback only) twice: once
with ``--readers`` SSE clients that read everything, once with the same
readers plus ``--stuck`` clients that never read (a 4 KiB receive buffer, so
the server's writes to them stall at once). A publisher sends 2 KB messages
at ``--rate`` per second carrying their publish time; the readers' publish →
receive latency (p50/p99/max) is compared, with the server's RSS and how
many stuck connections the send timeout closed. Stops by itself.
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import socket
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tests.support.clients import AUTH
from tests.support.servers import open_connections, pywsgi_server, wait_until

RESULTS = Path(__file__).parent / "results" / "slow_clients.json"
_SENT_AT = re.compile(rb'data: \{"sent":([0-9.]+),')


def connect(base_url: str, receive_buffer: int | None = None) -> socket.socket:
    address = urlsplit(base_url)
    sock = socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((address.hostname, address.port))
    sock.sendall(b"GET /push/sse/bench HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def publish_for(base_url: str, seconds: float, rate: float, stop: threading.Event) -> None:
    padding = "x" * 2000
    with requests.Session() as session:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop.wait(1 / rate):
            session.post(
                f"{base_url}/push/publish/bench",
                json={"data": {"sent": time.time(), "pad": padding}},
                headers=AUTH,
                timeout=10,
            )


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    return int(match.group(1)) if match else 0


def run(
    readers: int, stuck: int, seconds: float, rate: float, send_timeout: float
) -> dict[str, Any]:
    server = pywsgi_server(
        server_args=("--send-timeout", str(send_timeout)),
        PUSH_TEST_MAX_CONNECTIONS=str(readers + stuck + 10),
    )
    try:
        assert server.process is not None
        stuck_sockets = [connect(server.url, 4096) for _ in range(stuck)]
        reader_sockets = [connect(server.url) for _ in range(readers)]
        wait_until(lambda: open_connections(server, "sse") == readers + stuck, 30, "clients")
        selector = selectors.DefaultSelector()
        for sock in reader_sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, bytearray())
        stop = threading.Event()
        publisher = threading.Thread(
            target=publish_for, args=(server.url, seconds, rate, stop), daemon=True
        )
        latencies: list[float] = []
        publisher.start()
        while publisher.is_alive():
            for key, _ in selector.select(timeout=0.2):
                chunk = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                now = time.time()
                buffer: bytearray = key.data
                buffer += chunk
                *events, rest = bytes(buffer).split(b"\n\n")
                buffer[:] = rest
                for event in events:
                    match = _SENT_AT.search(event)
                    if match:
                        latencies.append((now - float(match.group(1))) * 1000)
        rss = rss_kib(server.process.pid)
        still_open = open_connections(server, "sse")
        for sock in stuck_sockets + reader_sockets:
            sock.close()
    finally:
        server.stop()
    latencies.sort()

    def percentile(fraction: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * fraction))], 2)

    return {
        "readers": readers,
        "stuck": stuck,
        "deliveries": len(latencies),
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": round(latencies[-1], 2),
        "server_rss_kib": rss,
        "open_at_end": still_open,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=300)
    parser.add_argument("--stuck", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=50.0, help="messages per second")
    parser.add_argument("--send-timeout", type=float, default=5.0)
    args = parser.parse_args()
    baseline = run(args.readers, 0, args.seconds, args.rate, args.send_timeout)
    with_stuck = run(args.readers, args.stuck, args.seconds, args.rate, args.send_timeout)
    ratio = round(with_stuck["p99_ms"] / max(baseline["p99_ms"], 0.01), 2)
    result = {"baseline": baseline, "with_stuck": with_stuck, "p99_ratio": ratio}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    for name, row in (("readers only", baseline), ("with stuck clients", with_stuck)):
        print(
            f"{name:>20}: {row['deliveries']} deliveries, p50 {row['p50_ms']} ms, "
            f"p99 {row['p99_ms']} ms, max {row['max_ms']} ms, RSS {row['server_rss_kib']} KiB, "
            f"open at end {row['open_at_end']}"
        )
    print(f"p99 with stuck clients / without: {ratio}x (target <= 2x)")


if __name__ == "__main__":
    main()
