#!/usr/bin/env python
"""Start-up time of the ``audiodata`` command, against a bare ``python -c pass`` measured in the same run.

Each command runs ``--repeats`` times in a fresh interpreter (``python -m audiodata ...`` from this checkout);
the median is printed with its ratio to the baseline's median and the heavy modules it imported (checked in
one more run with ``-X importtime``). Target: ``audiodata --help`` under 0.3 s, and neither ``datasets``,
pandas, pyarrow nor torch loaded for ``--help`` or ``--version`` (``rules`` may load numpy: it builds the
rule registry).

Timings are noisy on a shared machine; the ratio to the baseline taken in the same run is the figure to
compare across machines.

Usage::

    python benchmarks/cli_startup.py
    python benchmarks/cli_startup.py --repeats 21 --json startup.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _shared import command_line, headline, machine, save_results

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "python -c pass (baseline)": ["-c", "pass"],
    "audiodata --version": ["-m", "audiodata", "--version"],
    "audiodata --help": ["-m", "audiodata", "--help"],
    "audiodata convert --help": ["-m", "audiodata", "convert", "--help"],
    "audiodata train sft --help": ["-m", "audiodata", "train", "sft", "--help"],
    "audiodata rules": ["-m", "audiodata", "rules"],
}
HEAVY = ("datasets", "pandas", "pyarrow", "torch", "transformers", "numpy")
TARGET_S = 0.3


def env() -> dict[str, str]:
    """This checkout first on the path, whatever is installed."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


def timed(repeats: int) -> dict[str, list[float]]:
    """Seconds per run of every command; the commands take turns, so a burst of load on a shared machine
    falls on all of them alike rather than on one."""
    out: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(repeats):
        for label, args in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], cwd=ROOT, env=env(), stdout=subprocess.DEVNULL, check=False)
            out[label].append(time.perf_counter() - start)
    return out


def heavy_imports(args: list[str]) -> list[str]:
    """The heavy top-level packages a command imports (from ``-X importtime``, which lists every import)."""
    run = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=ROOT, env=env(), capture_output=True, text=True, check=False
    )
    names = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in run.stderr.splitlines() if line.startswith("import time")}
    return sorted(names & set(HEAVY))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=11, help="fresh interpreters per command (default 11; the median counts)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    a = ap.parse_args(argv)
    at_start = machine()
    rows = []
    base = None
    print(f"{'command':<30} {'median s':>9} {'min s':>7} {'x baseline':>10}  heavy modules imported")
    runs = timed(a.repeats)
    for label, args in COMMANDS.items():
        times = runs[label]
        median = statistics.median(times)
        base = median if base is None else base
        heavy = heavy_imports(args)
        rows.append({"command": label, "median_s": median, "min_s": min(times), "ratio": median / base, "heavy": heavy})
        print(f"{label:<30} {median:>9.3f} {min(times):>7.3f} {median / base:>10.1f}  {', '.join(heavy) or '-'}")
    help_row = next(r for r in rows if r["command"] == "audiodata --help")
    ok = help_row["median_s"] < TARGET_S
    print(
        f"audiodata --help: {help_row['median_s']:.3f} s = {help_row['ratio']:.1f}x python -c pass "
        f"(target < {TARGET_S} s: {'met' if ok else 'MISSED'})"
    )
    if a.json:
        heads = [
            headline(f"start of `{r['command']}`", r["median_s"], "s (median)", f"`{rows[0]['command']}`, same run", r["ratio"],
                     "ratio: x the baseline's start (lower is better)")
            for r in rows[1:]
        ]
        figures = {"repeats": a.repeats, "target_s": TARGET_S, "rows": rows}
        save_results(a.json, "cli_startup", command_line("cli_startup.py", argv), at_start, heads, figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
