"""How fast this machine is, so figures from different machines can be read side by side: a plain
Python loop timed alone, then one copy per core at once.

    .venv/bin/python scripts/bench_machine.py [--loops 5000000]

The CPU time of the loop alone says how fast one core runs Python; the copies at once say how
much of that each core keeps when every core is busy (1.00: independent cores; on a VM whose
vCPUs share physical cores, or a host under load, much less). The whole WhatsApp path needs
every core while Rasa alone mostly needs one, so the rate ratio of `make bench` depends on
the second figure as much as on our code.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time


def spin(loops: int) -> float:
    """CPU seconds of `loops` additions in a plain Python loop."""
    started = time.process_time()
    total = 0
    for i in range(loops):
        total += i
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    alone: list[float] = []
    together: list[float] = []
    context = multiprocessing.get_context("spawn")
    with context.Pool(cores) as pool:
        pool.map(spin, [1000] * cores)  # the workers are up before anything is timed
        for _ in range(args.rounds):
            alone.append(pool.apply(spin, (args.loops,)))
            together += pool.map(spin, [args.loops] * cores, chunksize=1)
    one, each = statistics.median(alone), statistics.median(together)
    print(
        f"machine: {cores} cores; {args.loops / 1e6:g} M loop additions take {one:.2f} s of CPU"
        f" alone, {each:.2f} s each with {cores} at once (ratio {one / each:.2f}: about 1 when"
        " the cores are independent, lower when they share a physical core or a busy host)"
    )
    print(f"machine-summary: loop_s={one:.2f} parallel_loop_s={each:.2f} cores={cores}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
