"""What every benchmark shares: where the checkout and the cache are, and imports from this checkout.

A benchmark is run as ``python benchmarks/NAME.py``, so Python already puts this folder first on
``sys.path``: siblings (``convert_bench``'s corpus and Stopwatch, ``memory_bench``'s RSS sampling) import
by name. The one path edit left lives here: :func:`use_checkout` makes the checkout's ``audiodata`` and
``trainer`` importable, and can insist that the copy measured is this checkout's rather than another
editable install's.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CACHE_DIR = BENCH_DIR / ".cache"


def sibling(name: str) -> ModuleType:
    """Another benchmark module (``convert_bench``, ``lint_bench``, ``memory_bench``) by name."""
    return importlib.import_module(name)


def use_checkout(strict: bool = False) -> None:
    """Make this checkout's ``audiodata``/``trainer`` importable.

    Lenient (default): an installed copy still wins, so ``pip install .`` users measure what they run.
    Strict: this checkout goes first and a copy imported from elsewhere stops the benchmark, for numbers
    that must belong to the code under review.
    """
    root = str(REPO_ROOT)
    if strict:
        if sys.path[:1] != [root]:
            sys.path.insert(0, root)
        import audiodata

        if not Path(audiodata.__file__).resolve().is_relative_to(REPO_ROOT):
            raise SystemExit(f"imported {audiodata.__file__}, not this checkout's audiodata")
    elif root not in sys.path:
        sys.path.append(root)


#: Where the committed headline results live (``readme_table.py`` rebuilds the README's table from them).
RESULTS_DIR = BENCH_DIR / "results"


def machine() -> dict[str, object]:
    """What the figures were measured on, taken at the start: CPU model, cores, load average, date (UTC).

    The machine may be shared: the load average says how much, and the ratios (against a baseline from
    the same run) are what to compare, never the absolute times."""
    import datetime
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu": model,
        "cores": os.cpu_count() or 1,
        "load_average": load,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }


def headline(metric: str, value: float, unit: str, baseline: str, ratio: float, note: str = "") -> dict[str, object]:
    """One row of the README's performance table: a figure, its baseline from the same run, their ratio."""
    return {
        "metric": metric, "value": round(value, 3), "unit": unit, "baseline": baseline, "ratio": round(ratio, 3), "note": note,
    }  # fmt: skip


def save_results(path: str | Path | None, bench: str, command: str, at_start: dict[str, object],
                 headlines: list[dict[str, object]], figures: dict[str, object] | None = None) -> None:
    """Write a benchmark's figures as JSON (``--json PATH``), with what the README's table takes from them:
    ``bench``, the ``command`` that ran, ``measured_on`` (:func:`machine` at the start) and ``headlines``.

    The figures stay at the top level as each benchmark wrote them before (its smoke test reads them there)."""
    import json

    if path is None:
        return
    doc = {**(figures or {}), "bench": bench, "command": command, "measured_on": at_start, "headlines": headlines}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=2, default=str) + "\n"
    # committed results name the checkout's files relative to it: no local path leaves the machine
    root = str(Path(__file__).resolve().parents[1]) + "/"
    Path(path).write_text(text.replace(json.dumps(root)[1:-1], ""), encoding="utf-8")


def command_line(script: str, argv: list[str] | None) -> str:
    """How the benchmark was run, as the README shows it (``--json`` and its path left out)."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    shown: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--json":
            skip = True
            continue
        if a.startswith("--json="):
            continue
        shown.append(a)
    return " ".join(["python", f"benchmarks/{script}", *shown])


# -- what ranks_bench and ray_bench share: a corpus subset, the CPU of a process tree, the same-answer check ----------


def corpus_subset(corpus: Path, clips: int | None, work: Path) -> tuple[Path, str]:
    """A convert_bench/mix_corpus corpus's JSONL (or its first ``clips`` lines, written to ``work``) and the media
    root its paths need."""
    src = corpus / "corpus.jsonl"
    if not clips:
        return src, str(corpus)
    with open(src, encoding="utf-8") as fh:
        lines = [line for _, line in zip(range(clips), fh, strict=False)]
    dst = work / "corpus.jsonl"
    dst.write_text("".join(lines), encoding="utf-8")
    return dst, str(corpus)


class TreeCPU:
    """CPU seconds of this process and every process descended from it while the tracker runs (a local Ray
    cluster's GCS, raylet and workers): the tree is sampled every ``interval`` seconds and each process counts with
    its last sample, so a worker that exits still counts (Ray's raylet does not wait for its workers, so their CPU
    never reaches anyone's ``children`` times: summing the live tree alone lost it, and could even go backwards).
    What a process spends after its last sample (under ``interval``) is lost. Use as a context manager."""

    def __init__(self, interval: float = 0.1) -> None:
        import threading

        self.interval = interval
        self._seen: dict[tuple[int, float], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeCPU:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                with p.oneshot():
                    t = p.cpu_times()
                    key = (p.pid, p.create_time())
            except psutil.Error:  # gone meanwhile: its last sample stands
                continue
            with self._lock:
                self._seen[key] = t.user + t.system  # its own CPU only: a reaped child is counted as itself

    def seconds(self) -> float:
        """CPU seconds so far (sampled now)."""
        self._sample()
        with self._lock:
            return sum(self._seen.values())


def same_dataset(a: Path, b: Path) -> bool:
    """Two converted datasets hold the same rows' summary (shard bytes aside: shard boundaries may differ) and a
    byte-identical rejects.jsonl."""
    from dataclasses import replace
    from typing import Any

    from audiodata.dataset import ConvertedDataset

    def rows_only(s: Any) -> Any:
        return replace(s, configs={k: replace(c, splits={n: replace(v, bytes=0) for n, v in c.splits.items()})
                                   for k, c in s.configs.items()})  # fmt: skip

    x, y = ConvertedDataset.open(a), ConvertedDataset.open(b)
    return bool(
        rows_only(x.summary) == rows_only(y.summary) and (a / "rejects.jsonl").read_bytes() == (b / "rejects.jsonl").read_bytes()
    )


def ray_corpus_missing(corpus: Path) -> int:
    """What a Ray benchmark returns before it starts: 0 when ``corpus`` has a corpus.jsonl and Ray imports, else 2
    with the line that says what to do."""
    if not (corpus / "corpus.jsonl").is_file():
        print(f"{corpus}: no corpus.jsonl; build one with: python benchmarks/convert_bench.py --corpus {corpus}")
        return 2
    try:
        import ray  # noqa: F401
    except ImportError:
        print("ray is not installed: pip install 'audiodata[ray]'")
        return 2
    return 0
