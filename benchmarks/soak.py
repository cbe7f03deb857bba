"""A bounded soak: connection churn on every transport under continuous publishing.

``python -m benchmarks.soak [--minutes 10]`` (never run by CI) starts the
test app under ``python -m wsgi_push`` (pywsgi) pinned to core 0, and from
this process, pinned to core 1, on loopback only:

- publishes continuously on a few channels over HTTP;
- keeps one subscriber per channel and transport (SSE, NDJSON stream, long
  poll) connected the whole time, each checking that it gets every id
  exactly once and in order;
- churns: clients connect on a random transport and channel, read a while,
  drop the connection abruptly, and reconnect resuming from the last id they
  saw (checking that nothing between is lost), from 0, or from now;
- samples the server's RSS and open fds (``/proc``) and its greenlets and
  open connections (the test app's ``/_test/state``).

At the end it reports whether RSS, fds and greenlets are within a few
percent of their plateau, and whether, with every client gone, fds and
greenlets are back to where they were before the first client. Writes
``benchmarks/results/soak.json`` and ``soak.png`` (RSS and connections over
time).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import requests

from tests.support.clients import AUTH, ndjson_objects, sse_events
from tests.support.servers import ROOT, ServerProcess, wait_until

RESULTS = ROOT / "benchmarks" / "results"
TRANSPORTS = ("sse", "stream", "poll")
READ_TIMEOUT = 15.0  # no read may wait longer: heartbeats come every HEARTBEAT s
HEARTBEAT = 1.0
POLL_TIMEOUT = 5.0
END = {"end": True}  # the last message on every channel: steady clients stop at it
TOLERANCE = 0.05  # "within a few percent" of the plateau

# A received message: (id, decoded data); a gap notice has id None.
Item = tuple[int | None, Any]


def log(text: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {text}", flush=True)


# Reading the three transports --------------------------------------------


def receive(
    http: requests.Session, url: str, transport: str, channel: str, since: int | None
) -> Iterator[Item]:
    """Messages from one subscription, resumed after ``since`` (None: from
    now). Long polling is a loop of polls; the others one connection.
    Closing the iterator drops the connection at once."""
    if transport == "poll":
        yield from _poll(http, url, channel, since)
        return
    params: dict[str, int] = {}
    headers: dict[str, str] = {}
    if since is not None and transport == "sse":
        headers["Last-Event-ID"] = str(since)
    elif since is not None:
        params["since"] = since
    response = http.get(
        f"{url}/push/{transport}/{channel}",
        params=params,
        headers=headers,
        stream=True,
        timeout=(5, READ_TIMEOUT),
    )
    try:
        response.raise_for_status()
        if transport == "sse":
            # Every payload published here is a JSON object, so SSE data is JSON.
            for event in sse_events(response):
                message_id = None if event.event == "gap" else int(event.id or 0)
                yield message_id, json.loads(event.data)
        else:
            for obj in ndjson_objects(response):
                yield obj.get("id"), obj["data"]
    finally:
        response.close()


def _poll(http: requests.Session, url: str, channel: str, since: int | None) -> Iterator[Item]:
    position = since
    while True:
        params = {"timeout": POLL_TIMEOUT} if position is None else {"since": position}
        response = http.get(f"{url}/push/poll/{channel}", params=params, timeout=(5, READ_TIMEOUT))
        response.raise_for_status()
        answer = response.json()
        if answer["gap"] is not None:
            yield None, answer["gap"]
        for message in answer["messages"]:
            yield message["id"], message["data"]
        position = answer["last_id"]


# Checking continuity ------------------------------------------------------


@dataclass
class Continuity:
    """Checks that ids arrive exactly once, in order, with no hole unless a
    gap notice said so; ``last_id`` is where to resume."""

    last_id: int | None = None
    received: int = 0
    gaps: int = 0
    violations: list[str] = field(default_factory=list)

    def accept(self, item: Item) -> None:
        message_id, _ = item
        if message_id is None:
            self.gaps += 1
            self.last_id = None
            return
        self.received += 1
        if self.last_id is not None and message_id != self.last_id + 1:
            self.violations.append(f"after {self.last_id} got {message_id}")
        self.last_id = message_id


@dataclass
class SteadyResult:
    channel: str
    transport: str
    received: int = 0
    lost: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    reconnects: int = 0
    gaps: int = 0


@dataclass
class ChurnStats:
    """Totals over every churned session, added to by many threads."""

    sessions: Counter[str] = field(default_factory=Counter)
    received: int = 0
    resumes_checked: int = 0
    gaps: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, transport: str, session: Continuity, resumed: bool, error: Exception | None
    ) -> None:
        with self.lock:
            self.sessions[transport] += 1
            self.received += session.received
            self.gaps += session.gaps
            self.resumes_checked += resumed and session.received > 0
            self.violations += [f"{transport}: {violation}" for violation in session.violations]
            if error is not None:
                self.errors[type(error).__name__] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": dict(self.sessions),
            "received": self.received,
            "resumes_checked": self.resumes_checked,
            "gaps": self.gaps,
            "errors": dict(self.errors),
            "violations": self.violations[:50],
            "violation_count": len(self.violations),
        }


# The soak -----------------------------------------------------------------


class Worker(threading.Thread):
    """A daemon thread running one client; keeps the exception that ended it."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        super().__init__(daemon=True)
        self.work = target
        self.work_args = args
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.work(*self.work_args)
        except BaseException as error:  # reported by check() in the main thread
            self.error = error

    @staticmethod
    def check(workers: list[Worker]) -> None:
        """Raise the first failure among ``workers``."""
        for worker in workers:
            if worker.error is not None:
                raise RuntimeError(f"soak client {worker.work.__name__} failed") from worker.error

    @staticmethod
    def join_all(workers: list[Worker], timeout: float) -> None:
        """Join every worker within ``timeout`` seconds in all; raise on failure or hang."""
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        Worker.check(workers)
        if any(worker.is_alive() for worker in workers):
            raise RuntimeError(f"soak clients still running after {timeout}s")


class Soak:
    def __init__(self, args: argparse.Namespace, server: ServerProcess) -> None:
        self.args = args
        self.url = server.url
        assert server.process is not None
        self.pid = server.process.pid
        self.channels = [f"soak-{index}" for index in range(args.channels)]
        self.published: Counter[str] = Counter()
        self.churning = threading.Event()
        self.publishing = threading.Event()
        self.churn = ChurnStats()
        self.steady: list[SteadyResult] = []
        self.samples: list[dict[str, Any]] = []
        self.started = time.monotonic()

    # Server state

    def state(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{self.url}/_test/state", timeout=10).json()
        return answer

    def sample(self) -> dict[str, Any]:
        status = Path(f"/proc/{self.pid}/status").read_text()
        rss_line = next(line for line in status.splitlines() if line.startswith("VmRSS"))
        rss_kb = int(rss_line.split()[1])
        state = self.state()
        return {
            "t": round(time.monotonic() - self.started, 2),
            "rss_mb": round(rss_kb / 1024, 2),
            "fds": len(os.listdir(f"/proc/{self.pid}/fd")),
            "greenlets": state["greenlets"],
            "connections": dict(state["connections"]),
            "published": sum(self.published.values()),
            "churn_sessions": sum(self.churn.sessions.values()),
        }

    def sampler(self, stop: threading.Event) -> None:
        while not stop.wait(self.args.interval):
            self.samples.append(self.sample())

    # Clients

    def publisher(self, channel: str) -> None:
        """Publish ``{"seq": n}`` at the configured rate; the n-th gets id n."""
        http = requests.Session()
        interval = 1.0 / self.args.rate
        next_at = time.monotonic()
        while self.publishing.is_set():
            sequence = self.published[channel] + 1
            self._publish(http, channel, {"seq": sequence}, sequence)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        self._publish(http, channel, END, self.published[channel] + 1)

    def _publish(self, http: requests.Session, channel: str, data: Any, expected: int) -> None:
        response = http.post(
            f"{self.url}/push/publish/{channel}", json={"data": data}, headers=AUTH, timeout=10
        )
        response.raise_for_status()
        if response.json()["id"] != expected:
            raise AssertionError(f"{channel}: publish got id {response.json()['id']}")
        self.published[channel] += 1

    def steady_client(self, result: SteadyResult) -> None:
        """Subscribed from id 0 until the END message; resumes if ever cut."""
        http = requests.Session()
        ids: list[int] = []
        done = False
        while not done:
            since = ids[-1] if ids else 0
            try:
                with contextlib.closing(
                    receive(http, self.url, result.transport, result.channel, since)
                ) as items:
                    for message_id, data in items:
                        if message_id is None:
                            result.gaps += 1
                            continue
                        ids.append(message_id)
                        if data == END:
                            done = True
                            break
                        if data["seq"] != message_id:
                            raise AssertionError(f"{result}: data {data} under id {message_id}")
            except requests.RequestException as error:
                result.reconnects += 1
                log(f"steady {result.transport} {result.channel} cut ({error}); resuming")
        result.received = len(ids)
        result.duplicates = len(ids) - len(set(ids))
        result.out_of_order = sum(1 for a, b in pairwise(ids) if b <= a)
        result.lost = len(set(range(1, self.published[result.channel] + 1)) - set(ids))

    def churner(self, seed: int) -> None:
        """Connect, read a while, drop; reconnect resuming from the last id,
        from 0 or from now. Resumes from the last id must continue at id + 1."""
        rng = random.Random(seed)
        http = requests.Session()
        resume_points: dict[str, int] = {}
        while self.churning.is_set():
            channel = rng.choice(self.channels)
            transport = rng.choice(TRANSPORTS)
            mode = rng.choices(["resume", "zero", "now"], weights=[6, 1, 3])[0]
            since = {"resume": resume_points.get(channel), "zero": 0, "now": None}[mode]
            deadline = time.monotonic() + rng.uniform(0.1, self.args.max_read)
            # Only a resume from an id promises where the stream starts.
            continuity = Continuity(last_id=since if mode == "resume" else None)
            error: requests.RequestException | None = None
            try:
                with contextlib.closing(
                    receive(http, self.url, transport, channel, since)
                ) as items:
                    for item in items:
                        continuity.accept(item)
                        if time.monotonic() > deadline or not self.churning.is_set():
                            break
            except requests.RequestException as failure:
                error = failure
            resumed = mode == "resume" and since is not None
            self.churn.record(transport, continuity, resumed, error)
            if continuity.last_id is not None:
                resume_points[channel] = continuity.last_id
            if rng.random() < 0.1:
                # Now and then a fresh client: a new keep-alive connection too.
                http.close()
                http = requests.Session()

    # The run

    def run(self) -> dict[str, Any]:
        baseline = self.sample()
        log(f"server pid {self.pid}; before any client: {baseline}")
        self.publishing.set()
        self.steady = [SteadyResult(c, t) for c in self.channels for t in TRANSPORTS]
        steady = [Worker(self.steady_client, result) for result in self.steady]
        wait_until(
            lambda: sum(self.state()["connections"].values()) >= 2 * len(self.channels),
            10,
            "steady subscribers",
        )
        publishers = [Worker(self.publisher, channel) for channel in self.channels]
        self.churning.set()
        churners = [Worker(self.churner, seed) for seed in range(self.args.churners)]
        stop_sampling = threading.Event()
        sampler = Worker(self.sampler, stop_sampling)
        end_at = self.started + self.args.minutes * 60
        while time.monotonic() < end_at:
            time.sleep(min(30.0, max(0.0, end_at - time.monotonic())))
            if self.samples:
                log(f"{self.samples[-1]}")
            Worker.check([*publishers, *steady, *churners, sampler])
        log("stopping churn, then publishing; waiting for steady clients to see the end")
        self.churning.clear()
        Worker.join_all(churners, READ_TIMEOUT * 2)
        self.publishing.clear()
        Worker.join_all(publishers, 30)
        Worker.join_all(steady, 60)
        stop_sampling.set()
        Worker.join_all([sampler], 30)
        # With every client gone, the server should be back where it started.
        wait_until(lambda: not any(self.state()["connections"].values()), 30, "all to close")
        settled = self.sample()
        log(f"after every client left: {settled}")
        return self.summary(baseline, settled)

    def summary(self, baseline: dict[str, Any], settled: dict[str, Any]) -> dict[str, Any]:
        steady = [asdict(result) for result in self.steady]
        return {
            "config": {**vars(self.args), "out": str(self.args.out)},
            "duration_s": round(time.monotonic() - self.started, 1),
            "published": dict(self.published),
            "steady_clients": steady,
            "lost": sum(result["lost"] for result in steady),
            "delivered": sum(result["received"] for result in steady) + self.churn.received,
            "churn": self.churn.to_dict(),
            "plateau": {
                name: plateau([sample[name] for sample in self.samples])
                for name in ("rss_mb", "fds", "greenlets")
            },
            "baseline": baseline,
            "settled": settled,
            # With no client connected, before the first and after the last.
            "settled_minus_baseline": {
                name: round(settled[name] - baseline[name], 2)
                for name in ("rss_mb", "fds", "greenlets")
            },
            "samples": self.samples,
        }


def plateau(values: list[float]) -> dict[str, Any]:
    """Plateau = median over the middle third of the run (after warm-up);
    end = median over the last tenth. Within TOLERANCE means no growth."""
    count = len(values)
    if count < 10:
        return {"plateau": None, "end": None, "change": None, "within_tolerance": None}
    middle = statistics.median(values[count // 3 : 2 * count // 3])
    end = statistics.median(values[-max(1, count // 10) :])
    change = (end - middle) / middle if middle else 0.0
    return {
        "plateau": middle,
        "end": end,
        "max": max(values),
        "change": round(change, 4),
        "within_tolerance": abs(change) <= TOLERANCE,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """RSS, open connections by transport, and fds/greenlets over time."""
    try:
        import matplotlib
    except ImportError:
        log("matplotlib missing: installing it (benchmark-only dependency)")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
        import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    minutes = [sample["t"] / 60 for sample in samples]
    figure, (rss, connections, counts) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    rss.plot(minutes, [s["rss_mb"] for s in samples], color="tab:red")
    rss.set_ylabel("server RSS (MB)")
    rss.set_ylim(bottom=0)
    for transport in TRANSPORTS:
        series = [s["connections"].get(transport, 0) for s in samples]
        connections.plot(minutes, series, label=transport)
    connections.plot(minutes, [sum(s["connections"].values()) for s in samples], label="total")
    connections.set_ylabel("open connections")
    connections.legend(loc="upper right")
    counts.plot(minutes, [s["fds"] for s in samples], label="open fds")
    counts.plot(minutes, [s["greenlets"] for s in samples], label="greenlets")
    counts.set_ylabel("count")
    counts.set_xlabel("minutes")
    counts.legend(loc="upper right")
    figure.suptitle(
        f"wsgi_push soak: {result['duration_s'] / 60:.1f} min, "
        f"{sum(result['churn']['sessions'].values()):,} churned sessions, "
        f"{sum(result['published'].values()):,} messages published, {result['lost']} lost"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def start_server() -> ServerProcess:
    """The test app under pywsgi, on core 0 when ``taskset`` exists."""
    app = "tests.support.apps:app"
    argv = [sys.executable, "-m", "wsgi_push", app, "--port", "0", "--no-access-log"]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", "0", *argv]
    env = {"PUSH_TEST_HEARTBEAT": str(HEARTBEAT), "PUSH_TEST_POLL_TIMEOUT": str(POLL_TIMEOUT)}
    return ServerProcess(argv, env).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to churn")
    parser.add_argument("--channels", type=int, default=4)
    parser.add_argument("--rate", type=float, default=20.0, help="messages/s per channel")
    parser.add_argument("--churners", type=int, default=40, help="concurrent churning clients")
    parser.add_argument("--max-read", type=float, default=3.0, help="longest churn session, s")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the server has core 0
    server = start_server()
    try:
        result = Soak(args, server).run()
    finally:
        server.stop()
    result["server_tracebacks"] = len(server.tracebacks(through="/wsgi_push/"))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    plot(result, args.out / "soak.png")
    keys = ("duration_s", "published", "lost", "delivered", "churn", "plateau")
    report = {key: result[key] for key in (*keys, "settled_minus_baseline", "server_tracebacks")}
    log(json.dumps(report, indent=1))
    log(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.png'}")


if __name__ == "__main__":
    main()
