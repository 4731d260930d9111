"""The clip index on flat arrays: fingerprints come back as stored, buckets give every sharing clip once,
and resolving a stream gives what the plain definition (every earlier clip, one by one) gives."""

from __future__ import annotations

import numpy as np
import pytest

from audiodata.dedup import index as dedup_index
from audiodata.dedup import prints
from audiodata.dedup.fingerprint import Fingerprint, similarity
from audiodata.dedup.index import MAX_SKETCH_DISTANCE, MAX_SKETCH_DISTANCE_ONE_BAND, NEAR_THRESHOLD, ClipIndex
from audiodata.dedup.prints import Buckets, PrintStore


def _fp(rng: np.random.Generator, n: int | None = None) -> Fingerprint:
    n = int(rng.integers(1, 400)) if n is None else n
    bits = rng.integers(0, 1 << 32, n, dtype=np.uint32)
    voiced = rng.random(n) < 0.8
    return Fingerprint(bits, voiced, rng.integers(0, 1 << 16, 16, dtype=np.uint16), float(n) * 0.016)


def _near(rng: np.random.Generator, fp: Fingerprint, ber: float, sketch_bits: int) -> Fingerprint:
    mask = np.packbits(rng.random(32 * fp.bits.size) < ber, bitorder="little").view("<u4")
    sketch = fp.sketch.copy()
    for bit in rng.choice(256, sketch_bits, replace=False).tolist():
        sketch[bit // 16] ^= np.uint16(1 << (bit % 16))
    return Fingerprint(fp.bits ^ mask, fp.voiced, sketch, fp.seconds)


@pytest.mark.parametrize("chunk", [prints.CHUNK_FRAMES, 1000])
def test_print_store_gives_back_what_was_added(monkeypatch: pytest.MonkeyPatch, chunk: int):
    monkeypatch.setattr(prints, "CHUNK_FRAMES", chunk)  # 1000: many chunks, clips never split across them
    monkeypatch.setattr(prints, "FIRST_CHUNK", min(chunk, prints.FIRST_CHUNK))
    rng = np.random.default_rng(1)
    store = PrintStore()
    added = [None if k % 7 == 3 else _fp(rng, int(rng.integers(1, 700))) for k in range(3000)]
    for k, fp in enumerate(added):
        assert store.add(fp) == k
    assert len(store) == len(added)
    for k, fp in enumerate(added):
        got = store.get(k)
        if fp is None:
            assert got is None
            continue
        assert got is not None
        assert np.array_equal(got.bits, fp.bits) and got.bits.dtype == np.uint32
        assert np.array_equal(got.voiced, fp.voiced) and got.voiced.dtype == bool
        assert np.array_equal(got.sketch, fp.sketch) and got.phases == ()
        assert got.seconds == pytest.approx(fp.seconds)


def test_print_store_costs_the_frames_not_objects():
    rng = np.random.default_rng(2)
    store = PrintStore()
    frames = 0
    for _ in range(20_000):
        fp = _fp(rng, int(rng.integers(60, 320)))  # 1-5 s clips
        frames += fp.bits.size
        store.add(fp)
    per_clip = store.nbytes / 20_000
    assert per_clip < 4.2 * frames / 20_000 + 60  # 4 bytes of bits and a bit of voicing a frame, 46 bytes of columns


def test_buckets_give_each_sharing_clip_once_ascending_and_skip_full_ones():
    b = Buckets(3, 4)  # 3 tables of 16 buckets: table t's keys are t * 16 + 0..15

    def keys(*values: int) -> np.ndarray:
        return np.array([t * 16 + v for t, v in enumerate(values)])

    b.add(keys(1, 2, 3), 0)
    b.add(keys(2, 2, 4), 1)
    b.add(keys(9, 9, 9), 2)
    for cid in range(3, 10):
        b.add(keys(7, 8, 8), cid)
    assert b.candidates(keys(0, 2, 0), 100).tolist() == [0, 1]  # one bucket, two clips
    assert b.candidates(keys(2, 0, 3), 100).tolist() == [0, 1]  # a clip found in two tables, given once
    assert b.candidates(keys(2, 9, 4), 100).tolist() == [1, 2]
    assert b.candidates(keys(7, 2, 9), 5).tolist() == [0, 1, 2]  # bucket 7 of table 0 holds 7 clips: not tried
    assert b.candidates(keys(7, 0, 0), 7).tolist() == list(range(3, 10))  # at the limit: tried, newest to oldest
    assert b.candidates(keys(5, 5, 5), 100).tolist() == []
    assert b.candidates(keys(3, 3, 0), 100).tolist() == []  # clip 0 has 3 in table 2 only: another bucket
    b.add(keys(7, 0, 0), 10)
    assert b.candidates(keys(7, 15, 15), 100).tolist() == list(range(3, 11))
    assert sorted(b.sizes()) == [1] * 9 + [2, 7, 7, 8]


def _reference_resolve(stream: list[tuple[str, Fingerprint]]) -> list[tuple[int, str | None, float | None]]:
    """The definition, one earlier clip at a time: an exact hash match first; else, among earlier stored
    clips sharing an LSH key (bucket not over MAX_BUCKET) within the sketch distance (a tighter one when
    they share one 16-bit sketch band only), the most similar at or above the threshold, the earliest on a tie."""
    by_hash: dict[str, int] = {}
    stored: list[Fingerprint] = []
    members: dict[int, int] = {}
    out: list[tuple[int, str | None, float | None]] = []
    for h, fp in stream:
        if h in by_hash:
            out.append((by_hash[h], "exact", 1.0))
            continue
        best, best_sim = None, -1.0
        mine = dedup_index._keys(fp).tolist()
        for cid, other in enumerate(stored):
            if not any(members[k] <= dedup_index.MAX_BUCKET for k in set(mine) & set(dedup_index._keys(other).tolist())):
                continue
            shared = [b for b, v in enumerate(fp.sketch) if other.sketch[b] == v]
            distance = int(np.bitwise_count(fp.sketch ^ other.sketch).sum())
            if distance > MAX_SKETCH_DISTANCE or (len(shared) == 1 and distance > MAX_SKETCH_DISTANCE_ONE_BAND):
                continue
            sim = similarity(fp, other)
            if sim >= NEAR_THRESHOLD and sim > best_sim:
                best, best_sim = cid, sim
        if best is not None:
            by_hash.setdefault(h, best)
            out.append((best, "near", round(best_sim, 4)))
            continue
        cid = len(stored)
        stored.append(fp)
        by_hash.setdefault(h, cid)
        for k in dedup_index._keys(fp).tolist():
            members[k] = members.get(k, 0) + 1
        out.append((cid, None, None))
    return out


def test_resolve_is_the_plain_definition(monkeypatch: pytest.MonkeyPatch):
    """A stream with exact copies, near copies of every closeness (some beyond the threshold, some beyond
    the sketch filter), chains of copies, and a crowded bucket gives the reference's ids and matches."""
    monkeypatch.setattr(dedup_index, "MAX_BUCKET", 6)
    rng = np.random.default_rng(3)
    stream: list[tuple[str, Fingerprint]] = []
    crowded = rng.integers(0, 2, dedup_index.KEY_BITS, dtype=np.uint8)
    for i in range(400):
        u = rng.random()
        if stream and u < 0.1:
            stream.append(stream[int(rng.integers(len(stream)))])
        elif stream and u < 0.45:
            _, parent = stream[int(rng.integers(len(stream)))]
            fp = _near(rng, parent, float(rng.uniform(0.0, 0.25)), int(rng.integers(0, 80)))
            stream.append((f"n{i}", fp))
        else:
            fp = _fp(rng)
            if u > 0.9:  # fills one bucket past MAX_BUCKET: the bits of table 5's key set alike
                bits = np.unpackbits(fp.sketch.view(np.uint8), bitorder="little")
                bits[dedup_index._POSITIONS[5]] = crowded
                fp = Fingerprint(fp.bits, fp.voiced, np.packbits(bits, bitorder="little").view("<u2"), fp.seconds)
            stream.append((f"d{i}", fp))
    index = ClipIndex()
    got = []
    for h, fp in stream:
        cid, match = index.resolve(h, fp)
        got.append((cid, match.kind if match else None, match.similarity if match else None))
    expected = _reference_resolve(stream)
    assert got == expected
    kinds = [k for _, k, _ in got]
    assert kinds.count("exact") > 20 and kinds.count("near") > 20 and kinds.count(None) > 100
    assert index.comparisons <= index.candidates


def test_silent_clips_take_ids_and_match_nothing():
    rng = np.random.default_rng(4)
    index = ClipIndex()
    fp = _fp(rng)
    assert index.resolve("a", fp) == (0, None)
    assert index.resolve(None, None) == (1, None)
    assert index.resolve(None, fp) == (2, None)
    cid, match = index.resolve("b", fp)
    assert cid == 0 and match is not None and match.kind == "near"
    assert len(index) == 3


def test_a_fingerprint_survives_json_exactly() -> None:
    """What a rank writes of a clip (merge dedups by it) is the fingerprint itself, phases and flags included."""
    import json

    from audiodata.dedup.fingerprint import fingerprint, fingerprint_from_json, fingerprint_to_json

    rng = np.random.default_rng(3)
    fp = fingerprint((rng.standard_normal(16000 * 2) * 3000).astype(np.int16), 16000)
    back = fingerprint_from_json(json.loads(json.dumps(fingerprint_to_json(fp))))
    assert back.seconds == fp.seconds and len(back.phases) == len(fp.phases) > 0
    for a, b in [(back.bits, fp.bits), (back.voiced, fp.voiced), (back.sketch, fp.sketch)] + [
        (x, y) for (pb, pv), (qb, qv) in zip(back.phases, fp.phases, strict=True) for x, y in ((pb, qb), (pv, qv))
    ]:
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
