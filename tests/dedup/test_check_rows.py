"""RecordDeduper.check_rows (text-only lint's parent: a chunk's rows in one loop) gives the verdicts check gives
record by record, with the index in memory and spilled to disk."""

from __future__ import annotations

import random

import pytest

from audiodata.dedup.index import RecordDeduper, RecordInfo, exact_digests


@pytest.mark.parametrize("memory", [64 * 2**20, 0], ids=["in-memory", "spilling"])
def test_check_rows_is_check_record_by_record(memory: int) -> None:
    rnd = random.Random(3)
    rows = []
    for i in range(3000):  # few distinct clips and texts: many copies and conflicts
        kind = rnd.choice(["sft", "sft", "dpo", "kto"])
        clips = [(f"path:/c/{rnd.randrange(40)}.wav", None) for _ in range(rnd.randrange(3))]
        prompt, response = bytes([rnd.randrange(5)]) * 16, bytes([rnd.randrange(4)]) * 16
        rows.append((i, None if i % 97 == 0 else i + 1, kind, clips, prompt, response))
    one = RecordDeduper(near=False, memory=memory, keep_report=True)
    expected = {}
    for i, line, kind, clips, prompt, response in rows:
        verdict = one.check(RecordInfo("a.jsonl", i, line, kind, clips, prompt, response))
        if verdict.duplicate_of is not None or verdict.conflict_with is not None:
            expected[i] = verdict
    many = RecordDeduper(near=False, memory=memory, keep_report=True)
    found = {}
    for start in range(0, len(rows), 250):  # chunks, as the workers send them
        marks, digests = bytearray(), bytearray()
        for _, _, kind, clips, prompt, response in rows[start : start + 250]:
            keys = exact_digests(kind, clips, prompt, response)
            marks.append(0 if keys is None else 1 if keys[1] is None else 2)
            if keys is not None:
                digests += keys[0] + (keys[1] or bytes(16))
        chunk = rows[start : start + 250]
        hits = many.check_rows("a.jsonl", [r[0] for r in chunk], [r[1] for r in chunk], marks, bytes(digests))
        found.update({chunk[k][0]: v for k, v in hits.items()})
    assert found == expected and len(expected) > 1000
    assert many.report() == one.report()
    assert (many.index.spills > 0) == (memory == 0)
