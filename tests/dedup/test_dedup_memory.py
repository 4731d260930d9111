"""The duplicate index is compact and bounded: a first-seen store of 16-byte digests that spills sorted runs
to disk past ``--dedup-memory``, with results identical to the in-memory path (lint, dedup, convert)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

import audiodata
from audiodata.cli.main import main
from audiodata.dedup import store
from audiodata.dedup.index import RecordDeduper, RecordInfo
from audiodata.dedup.store import BLOCK, ENTRY_BYTES, FANIN, FirstSeen
from audiodata.pipeline.dedup import dedup
from audiodata.pipeline.lint import lint
from tests.conftest import REPO, SAMPLE, tree_bytes

SPEECH = sorted((SAMPLE / "audio").glob("clip0*"))


# -- the store ---------------------------------------------------------------------------------------


def _stream(n: int, seed: int) -> list[bytes]:
    """Keys with repeats (40%), and runs of keys sharing their first 8 bytes (what the fences index)."""
    rng = random.Random(seed)
    keys = [rng.randbytes(16) for _ in range(n)]
    for i in range(0, 3 * BLOCK * 4, 3):
        keys[i + 1] = keys[i][:8] + rng.randbytes(8)
        keys[i + 2] = keys[i][:8] + rng.randbytes(8)
    return [rng.choice(keys[: i + 1]) if rng.random() < 0.4 else k for i, k in enumerate(keys)]


@pytest.mark.parametrize("memory", [0, 20_000, 1 << 30])
def test_first_seen_answers_like_a_dict_whatever_it_spilled(memory: int, tmp_path: Path):
    stream = _stream(12_000, seed=memory)
    plain: dict[bytes, bytes] = {}
    with FirstSeen(memory, tmp_path) as seen:
        for i, key in enumerate(stream):
            value = i.to_bytes(24, "little")
            want = plain.setdefault(key, value)
            assert seen.first(key, value) == (None if want is value else want), i
        assert len(seen) == len(plain)
        if memory < 1 << 20:
            assert seen.spills > 20 and seen.merges > 0 and seen.bloom is not None
            levels = {r.level for r in seen.runs}
            assert len(seen.runs) <= (FANIN - 1) * len(levels)  # merged: a lookup reads a few runs, not hundreds
        else:
            assert seen.spills == 0 and not seen.runs
        # everything is still found after the last spill
        assert all(seen.first(k, b"x" * 24) == plain[k] for k in stream[::7])


def test_spilled_runs_are_removed_on_close_and_when_collected(tmp_path: Path):
    seen = FirstSeen(0, tmp_path)
    for i in range(100):
        seen.first(i.to_bytes(16, "big"), bytes(24))
    [folder] = tmp_path.iterdir()
    assert folder.name.startswith(store.SPILL_PREFIX) and list(folder.glob("run-*"))
    seen.close()
    assert not folder.exists() and len(seen) == 0
    again = FirstSeen(0, tmp_path)
    for i in range(100):
        again.first(i.to_bytes(16, "big"), bytes(24))
    assert list(tmp_path.iterdir())
    del again
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_under_the_cap_however_many_keys(tmp_path: Path):
    cap = 2 << 20
    with FirstSeen(cap, tmp_path) as seen:
        rng = random.Random(5)
        for i in range(120_000):
            seen.first(rng.randbytes(16), bytes(24))
            if i % 5000 == 0:
                assert seen.nbytes <= cap
        assert seen.spills >= 8 and seen.nbytes <= cap


def test_entry_bytes_is_what_a_dict_entry_costs():
    """ENTRY_BYTES (what the cap divides by) is not below the resident cost of a key, its value and its slot."""
    rng = random.Random(1)
    tracemalloc.start()
    d = {rng.randbytes(16): rng.randbytes(24) for _ in range(50_000)}
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(d) == 50_000
    assert 0.8 * ENTRY_BYTES < used / len(d) <= ENTRY_BYTES


@pytest.mark.parametrize("memory", [0, 20_000, 1 << 30])
def test_first_many_answers_like_first(memory: int, tmp_path: Path):
    """A batch (repeats inside it and across batches, spilled or not) gets what key-by-key first() gives."""
    stream = _stream(12_000, seed=memory + 1)
    plain: dict[bytes, bytes] = {}
    want: dict[int, bytes] = {}
    for i, key in enumerate(stream):
        value = i.to_bytes(24, "little")
        if plain.setdefault(key, value) is not value:
            want[i] = plain[key]
    got: dict[int, bytes] = {}
    with FirstSeen(memory, tmp_path) as seen:
        rng = random.Random(7)
        i = 0
        while i < len(stream):
            n = rng.choice([1, 7, 500, 2500])
            keys = b"".join(stream[i : i + n])
            values = b"".join(k.to_bytes(24, "little") for k in range(i, min(i + n, len(stream))))
            got.update({i + k: v for k, v in seen.first_many(keys, values).items()})
            i += n
        assert (seen.spills > 0) == (memory < 1 << 20)
    assert got == want and len(want) > 3000


# -- the record deduper ------------------------------------------------------------------------------


def test_a_record_is_remembered_as_digests_not_objects():
    dd = RecordDeduper(near=False)
    for i in range(1000):
        dd.check(RecordInfo("f.jsonl", i, i + 1, "sft", [(f"path:/c/{i}.wav", None)], bytes(16), i.to_bytes(16, "big")))
    assert len(dd.index) == 2000  # two 16-byte digests per record, nothing else per record
    assert len(dd.clips) == 0 and dd.clips.by_hash == {}  # exact mode keeps nothing per clip
    assert dd.clusters == {} and dd.conflicts == []
    dd.close()


def test_where_survives_packing():
    dd = RecordDeduper(near=False, memory=0)
    first = RecordInfo("a b.jsonl", 2**40, None, "sft", [("h1", None)], bytes(16), bytes(16), reference=True)
    dd.check(first)
    for i in range(40):  # push it to disk
        dd.check(RecordInfo("x.jsonl", i, i, "sft", [(f"h{i + 2}", None)], bytes(16), bytes(16)))
    verdict = dd.check(RecordInfo("c.jsonl", -1, 0, "sft", [("h1", None)], bytes(16), bytes(16)))
    assert dd.index.spills
    assert verdict.duplicate_of is not None
    assert verdict.duplicate_of.where == {"source": "a b.jsonl", "index": 2**40, "reference": True}
    dd.close()


# -- lint, dedup and convert: a tiny cap gives the very report the default one does -------------------


@pytest.fixture
def spills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts spills of every duplicate index made during the test."""
    count = [0]
    original = FirstSeen.spill

    def counted(self: FirstSeen) -> None:
        count[0] += bool(self.mem)
        original(self)

    monkeypatch.setattr(FirstSeen, "spill", counted)
    return count


def text_corpus(root: Path, n: int = 1500, seed: int = 3) -> list[str]:
    """Two JSONL files in one folder (so an audio path names the same clip from either): SFT, DPO, KTO and
    text-only records, with copies (D001) and other answers to the same audio and prompt (D003) spread
    across both files."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    made: list[dict[str, Any]] = []
    for i in range(n):
        r = rng.random()
        if made and r < 0.12:
            rec = json.loads(json.dumps(rng.choice(made)))  # a copy
        elif made and r < 0.2:
            rec = json.loads(json.dumps(rng.choice(made)))
            if "conversations" in rec and "chosen" not in rec:
                rec["conversations"][-1]["value"] = f"another answer {i}"  # same audio and prompt
            elif "label" in rec:
                rec["label"] = not rec["label"]
        elif r < 0.3:
            rec = {
                "conversations": [{"from": "human", "value": "<audio>Summarise."}],
                "chosen": {"from": "gpt", "value": f"summary {i % 50}"},
                "rejected": {"from": "gpt", "value": "No idea."},
                "audios": [f"c/{i % 60}.wav"],
            }
        elif r < 0.4:
            rec = {
                "messages": [{"role": "user", "content": "<audio>What is said?"}, {"role": "assistant", "content": f"w{i % 40}"}],
                "label": rng.random() < 0.5,
                "audios": [f"k/{i % 70}.wav"],
            }
        elif r < 0.45:
            rec = {"instruction": f"Say {i % 30}.", "input": "", "output": "ok"}  # no audio: text-only identity
        else:
            clips = [f"a/{rng.randrange(400)}.wav" for _ in range(rng.choice((1, 1, 1, 2)))]
            rec = {
                "conversations": [
                    {"from": "human", "value": "<audio>" * len(clips) + rng.choice(("Transcribe.", "Who speaks?"))},
                    {"from": "gpt", "value": f"answer {rng.randrange(300)}"},
                ],
                "audios": clips,
            }
        made.append(rec)
    paths = [root / "a.jsonl", root / "b.jsonl"]
    half = n // 2
    paths[0].write_text("".join(json.dumps(r) + "\n" for r in made[:half]))
    paths[1].write_text("".join(json.dumps(r) + "\n" for r in made[half:]))
    return [str(p) for p in paths]


def test_lint_reports_the_same_with_the_index_on_disk(tmp_path: Path, spills: list[int]):
    files = text_corpus(tmp_path / "c")
    memory = lint(files, audio=False, num_workers=1).to_dict()
    assert spills[0] == 0
    on_disk = lint(files, audio=False, num_workers=2, dedup_memory=0).to_dict()
    assert spills[0] > 50
    assert on_disk == memory
    codes = memory["summary"]["by_code"]
    assert codes["D001"] > 100 and codes["D003"] > 50
    files_named = {f["message"].split(" of ")[-1].split(":")[0] for f in memory["findings"] if f["code"] == "D001"}
    assert len(files_named) == 2  # earlier records named in both files


def test_the_cli_takes_a_size_and_refuses_anything_else(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    files = text_corpus(tmp_path / "c", n=300)
    assert main(["lint", *files, "--no-audio", "--no-progress", "--dedup-memory", "1MiB", "--report-json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["by_code"]["D001"] > 10
    assert main(["lint", *files, "--no-audio", "--dedup-memory", "plenty"]) == 2
    assert "not a size" in capsys.readouterr().err


@pytest.fixture(scope="module")
def audio_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real speech, each clip several times with the same and other answers, in two files."""
    root = tmp_path_factory.mktemp("audio")
    records = []
    for p, answer in enumerate(["one", "two", "one", "three", "two", "four"]):  # copies and other answers
        for clip in SPEECH[p % 2 :]:
            turns = [{"role": "user", "content": "<audio>Transcribe."}, {"role": "assistant", "content": answer}]
            records.append({"messages": turns, "audios": [str(clip)]})
    half = len(records) // 2
    (root / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:half]))
    (root / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[half:]))
    return root


@pytest.mark.parametrize("mode", ["exact", "near"])
def test_dedup_reports_the_same_with_the_index_on_disk(audio_corpus: Path, mode: str, spills: list[int]):
    files = [str(audio_corpus / "a.jsonl"), str(audio_corpus / "b.jsonl")]
    memory = dedup(files, mode=mode, num_workers=1).to_dict()
    on_disk = dedup(files, mode=mode, num_workers=1, dedup_memory=0).to_dict()
    assert spills[0] > 0
    assert on_disk == memory
    assert memory["summary"]["duplicates"] > 10 and memory["summary"]["conflicts"] > 5


def test_convert_dedup_writes_the_same_with_the_index_on_disk(audio_corpus: Path, tmp_path: Path, spills: list[int]):
    files = [str(audio_corpus / "a.jsonl"), str(audio_corpus / "b.jsonl")]
    ref = audiodata.convert(files, tmp_path / "ref", num_workers=1, dedup="exact")
    out = audiodata.convert(files, tmp_path / "out", num_workers=1, dedup="exact", dedup_memory=0)
    assert spills[0] > 0
    assert out.records_duplicate == ref.records_duplicate > 10
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "ref")
    assert not list((tmp_path / "out" / ".audiodata").glob(f"{store.SPILL_PREFIX}*"))  # spilled into the output, removed


def test_a_killed_runs_spilled_index_is_removed_on_resume(audio_corpus: Path, tmp_path: Path):
    files = [str(audio_corpus / "a.jsonl")]

    class Stop(Exception):
        pass

    def stop(p: Any) -> None:
        if p.records >= 5:
            raise Stop

    out = tmp_path / "out"
    with pytest.raises(Stop):
        audiodata.convert(files, out, num_workers=1, dedup="exact", dedup_memory=0, max_shard_size=64 * 1024, on_progress=stop)
    stale = out / ".audiodata" / f"{store.SPILL_PREFIX}killed"  # what kill -9 would leave
    stale.mkdir()
    (stale / "run-000001.bin").write_bytes(bytes(40))
    audiodata.convert(files, out, num_workers=1, dedup="exact", dedup_memory=0, max_shard_size=64 * 1024)
    assert not stale.exists()


@pytest.mark.slow
def test_dedup_and_lint_suites_pass_with_every_index_spilling(tmp_path: Path):
    """The existing dedup, silence and lint-corpus tests, run with every index spilling every 16 keys."""
    count = tmp_path / "spills"
    env = {**os.environ, "SPILL_COUNT_FILE": str(count)}
    tests = ["tests/dedup/test_dedup.py", "tests/dedup/test_dedup_silence.py", "tests/pipeline/test_lint_corpus.py"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.spill_everything", "-p", "no:cacheprovider", *tests],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert int(count.read_text()) > 10


@pytest.mark.slow
def test_lint_memory_benchmark_is_flat_from_20k_to_100k_records(tmp_path: Path):
    """CI-sized run of benchmarks/lint_memory_bench.py: with a 4 MiB index both corpora spill, lint's peak
    memory hardly moves with 5x the records, and every planted copy and other answer is found."""
    out = tmp_path / "figures.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "lint_memory_bench.py"), "--parts", "lint", "--sizes", "20000,100000"]
    cmd += ["--dedup-memory", "4MiB", "--workers", "2", "--cache", str(tmp_path / "cache"), "--json", str(out)]
    run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    figures = json.loads(out.read_text())["lint"]
    assert figures["summary"]["default_main_peak_ratio"] < 1.15, run.stdout
    assert figures["summary"]["no-D_main_peak_ratio"] < 1.1, run.stdout
    for r in figures["runs"]:
        assert r["records"] in (20_000, 100_000)
        if r["rules"] == "default":
            assert r["spills"] > 0
            assert (r["D001"], r["D003"]) == (r["repeats"]["copy"], r["repeats"]["conflict"])
        else:
            assert r["D001"] == r["D003"] == 0
