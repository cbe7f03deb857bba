"""Run the benchmark: ``python -m benchmarks [--quick]``.

Measures wsgi_push (``python -m wsgi_push``, and under a plain
``gevent.pywsgi.WSGIServer``), sse-starlette and Nchan, and on Redis the
gunicorn push worker and Flask-SSE, in one run: each server pinned to core 0
and the C load generator (``loadgen.c``, compiled here into
``benchmarks/work/``) pinned to core 1, on loopback only. Writes
``benchmarks/results/results.json``, ``results.md`` and the plots.

Scenarios (each bounded in time; the run stops by itself), each run by the
targets that can take part (``Target.scenarios``):

- ``idle``: hold N SSE connections; server RSS growth / N and idle CPU with
  15 s heartbeats. ``idle-mux``: the same with 10 channels per connection.
- ``fanout``: N subscribers on one channel; the publish rate rises step by
  step until p99 > 1 s, a delivery is lost, or publishing can't keep up.
  ``fanout-mux``: 1,000 subscribers each following the same 10 channels over
  one connection, publishing round-robin over them.
- ``channels``: 1,000 channels with one SSE subscriber each, one HTTP
  publish per message; ``channels-batch``: the same, published in batches of
  100 (``POST /push/publish``).
- ``longpoll``: 1,000 (full run: also 5,000 and 10,000) long-poll clients,
  each driven the way its own client library polls: wsgi_push with
  ``since=<last_id>``, Nchan with ``If-Modified-Since``/``If-None-Match``
  and multipart answers (NchanSubscriber.js).
- ``storm``: 10,000 SSE subscribers reset at once while publishing goes on;
  time until every one is back with every message exactly once.
- ``redis-fanout``: fan-out to 100 / 1,000 / 5,000 subscribers on a
  RedisBroker under the gunicorn push worker, and Flask-SSE on Redis.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .report import write_reports
from .targets import REPO, WORK, Target, all_targets, rss_kib

RESULTS = REPO / "benchmarks" / "results"
SCENARIOS = (
    "idle", "idle-mux", "fanout", "fanout-mux", "channels", "channels-batch", "longpoll",
    "storm", "redis-fanout",
)  # fmt: skip
LOADGEN_SOURCE = REPO / "benchmarks" / "loadgen.c"
LOADGEN = WORK / "loadgen"
CLIENT_CORE = "1"

# Deliveries/s asked for, step by step (x sqrt 2): 10,000 is always a step,
# so the latency target reads its p99 there.
DELIVERY_LADDER = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 14_000, 20_000, 28_000, 40_000, 56_000, 80_000,
    113_000, 160_000, 226_000, 320_000, 452_000, 640_000,
]  # fmt: skip


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- setup -----------------------------------------------------------------


def setup(install: bool) -> None:
    """Compile the load generator; install the peers unless told not to."""
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if install:
        install_peers()
    if not LOADGEN.exists() or LOADGEN.stat().st_mtime < LOADGEN_SOURCE.stat().st_mtime:
        log("compiling the load generator")
        subprocess.run(["gcc", "-O2", "-Wall", "-o", str(LOADGEN), str(LOADGEN_SOURCE)], check=True)


def install_peers() -> None:
    """Benchmark-only dependencies; a failure is reported, never fatal."""
    try:
        import flask_sse  # noqa: F401
        import matplotlib  # noqa: F401
        import sse_starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        log("installing sse-starlette, flask-sse, uvicorn[standard], matplotlib from PyPI")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-r",
             str(REPO / "benchmarks" / "requirements.txt")],
            check=False,
        )  # fmt: skip
    if not shutil.which("nginx") or not Path("/usr/lib/nginx/modules/ngx_nchan_module.so").exists():
        log("installing nginx + libnginx-mod-nchan from Debian")
        apt = ["apt-get"] if shutil.which("sudo") is None else ["sudo", "apt-get"]
        subprocess.run([*apt, "update", "-qq"], check=False)
        subprocess.run(
            [*apt, "install", "-y", "-qq", "nginx", "libnginx-mod-nchan"],
            check=False,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )


# -- the load generator ----------------------------------------------------


def loadgen_args(
    target: Target,
    prefix: str,
    subs: int,
    channels: int = 1,
    mux: int = 1,
    batch: int = 1,
    mode: str = "stream",
) -> list[str]:
    """The load generator's command line; ``mode="poll"``: long-poll clients
    driven the way the target's own client library polls."""
    sub_path = target.sub_path
    if mode == "poll":
        assert target.poll_path is not None
        sub_path = target.poll_path
    args = [
        "taskset", "-c", CLIENT_CORE, str(LOADGEN),
        "--port", str(target.port), "--subs", str(subs), "--channels", str(channels),
        "--prefix", prefix, "--sub-path", sub_path, "--pub-path", target.pub_path,
    ]  # fmt: skip
    if mode == "poll":
        args += ["--mode", "poll", "--flavour", target.poll_flavour]
    if target.pub_auth:
        args += ["--pub-auth", target.pub_auth]
    if target.pub_raw:
        args.append("--pub-raw")
    if mux > 1:
        assert target.mux_path is not None
        args += ["--mux", str(mux), "--mux-path", target.mux_path]
    if batch > 1:
        assert target.batch_path is not None
        args += ["--batch", str(batch), "--batch-path", target.batch_path]
    if target.ready_on_send:
        args.append("--ready-on-send")
    for pid in target.server_pids():
        args += ["--server-pid", str(pid)]
    return args


def run_loadgen(args: list[str], timeout: float) -> list[dict[str, Any]]:
    """Run the load generator to the end; its JSON lines."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        log(f"load generator timed out after {timeout:.0f}s")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def ladder(subs: int, start: float, step_s: float, min_messages: int = 6) -> str:
    """The rate steps for the load generator, as ``rate/seconds`` pairs: a
    step lasts long enough to publish ``min_messages`` messages."""
    steps = []
    for deliveries in DELIVERY_LADDER:
        if deliveries < start:
            continue
        rate = deliveries / subs
        seconds = max(step_s, min(min_messages / rate, 12.0))
        steps.append(f"{rate:.4f}/{seconds:.2f}")
    return ",".join(steps)


def summarise_ramp(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The best passing step, the 10,000/s step and why the ramp stopped."""
    passed = [step for step in steps if step["pass"]]
    best = max(passed, key=lambda step: step["deliveries_per_s"]) if passed else None
    at_10k = next((s for s in steps if abs(s["rate"] * s["subscribers"] - 10_000) < 1), None)
    failed = next((step for step in steps if not step["pass"]), None)
    if failed is None:
        stop = "ladder exhausted"
    elif failed["lost"]:
        stop = f"lost {failed['lost']} of {failed['expected']}"
    elif failed["publish_errors"]:
        stop = f"{failed['publish_errors']} publish errors"
    elif failed["received"] == 0:
        stop = "nothing delivered"
    elif failed["publish_rate"] < 0.9 * failed["rate"]:
        stop = f"publishing saturated at {failed['publish_rate']:.0f}/s"
    else:
        stop = f"p99 {failed['p99_ms']:.0f} ms"
    return {
        "max_deliveries_per_s": best["deliveries_per_s"] if best else 0.0,
        "best_step": best,
        "at_10k": at_10k,
        "stopped_by": stop,
        "steps": steps,
    }


# -- scenarios -------------------------------------------------------------


def scenario_idle(
    target: Target, subs: int, hold: float, prefix: str, channels: int = 1, mux: int = 1
) -> dict[str, Any]:
    pids = target.server_pids()
    time.sleep(1.0)
    before = rss_kib(pids)
    args = loadgen_args(target, prefix, subs, channels, mux)
    args += ["--mode", "idle", "--hold", str(hold)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline() or "{}")
    time.sleep(2.0)
    after = rss_kib(pids)
    try:
        out, _ = process.communicate(timeout=hold + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    held = next((json.loads(line) for line in out.splitlines() if line.startswith("{")), {})
    held_subs = ready.get("subscribers", 0)
    return {
        "subscribers": held_subs,
        "wanted": subs,
        "connect_s": ready.get("connect_s"),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "kib_per_connection": (after - before) / held_subs if held_subs else None,
        "idle_cpu_pct": held.get("server_cpu_pct"),
        "loadgen_cpu_pct": held.get("loadgen_cpu_pct"),
        "closed_during_hold": held.get("closed"),
        "hold_s": held.get("hold_s"),
        "channels_per_connection": mux,
    }


def scenario_ramp(
    target: Target,
    prefix: str,
    subs: int,
    channels: int,
    start: float,
    step_s: float,
    mode: str = "stream",
    mux: int = 1,
    batch: int = 1,
) -> dict[str, Any]:
    args = loadgen_args(target, prefix, subs, channels, mux, batch, mode)
    per_message = max(1, subs * mux // channels)  # deliveries per published message
    args += ["--rates", ladder(per_message, start, step_s), "--drain", "2", "--retries", "1"]
    lines = run_loadgen(args, timeout=600)
    ready = next((line for line in lines if line["event"] == "ready"), {})
    steps = [line for line in lines if line["event"] == "step"]
    result = summarise_ramp(steps)
    connected = ready.get("subscribers", 0)
    result.update(subscribers=subs, channels=channels, connected=connected, mux=mux, batch=batch)
    if connected < subs:  # a server that refuses subscribers has not held N
        result.update(max_deliveries_per_s=0.0, stopped_by=f"only {connected} of {subs} connected")
    return result


def scenario_storm(target: Target, subs: int, prefix: str) -> dict[str, Any]:
    """Reset every subscriber at once while publishing 2 messages/s (10,000
    subscribers: 20,000 deliveries/s, far from saturating the core); the
    load generator reconnects them all with their Last-Event-ID."""
    args = loadgen_args(target, prefix, subs)
    args += ["--mode", "storm", "--storm-rate", "2", "--storm-at", "3", "--storm-after", "3",
             "--storm-max", "60", "--drain", "5"]  # fmt: skip
    lines = run_loadgen(args, timeout=240)
    ready = next((line for line in lines if line["event"] == "ready"), {})
    storm = next((line for line in lines if line["event"] == "storm"), None)
    if storm is None:
        return {"subscribers": subs, "error": "no storm report",
                "connected": ready.get("subscribers")}  # fmt: skip
    storm["connected_before"] = ready.get("subscribers")
    return storm


def _ramps(
    target: Target, config: argparse.Namespace, key: str, sizes: list[int], run_id: str,
    mode: str = "stream", low_start: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """One ramp per size, each on a fresh server: connections of the
    previous one are only noticed gone at their next heartbeat."""
    out = {}
    for subs in sizes:
        first = 2_500 if subs < 5_000 else 10_000
        if low_start:
            first = 250 if subs <= 1_000 else 1_000
        log(f"{target.name}: {key} {subs}")
        target.start(heartbeat=15.0)
        try:
            ramp = scenario_ramp(target, f"{run_id}{key[:2]}{subs}c", subs, 1, first,
                                 config.step, mode=mode)  # fmt: skip
        finally:
            target.stop()
        out[str(subs)] = ramp
        log(f"{target.name}: {key} {subs}: {ramp['max_deliveries_per_s']:.0f}/s "
            f"({ramp['stopped_by']})")  # fmt: skip
    return out


def run_scenario(target: Target, scenario: str, config: argparse.Namespace, run_id: str) -> Any:
    """One scenario on ``target``: its result for results.json."""
    if scenario in ("idle", "idle-mux"):
        mux = 10 if scenario == "idle-mux" else 1
        channels = 1_000 if mux > 1 else 1
        target.start(heartbeat=15.0)
        try:
            log(f"{target.name}: {scenario} {config.idle_subs} connections x {mux} channels")
            return scenario_idle(target, config.idle_subs, config.hold,
                                 f"{run_id}{scenario.replace('-', '')}", channels, mux)  # fmt: skip
        finally:
            target.stop()
    if scenario == "fanout":
        return _ramps(target, config, "fanout", config.fanout_subs, run_id)
    if scenario == "redis-fanout":
        # Flask-SSE publishes through a new Redis connection per message:
        # start low enough for it to pass a step.
        return _ramps(target, config, "redis-fanout", config.redis_subs, run_id, low_start=True)
    if scenario == "longpoll":
        return _ramps(target, config, "longpoll", config.poll_clients, run_id, mode="poll")
    target.start(heartbeat=15.0)
    try:
        if scenario == "fanout-mux":
            return scenario_ramp(target, f"{run_id}fm", config.mux_subs, 10, 2_500,
                                 config.step, mux=10)  # fmt: skip
        if scenario in ("channels", "channels-batch"):
            batch = 100 if scenario == "channels-batch" else 1
            return scenario_ramp(target, f"{run_id}{scenario[-5:]}", config.channels,
                                 config.channels, 1_000, config.step, batch=batch)  # fmt: skip
        if scenario == "storm":
            return scenario_storm(target, config.storm_subs, f"{run_id}st")
        raise ValueError(f"unknown scenario {scenario}")
    finally:
        target.stop()


def summary(result: Any) -> str:
    if isinstance(result, dict) and "max_deliveries_per_s" in result:
        return f"{result['max_deliveries_per_s']:.0f}/s ({result['stopped_by']})"
    return json.dumps(result)[:400]


def run_target(target: Target, config: argparse.Namespace, run_id: str) -> dict[str, Any]:
    results: dict[str, Any] = {"label": target.label}
    if target.unavailable:
        log(f"{target.name}: NOT MEASURED: {target.unavailable}")
        results["unavailable"] = target.unavailable
        return results
    for scenario in config.scenarios:
        if scenario not in target.scenarios:
            continue
        try:
            results[scenario] = run_scenario(target, scenario, config, run_id)
            log(f"{target.name}: {scenario}: {summary(results[scenario])}")
        except Exception as error:  # a peer failing must not lose the others' figures
            log(f"{target.name}: {scenario} FAILED: {error!r}")
            results.setdefault("errors", {})[scenario] = repr(error)
        finally:
            target.stop()
    return results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="smaller N, shorter steps (~4 min)")
    parser.add_argument("--targets", default=",".join(t.name for t in all_targets()))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-install", action="store_true", help="don't install the peers")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="update the given targets' scenarios in an existing results.json, keep the rest",
    )
    sizes = parser.add_argument_group("overrides (to fit a run in a time slot)")
    for option in ("fanout-subs", "redis-subs", "poll-clients"):
        sizes.add_argument(f"--{option}", type=lambda text: [int(n) for n in text.split(",")])
    for option in ("idle-subs", "storm-subs"):
        sizes.add_argument(f"--{option}", type=int)
    for option in ("step", "hold"):
        sizes.add_argument(f"--{option}", type=float, help="seconds")
    config = parser.parse_args(argv)
    overrides = {key: value for key, value in vars(config).items() if value is not None}
    config.targets = config.targets.split(",")
    config.scenarios = config.scenarios.split(",")
    if config.quick:
        config.idle_subs, config.hold, config.step = 2_000, 16.0, 2.0
        config.fanout_subs = config.redis_subs = [100, 1_000]
        config.poll_clients, config.storm_subs, config.mux_subs = [1_000], 2_000, 1_000
    else:
        config.idle_subs, config.hold, config.step = 10_000, 32.0, 3.0
        config.fanout_subs = [100, 1_000, 5_000, 10_000]
        config.redis_subs = [100, 1_000, 5_000]
        config.poll_clients = [1_000, 5_000, 10_000]
        config.storm_subs, config.mux_subs = 10_000, 1_000
    config.channels = 1_000
    for key in ("fanout_subs", "redis_subs", "poll_clients", "idle_subs", "storm_subs", "step",
                "hold"):  # fmt: skip
        if key in overrides:
            setattr(config, key, overrides[key])
    return config


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup(install=not config.no_install)
    run_id = f"r{int(time.time()) % 100000}"
    started = time.time()
    results: dict[str, Any] = {
        "run": {
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "quick": config.quick,
            "machine": machine_facts(),
            "note": "2 cores shared with other work: figures are noisy, ratios within a run "
            "are the meaningful part",
            "what": f"targets {','.join(config.targets)}; scenarios {','.join(config.scenarios)}; "
            f"step {config.step:g} s, fan-out {config.fanout_subs}, long-poll "
            f"{config.poll_clients}, Redis {config.redis_subs}, storm {config.storm_subs}, "
            f"idle {config.idle_subs} for {config.hold:g} s",
        },
        "targets": {},
    }
    run_info = results["run"]
    previous = config.output / "results.json"
    if config.merge and previous.exists():
        merged = json.loads(previous.read_text())
        merged["run"].setdefault("partial_runs", []).append(results["run"])
        results = merged
    for target in all_targets():
        if target.name in config.targets:
            measured = run_target(target, config, run_id)
            if config.merge:
                merge_target(results["targets"].setdefault(target.name, {}), measured)
            else:
                results["targets"][target.name] = measured
    run_info["duration_s"] = round(time.time() - started, 1)
    config.output.mkdir(parents=True, exist_ok=True)
    (config.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_reports(results, config.output)
    log(f"wrote {config.output}/results.json, results.md and the plots "
        f"in {run_info['duration_s']:.0f}s")  # fmt: skip


def merge_target(old: dict[str, Any], new: dict[str, Any]) -> None:
    """A partial run's scenarios into a target's results; a scenario with one
    ramp per size keeps the sizes this run did not measure."""
    for scenario, value in new.items():
        previous = old.get(scenario)
        if (
            isinstance(previous, dict)
            and isinstance(value, dict)
            and value
            and all(key.isdigit() for key in value)
        ):
            previous.update(value)
        else:
            old[scenario] = value


def machine_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"python": sys.version.split()[0]}
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        facts["cpu"] = next(
            line.split(":", 1)[1].strip() for line in cpu.splitlines() if "model name" in line
        )
    except (OSError, StopIteration):
        pass
    for package in ("gevent", "uvicorn", "sse_starlette"):
        try:
            facts[package] = __import__(package).__version__
        except (ImportError, AttributeError):
            facts[package] = None
    try:
        facts["nginx"] = subprocess.run(
            ["nginx", "-v"], capture_output=True, text=True
        ).stderr.strip()
    except OSError:
        facts["nginx"] = None
    return facts


if __name__ == "__main__":
    main()
