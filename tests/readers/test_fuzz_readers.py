"""A seeded mutation fuzzer over every reader: real records in, hostile bytes out, nothing may break.

Records come from ``sample_data/`` (every dialect and layout it holds) and from the peer-format
tests (``tests/export/test_peer_llamafactory.py``'s LLaMA-Factory v1 rows, ``tests/export/test_peer_msswift.py``'s
ms-swift rows when ms-swift is installed, ``tests/rules/test_lint_rules.py``'s sharegpt/DPO builders).
Each case draws a few, may replace a random field by a random JSON value (huge integers, NaN,
lone surrogates, deep lists, wrong types), writes them as JSONL, a JSON array or a pretty array,
maybe gzipped, then mutates the bytes: flips, truncation, inserted 5000-digit numbers, nesting
100k deep, invalid UTF-8, NULs, BOMs, stray brackets, whitespace runs, UTF-16/32 re-encoding,
corrupt or bomb gzip streams.

Every case goes through the real read stage alone (``read_raw`` + ``Parser``, timed: a hang is a
failure) and then all cases of a batch through ``convert`` (2 workers), ``lint`` (audio checked,
``--fix`` writing repaired copies) and ``dedup``, in a child process whose peak RSS is bounded. What must hold:

- no traceback, no hang (``CASE_SECONDS`` per case read, ``BATCH_SECONDS`` per batch), memory
  under ``RSS_GROWTH`` over the child's baseline;
- accounting: every record the read stage yields is written or rejected by convert, per file, and
  lint and dedup count the same records;
- lint and convert agree on which records are errors (the located set of lint errors is the
  set convert rejects);
- a readable plain UTF-8 file never yields a file-level finding (F004/F008): breaking a record
  is that record's finding.

Default run: ``DEFAULT_BATCHES`` fixed batches (a few seconds). Longer, on demand::

    AUDIODATA_FUZZ_SECONDS=600 pytest tests/readers/test_fuzz_readers.py   # new seeds until 10 minutes are spent
    AUDIODATA_FUZZ_SEED=12345 ...                                  # start from another seed

A failure names its seeds; ``python -m tests.readers.test_fuzz_readers OUT_DIR SEED...`` rebuilds and runs
exactly those cases (the files stay in OUT_DIR to look at).
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import time
import traceback
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
CASES_PER_BATCH = 24
DEFAULT_BATCHES = 1
CASE_SECONDS = 20.0  # one case through the read stage (milliseconds normally; generous for a loaded machine)
BATCH_SECONDS = 300  # one batch in the child, all of it
RSS_GROWTH = 768 * 2**20  # peak RSS over the child's baseline after imports


# -- seeds: real records ------------------------------------------------------------------------------------------------


def sample_records() -> list[Any]:
    """Every record of sample_data (JSONL lines, JSON array elements), valid or deliberately broken."""
    out: list[Any] = []
    for path in sorted(SAMPLE.rglob("*.json*")):
        if path.name == "dataset_info.json":
            continue
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        text = data.decode("utf-8", "replace")
        try:
            value = json.loads(text)
            out.extend(value if isinstance(value, list) else [value])
        except ValueError:
            for line in text.splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append(line)  # a deliberately broken sample line: kept as text
    return out


def peer_records() -> list[Any]:
    """Rows in the peers' own forms, from the peer tests (each cites where its peer defines the form)."""
    out: list[Any] = []
    try:
        from tests.rules.test_lint_rules import dpo, sft, swift_pair

        out += [sft(), dpo(), swift_pair(), sft(kto_tag=True), sft(images=["p.png"], user="<audio><image>x")]
    except (ImportError, pytest.skip.Exception):
        pass
    try:
        from tests.export.test_peer_llamafactory import V1_CASES

        out += [row for row, _, _ in V1_CASES]
    except (ImportError, pytest.skip.Exception):
        pass
    with _swift_stubbed():
        try:
            from tests.export.test_peer_msswift import CASES

            out += [c.row for c in CASES]
        except (ImportError, pytest.skip.Exception):
            pass
    return out


@contextlib.contextmanager
def _swift_stubbed() -> Iterator[None]:
    """The ms-swift test module's rows without importing ms-swift (20 s, and absent on some machines):
    the names it imports at the top are stubbed while it loads; only its row data is used here."""
    names = {
        "swift": {},
        "swift.dataset": {},
        "swift.dataset.preprocessor": {},
        "swift.dataset.dataset_syntax": {"DatasetSyntax": object},
        "swift.template": {},
        "swift.template.template_inputs": {"TemplateInputs": object},
        "swift.template.vision_utils": {"_check_path": None},
    }
    added = [n for n in names if n not in sys.modules]
    for n in added:
        sys.modules[n] = types.SimpleNamespace(**names[n], __path__=[])  # type: ignore[assignment]
    try:
        yield
    finally:
        for n in added:
            sys.modules.pop(n, None)


def corpus_media(folder: Path) -> None:
    """The audio the seed records name, under the names they use, in the case folder."""
    shutil.copytree(SAMPLE / "audio", folder / "audio")
    shutil.copytree(SAMPLE / "llamafactory" / "media", folder / "media")
    clips = {
        "a.wav": "clip01_22k.wav",
        "b.wav": "clip02_22k.wav",
        "a.flac": "clip07_16k.flac",
        "b.flac": "clip08_16k.flac",
        "c.wav": "clip01_22k.wav",
        "d.mp3": "clip14_24k.mp3",
        "data/clip07_16k.flac": "clip07_16k.flac",
        "data/clip08_16k.flac": "clip08_16k.flac",
    }
    for name, clip in clips.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / "audio" / clip, folder / name)


# -- mutations ------------------------------------------------------------------------------------------------------------

HUGE = "1" * 5000


def random_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type, with the edge cases readers and dialect code trip on."""
    pick = rng.randrange(18 if depth < 3 else 13)
    return [
        lambda: None,
        lambda: rng.choice([True, False]),
        lambda: rng.choice([0, -1, 2**63, -(2**64), 10**400]),
        lambda: rng.choice([0.5, -0.0, 1e308, math.nan, math.inf, -math.inf]),
        lambda: "",
        lambda: rng.choice(["<audio>", "<audio><audio>", "<image>", "<video>", "<|AUDIO|>"]),
        lambda: rng.choice(["audio/clip01_22k.wav", "../../etc/passwd", "/dev/zero", "missing.wav", "a.wav\x00.wav"]),
        lambda: rng.choice(["https://example.com/a.wav", "data:audio/wav;base64,AAAA", "file:///nowhere.wav"]),
        lambda: rng.choice(["\ud800", "a\udfffb", "\ufeff", "\x00", "\u202e", "𝄞", "\r\n"]),
        lambda: "x" * rng.choice([1, 1000, 100_000]),
        lambda: rng.choice(["human", "gpt", "user", "assistant", "system", "tool", "narrator"]),
        lambda: rng.choice(["true", "false", "1", "null"]),
        lambda: rng.choice([[], {}]),
        lambda: [random_value(rng, depth + 1) for _ in range(rng.randint(1, 4))],
        lambda: {rng.choice(["from", "value", "role", "content", "type", "path", "bytes", "x"]): random_value(rng, depth + 1)},
        lambda: nested(rng.choice([50, 300])),  # deeper is the byte mutation _deep (the encoder here recurses)
        lambda: {"bytes": rng.choice([[1, 2, 300], "@@", [-1]]), "path": random_value(rng, depth + 1)},
        lambda: {"array": rng.choice([[0.0, math.nan], [1e9], "x"]), "sampling_rate": rng.choice([16000, 0, -1, 1e99])},
    ][pick]()


def nested(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field path in a record (not too deep)."""
    out = [here] if here else []
    if len(here) < 6 and isinstance(value, dict):
        for k, v in value.items():
            out += paths(v, (*here, k))
    elif len(here) < 6 and isinstance(value, list):
        for i, v in enumerate(value[:8]):
            out += paths(v, (*here, i))
    return out


def mutate_record(rng: random.Random, rec: Any) -> Any:
    """One field (or the record) replaced by a random value, or a key renamed or dropped."""
    spots = paths(rec)
    if not spots or rng.random() < 0.1:
        return random_value(rng)
    spot = rng.choice(spots)
    parent = rec
    for key in spot[:-1]:
        parent = parent[key]
    last = spot[-1]
    action = rng.random()
    if isinstance(parent, dict) and action < 0.15:
        del parent[last]
    elif isinstance(parent, dict) and action < 0.25:
        key = rng.choice(["audio", "audios", "messages", "conversations", "chosen", "label", "kto_tag", "id"])
        parent[key] = parent.pop(last)
    else:
        parent[last] = random_value(rng)
    return rec


def serialise(rng: random.Random, records: list[Any]) -> tuple[bytes, str]:
    """The records as JSONL, a compact or a pretty JSON array; and the file suffix."""
    def dump(r: Any, indent: int | None = None) -> str:
        if isinstance(r, str):
            return r  # a broken sample line, as it was
        return json.dumps(r, ensure_ascii=rng.random() < 0.5, indent=indent)

    layout = rng.choice(["jsonl", "jsonl", "array", "pretty"])
    if layout == "jsonl":
        return ("\n".join(dump(r) for r in records) + "\n").encode("utf-8", "surrogatepass"), ".jsonl"
    indent = 2 if layout == "pretty" else None
    sep = ",\n" if indent else ", "
    return ("[" + sep.join(dump(r, indent) for r in records) + "]\n").encode("utf-8", "surrogatepass"), ".json"


def at(rng: random.Random, data: bytes) -> int:
    return rng.randint(0, len(data))


def insert(data: bytes, i: int, piece: bytes) -> bytes:
    return data[:i] + piece + data[i:]


def _flip(rng: random.Random, d: bytes) -> bytes:
    if not d:
        return d
    b = bytearray(d)
    for _ in range(rng.randint(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    return bytes(b)


def _huge_number(rng: random.Random, d: bytes) -> bytes:
    colons = [i + 1 for i in range(len(d)) if d[i : i + 1] == b":"]
    i = rng.choice(colons) if colons else at(rng, d)
    return insert(d, i, b" " + b"9" * rng.choice([4301, 5000, 50_000]) + b",")


def _deep(rng: random.Random, d: bytes) -> bytes:
    n = rng.choice([1000, 100_000])
    piece = b"[" * n + (b"]" * n if rng.random() < 0.5 else b"")
    return insert(d, at(rng, d), piece)


def _bad_utf8(rng: random.Random, d: bytes) -> bytes:
    return insert(d, at(rng, d), rng.choice([b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80" * 9]))


def _nul(rng: random.Random, d: bytes) -> bytes:
    return insert(d, at(rng, d), b"\x00" * rng.randint(1, 4))


def _bom(rng: random.Random, d: bytes) -> bytes:
    bom = rng.choice([b"\xef\xbb\xbf", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"])
    return insert(d, 0 if rng.random() < 0.7 else at(rng, d), bom)


def _structural(rng: random.Random, d: bytes) -> bytes:
    for _ in range(rng.randint(1, 5)):
        d = insert(d, at(rng, d), rng.choice([b"{", b"}", b"[", b"]", b",", b'"', b":", b"\\", b"\n", b"\r", b"}}]"]))
    return d


def _cut(rng: random.Random, d: bytes) -> bytes:
    if len(d) < 2:
        return d
    i, j = sorted(rng.sample(range(len(d)), 2))
    return d[:i] + d[j:] if rng.random() < 0.5 else d[: rng.randrange(len(d))]


def _copy(rng: random.Random, d: bytes) -> bytes:
    if len(d) < 2:
        return d
    i, j = sorted(rng.sample(range(len(d)), 2))
    return insert(d, at(rng, d), d[i:j])


def _whitespace(rng: random.Random, d: bytes) -> bytes:
    return insert(d, at(rng, d), rng.choice([b" ", b"\n", b"\r\n", b"\t", b", "]) * rng.choice([10, 100_000]))


def _reencode(rng: random.Random, d: bytes) -> bytes:
    text = d.decode("utf-8", "replace")
    return text.encode(rng.choice(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]))


MUTATIONS = [_flip, _huge_number, _deep, _bad_utf8, _nul, _bom, _structural, _cut, _copy, _whitespace, _reencode]
WEIGHTS = [4, 2, 2, 2, 2, 1, 3, 3, 1, 1, 0.3]
_BOMB: bytes | None = None


def bomb_member() -> bytes:
    """40 MiB of spaces as one gzip member (about 40 kB): past the 16 MiB after which the ratio counts."""
    global _BOMB
    if _BOMB is None:
        _BOMB = gzip.compress(b" " * (40 * 2**20), 9)
    return _BOMB


def gzip_mutation(rng: random.Random, packed: bytes) -> bytes:
    """Corrupt a gzip stream: flipped bytes (CRC/inflate errors), truncation, trailing junk, a bomb member."""
    pick = rng.randrange(5)
    if pick == 0:
        return _flip(rng, packed)
    if pick == 1:
        return packed[: rng.randrange(max(len(packed), 1))]
    if pick == 2:
        return packed + rng.choice([b"junk", b"\x1f\x8b\x08\x00", bytes(rng.randrange(256) for _ in range(64))])
    if pick == 3:
        return packed + bomb_member()
    return packed + gzip.compress(b"\n" * rng.choice([10, 2**20]))  # a second member: valid gzip


def build_case(seed: int, pool: list[Any], folder: Path) -> tuple[Path, list[str]]:
    """The file of case ``seed`` (written under ``folder``) and what was done to it."""
    rng = random.Random(seed)
    records = [copy.deepcopy(rng.choice(pool)) for _ in range(rng.randint(1, 6))]
    done: list[str] = []
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        k = rng.randrange(len(records))
        records[k] = mutate_record(rng, records[k])
        done.append(f"field of record {k}")
    data, suffix = serialise(rng, records)
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        fn = rng.choices(MUTATIONS, WEIGHTS)[0]
        data = fn(rng, data)
        done.append(fn.__name__.strip("_"))
    if rng.random() < 0.3:
        suffix += ".gz"
        data = gzip.compress(data, 6)
        if rng.random() < 0.6:
            data = gzip_mutation(rng, data)
            done.append("gzip")
    path = folder / f"case{seed}{suffix}"
    path.write_bytes(data)
    return path, done


# -- one batch, in a child process ------------------------------------------------------------------------------------------


def rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_batch(folder: Path, seeds: list[int]) -> dict[str, Any]:
    """Build the cases, read each alone, convert and lint them all; the facts the parent judges."""
    import pyarrow.parquet as pq

    import audiodata
    from audiodata.pipeline.dedup import dedup
    from audiodata.pipeline.lint import lint
    from audiodata.pipeline.read import Parser, ReadSettings, read_raw
    from audiodata.privacy import public_path
    from audiodata.readers.sources import expand

    cases = folder / "cases"
    cases.mkdir(parents=True)
    corpus_media(cases)
    pool = sample_records() + peer_records()
    base = rss()
    made: dict[str, dict[str, Any]] = {}
    for seed in seeds:
        path, done = build_case(seed, pool, cases)
        files = expand([str(path)], media_root=str(cases))
        # as convert and lint name it: the file under the folder given to them (audiodata/privacy.py names an
        # absolutely typed input relative to its parent folder)
        display = os.path.join(public_path(str(cases)), os.path.relpath(path, cases))
        parse = Parser(files, ReadSettings(512 * 2**20))
        start = time.monotonic()
        print(f"reading case {seed}", flush=True)
        items = [parse(seq, n, item) for seq, n, item in read_raw(files, 512 * 2**20)]
        made[display] = {
            "seed": seed,
            "done": done,
            "seconds": time.monotonic() - start,
            "read": len(items),
            "indices": sorted(p.source.index for p in items),
            "file_level": sorted({f.code for p in items for f in p.findings if f.code in ("F004", "F008", "F009")}),
            "gz": path.name.endswith(".gz"),
        }
    print("converting", flush=True)
    out = folder / "out"
    result = audiodata.convert([str(cases)], out, media_root=str(cases), num_workers=2)
    written: Counter[str] = Counter()
    for shard in json.loads((out / "manifest.json").read_text())["shards"]:
        for src in pq.read_table(out / shard["file"], columns=["source"]).column("source").to_pylist():
            written[src["file"]] += 1
    rejected: Counter[str] = Counter()
    reject_at: set[tuple[str, int]] = set()
    for line in (out / "rejects.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        rejected[entry["source"]] += 1
        reject_at.add((entry["source"], entry["index"]))
    print("linting", flush=True)
    report = lint([str(cases)], media_root=str(cases), num_workers=1, fix=folder / "fixed").to_dict()  # --fix copies them
    lint_at = {(f["source"], f["index"]) for f in report["findings"] if f["severity"] == "error" and f["index"] is not None}
    print("dedup", flush=True)
    deduped = dedup([str(cases)], mode="exact", media_root=str(cases), num_workers=1)
    return {
        "cases": made,
        "records_read": result.records_read,
        "records_written": result.records_written,
        "records_rejected": result.records_rejected,
        "written": dict(written),
        "rejected": dict(rejected),
        "convert_errors": sorted(reject_at),
        "lint_errors": sorted(lint_at),
        "lint_records": report["summary"]["records"],
        "dedup_records": deduped.records,
        "rss_growth": rss() - base,
        "rss_children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def child(folder: Path, seeds: list[int]) -> int:
    try:
        facts = run_batch(folder, seeds)
    except BaseException:
        print("TRACEBACK", flush=True)
        traceback.print_exc(file=sys.stdout)
        return 1
    (folder / "facts.json").write_text(json.dumps(facts))
    return 0


# -- the parent: run batches, judge them ------------------------------------------------------------------------------------


def run_child(tmp: Path, seeds: list[int]) -> tuple[dict[str, Any] | None, str]:
    folder = tmp / f"batch{seeds[0]}-{len(seeds)}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    cmd = [sys.executable, "-m", "tests.readers.test_fuzz_readers", str(folder), *map(str, seeds)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=BATCH_SECONDS)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return None, f"hang: the batch ran past {BATCH_SECONDS} s; last step: {out.strip().splitlines()[-1:]}"
    if proc.returncode != 0:
        return None, proc.stdout[-6000:] + proc.stderr[-3000:]
    return json.loads((folder / "facts.json").read_text()), ""


def judge(facts: dict[str, Any]) -> list[str]:
    """Every promise the docstring lists, as the problems found (empty: all hold)."""
    bad: list[str] = []
    cases = facts["cases"]
    for display, c in cases.items():
        tag = f"seed {c['seed']} ({', '.join(c['done']) or 'no mutation'})"
        if c["seconds"] > CASE_SECONDS:
            bad.append(f"{tag}: reading took {c['seconds']:.1f} s")
        got = facts["written"].get(display, 0) + facts["rejected"].get(display, 0)
        if got != c["read"]:
            bad.append(f"{tag}: read {c['read']} records, convert wrote or rejected {got}")
        if len(set(c["indices"])) != len(c["indices"]):
            bad.append(f"{tag}: two records share an index: {c['indices']}")
        plain = not c["gz"] and not any(d in ("reencode", "bom") for d in c["done"])
        looks_wide = "nul" in c["done"] and c["file_level"] == ["F009"]  # NULs at the start can read as UTF-16/32
        if plain and c["file_level"] and not looks_wide:
            bad.append(f"{tag}: a readable plain file gave a file-level finding {c['file_level']}")
    total = sum(c["read"] for c in cases.values())
    if (facts["records_read"], facts["lint_records"], facts["dedup_records"]) != (total, total, total):
        counts = f"convert read {facts['records_read']}, lint {facts['lint_records']}, dedup {facts['dedup_records']}"
        bad.append(f"{counts}, the read stage {total}")
    if facts["records_read"] != facts["records_written"] + facts["records_rejected"]:
        bad.append("convert: read != written + rejected")
    lint_at = {tuple(x) for x in facts["lint_errors"]}
    convert_at = {tuple(x) for x in facts["convert_errors"]}
    if lint_at != convert_at:
        seeds = {cases[f]["seed"] for f, _ in lint_at ^ convert_at if f in cases}
        bad.append(f"lint and convert disagree (seeds {sorted(seeds)}): lint only {sorted(lint_at - convert_at)[:5]}, "
                   f"convert only {sorted(convert_at - lint_at)[:5]}")  # fmt: skip
    if facts["rss_growth"] > RSS_GROWTH:
        bad.append(f"peak RSS grew by {facts['rss_growth'] >> 20} MiB (bound {RSS_GROWTH >> 20} MiB)")
    return bad


def check(tmp: Path, seeds: list[int]) -> None:
    facts, why = run_child(tmp, seeds)
    if facts is None:  # find the case: each alone
        culprits = []
        for s in seeds:
            one, one_why = run_child(tmp, [s])
            if one is None:
                culprits.append(f"seed {s}: {one_why[-3000:]}")
        raise AssertionError("a batch failed:\n" + (why if not culprits else "\n".join(culprits)))
    problems = judge(facts)
    assert not problems, "\n".join(problems)


def start_seed() -> int:
    return int(os.environ.get("AUDIODATA_FUZZ_SEED", "0"))


@pytest.mark.parametrize("batch", range(DEFAULT_BATCHES))
def test_fuzz_readers(batch: int, tmp_path: Path) -> None:
    first = start_seed() + batch * CASES_PER_BATCH
    check(tmp_path, list(range(first, first + CASES_PER_BATCH)))


@pytest.mark.skipif(not os.environ.get("AUDIODATA_FUZZ_SECONDS"), reason="set AUDIODATA_FUZZ_SECONDS to fuzz longer")
def test_fuzz_readers_for_as_long_as_asked(tmp_path: Path) -> None:
    deadline = time.monotonic() + float(os.environ["AUDIODATA_FUZZ_SECONDS"])
    first = start_seed() + DEFAULT_BATCHES * CASES_PER_BATCH
    while time.monotonic() < deadline:
        check(tmp_path, list(range(first, first + CASES_PER_BATCH)))
        first += CASES_PER_BATCH


if __name__ == "__main__":
    sys.exit(child(Path(sys.argv[1]), [int(s) for s in sys.argv[2:]]))
