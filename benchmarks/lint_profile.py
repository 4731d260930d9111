#!/usr/bin/env python
"""Where lint's text-only time goes, stage by stage, against ``json.loads`` of the same lines in the same run.

lint_bench gives the whole: records/s of ``lint`` against reading and ``json.loads`` of every line. This
splits a record's cost into the stages of the one read path (``audiodata.pipeline.read.Parser`` and the
lint worker, ``audiodata.pipeline.lint.Analyser``) and the 14 text rules one by one, so the next speed-up
starts from numbers, not guesses. Every figure is CPU microseconds per record (``time.process_time``,
best of ``--repeat``, one process): a machine shared with other work inflates wall time far more than
this. The records are lint_bench's corpus (the same cache; built when missing), ``--records`` of them.

    stage            what it times
    json.loads       the floor: json.loads of every line (the baseline of the ratio column)
    read             cutting the file into lines (read_raw, the parent's share)
    parse            jsonstream.loads (orjson where it reads what json reads) and the record checks
    dialect+record   parse_record: the dialect's reader builds the canonical Record
    schema           S005: the compiled schema (jsonschema only for rejected records)
    rules            check_record: the enabled record rules (each one below)
    dedup keys       what the record deduper needs from the worker (conversation digests, audio identities)
    worker           the whole lint worker per record (Analyser: all of the above and the hand-off tuples)
    worker, ranges   what text-only lint's worker does: its records read from byte ranges of the file
                     (Analyser.chunk), the common shapes answered by the fused pass (audiodata/pipeline/fused.py:
                     parse, checks, exact-dedup digests and style from the parsed dict), the rest as above

Usage::

    python benchmarks/lint_profile.py                 # 5,000 records of lint_bench's 200k corpus
    python benchmarks/lint_profile.py --records 20000 --repeat 9
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from _shared import sibling, use_checkout

CORPUS_RECORDS = 200_000  # lint_bench's corpus this profile reads (its cache is shared)


def drain(results: Iterable[Any]) -> None:
    """Consume ``results`` keeping none of them."""
    deque(results, maxlen=0)


def _spans(path: str, n: int, size: int) -> list[tuple[int, int, int]]:
    """Byte ranges (start, end, first line) of about ``size`` bytes covering the first ``n`` lines of ``path``
    (the benchmark corpus has no blank lines): what text-only lint hands its workers."""
    out: list[tuple[int, int, int]] = []
    start = pos = 0
    line = 1
    with open(path, "rb") as fh:
        for k, text in enumerate(fh):
            if k >= n:
                break
            pos += len(text)
            if pos - start >= size:
                out.append((start, pos, line))
                start, line = pos, k + 2
    if pos > start:
        out.append((start, pos, line))
    return out


def best_us(fn: Callable[[], Any], n: int, repeat: int) -> float:
    """CPU microseconds per record of ``fn`` over ``n`` records, best of ``repeat``."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        fn()
        best = min(best, time.process_time() - t)
    return best / n * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--records", type=int, default=5000, help="records profiled (default 5000)")
    p.add_argument("--repeat", type=int, default=7, help="runs per stage, the best counts (default 7)")
    args = p.parse_args(argv)
    use_checkout(strict=True)
    from audiodata.dedup.index import conversation_keys
    from audiodata.pipeline import lint as lint_mod
    from audiodata.pipeline.options import ConvertOptions
    from audiodata.pipeline.read import Parser, ReadSettings, read_raw
    from audiodata.readers.dialects import dialect_of, parse_record
    from audiodata.readers.dialects.common import ParseContext
    from audiodata.readers.jsonstream import parse_text
    from audiodata.readers.sources import expand_inputs
    from audiodata.records import SourceLoc
    from audiodata.rules import engine
    from audiodata.rules.registry import select
    from audiodata.rules.schema import SchemaCheck

    bench = sibling("lint_bench")
    meta = bench.build_text_corpus(CORPUS_RECORDS, 2, bench.load_convert_bench())
    path = meta["parts"][0]["path"]
    opts = ConvertOptions()
    files = expand_inputs([path], None, None, None, None, False, False, None).files
    enabled = frozenset(select(None, None))
    raw = []
    for _, _, item in read_raw(files, opts.max_record_bytes):
        if len(raw) >= args.records:
            break
        raw.append(item)
    n, f = len(raw), files[0]
    lines = [item.text or "" for item in raw]
    parsed = [parse_text(item, opts.max_record_bytes) for item in raw]
    ctxs = [(x.obj, ParseContext(f.spec, SourceLoc(f.display, x.index, x.line), f.media_root)) for x in parsed]
    records = [r for r, _ in (parse_record(o, c) for o, c in ctxs) if r is not None]
    check = SchemaCheck(f.spec)
    src = SourceLoc(f.display, 0, 1)
    settings = ReadSettings(opts.max_record_bytes, None, None, enabled)
    # as text-only lint sets it up: the transcript style profile on (--task auto), raw ASR corpora read as lint reads them
    task = lint_mod.LintTask(files, settings, None, False, True, None, opts.excluded, opts.task, opts.longform(enabled))
    jobs = [(k, 0, x.index, x.line, x.text) for k, x in enumerate(raw)]
    batches = [jobs[i : i + lint_mod.TEXT_BATCH] for i in range(0, n, lint_mod.TEXT_BATCH)]
    analyser = lint_mod.Analyser(task)
    spans = _spans(path, n, lint_mod.RANGE_BYTES)
    identity = lint_mod._ref_identity
    parser = Parser(files, task.read)

    def read() -> None:
        for k, _ in enumerate(read_raw(files, opts.max_record_bytes)):
            if k + 1 >= n:
                break

    # each stage's results are dropped as they come (drain): results kept alive would time the collector too
    stages: list[tuple[str, Callable[[], Any]]] = [
        ("json.loads", lambda: drain(json.loads(t) for t in lines)),
        ("read", read),
        ("parse", lambda: drain(parse_text(item, opts.max_record_bytes) for item in raw)),
        ("dialect+record", lambda: drain(parse_record(o, c) for o, c in ctxs)),
        ("schema", lambda: drain(check(o, dialect_of(o, None) or "", src) for o, _ in ctxs if isinstance(o, dict))),
        ("rules", lambda: drain(engine.check_record(r, enabled) for r in records)),
        ("dedup keys", lambda: drain((conversation_keys(r), [identity(r, a.kind, a.value) for a in r.audios]) for r in records)),
        ("read stage", lambda: drain(parser(k, 0, item) for k, item in enumerate(raw))),
        ("worker", lambda: drain(analyser(b) for b in batches)),
        ("worker, ranges", lambda: drain(analyser.chunk(("range", 0, a, b, line)) for a, b, line in spans)),
    ]
    rules = [(c.__name__, c) for c in engine._checks("record", enabled)]
    print(f"{n:,} records of {path}; CPU us per record, best of {args.repeat}; ratio: stage / json.loads (same run)")
    floor = None
    print(f"{'stage':<22} {'us/record':>10} {'x json.loads':>13}")
    for name, fn in stages:
        us = best_us(fn, n, args.repeat)
        floor = floor or us
        print(f"{name:<22} {us:>10.2f} {us / floor:>13.2f}")
    print("record rules, one by one:")
    for name, rule in rules:
        us = best_us(lambda rule=rule: drain(list(rule(r)) for r in records), n, args.repeat)  # type: ignore[misc]
        print(f"  {name:<20} {us:>10.2f} {us / (floor or us):>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
