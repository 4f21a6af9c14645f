"""Print the peak resident memory (VmHWM) of processes started by scripts/run.sh.

    python scripts/peak_rss.py RUN_DIR service worker rasa

Each name's pid is read from RUN_DIR/NAME.pid; the figure is the sum of VmHWM over the process
and its descendants (a supervisor's children each peak on their own, so the sum is an upper
bound of the tree's peak). Linux only (/proc). Prints one `memory:` line for scripts to read.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_peak_mib(pid: int) -> float:
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _hwm_kib(current)
        todo += _children(current)
    return total / 1024


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print("usage: peak_rss.py RUN_DIR NAME...", file=sys.stderr)
        return 2
    run_dir = Path(argv[1])
    parts = []
    for name in argv[2:]:
        try:
            pid = int((run_dir / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            parts.append(f"{name}_mib=0")
            continue
        peak = tree_peak_mib(pid)
        print(f"  {name:<8} peak RSS {peak:8.1f} MiB (pid {pid} and its children)")
        parts.append(f"{name}_mib={peak:.0f}")
    print("memory: " + " ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
