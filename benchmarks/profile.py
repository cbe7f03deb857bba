"""Profile the wsgi_push server under fan-out load with py-spy.

``python -m benchmarks.profile [--subs 10000] [--channels 1] [--deliveries 40000] [--seconds 15]
[--mode stream|poll]``

Starts the benchmark server on core 0, holds ``--subs`` SSE subscribers
(spread over ``--channels`` channels) and publishes at ``--deliveries`` per
second from the load generator on core 1,
while ``py-spy record`` samples the server. Writes the collapsed stacks
(flamegraph.pl and speedscope read them) under ``benchmarks/results/`` and
prints where the time goes: self and inclusive time per function.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .run import RESULTS, loadgen_args, setup
from .targets import WsgiPushTarget


def summarise(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive sample shares from py-spy's collapsed stacks."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = [frame.split(" (")[0] + " " + frame.split("/")[-1].rstrip(")")
                  for frame in stack.split(";")]  # fmt: skip
        total += count
        self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in self_time.most_common(top)]
    lines += ["", "inclusive time:"]
    lines += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("--subs", type=int, default=10_000)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--deliveries", type=float, default=40_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--mode",
        choices=("stream", "poll"),
        default="stream",
        help="SSE subscribers or long-poll clients",
    )
    parser.add_argument("--name", default="profile-fanout")
    config = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install -r benchmarks/requirements.txt")
    setup(install=False)
    target = WsgiPushTarget()
    target.start()
    try:
        rate = config.deliveries / (config.subs // config.channels)  # publishes per second
        prefix = f"prof{int(time.time()) % 100000}c"
        args = loadgen_args(target, prefix, config.subs, config.channels, mode=config.mode)
        seconds = config.seconds + 5
        args += ["--rates", f"{rate}/{seconds}", "--drain", "3"]
        loadgen = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert loadgen.stdout is not None
        print(loadgen.stdout.readline().strip())  # connected
        time.sleep(2)
        collapsed = RESULTS / f"{config.name}.txt"
        subprocess.run(
            ["py-spy", "record", "--pid", str(target.server_pids()[0]), "--duration",
             str(int(config.seconds)), "--rate", "200", "--format", "raw", "--output",
             str(collapsed), "--nonblocking"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = loadgen.communicate(timeout=120)
        print(out.strip())
        report = summarise(collapsed)
        (RESULTS / f"{config.name}-summary.txt").write_text(report + "\n")
        print(report)
    finally:
        target.stop()


if __name__ == "__main__":
    main()
