"""The stages of ``dedup --engine ray`` (map by LSH key, shuffle, verify), run in this process, then the keep-first
replay through :class:`PairedClips`, give the local clip index's answer clip by clip: the same canonical ids, matches,
similarities and comparison count, on a stream of exact copies, near copies of every closeness, chains of copies and
a crowded key, cut into blocks of any size (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from audiodata.dedup import index as dedup_index
from audiodata.dedup.fingerprint import Fingerprint
from audiodata.dedup.index import ClipIndex
from audiodata.pipeline.raydedup import PairedClips, staged_matches
from tests.dedup.test_clip_index import _fp, _near


def _stream(seed: int, count: int) -> list[tuple[str, Fingerprint]]:
    rng = np.random.default_rng(seed)
    stream: list[tuple[str, Fingerprint]] = []
    crowded = rng.integers(0, 2, dedup_index.KEY_BITS, dtype=np.uint8)
    for i in range(count):
        u = rng.random()
        if stream and u < 0.1:
            stream.append(stream[int(rng.integers(len(stream)))])  # an exact copy (same hash)
        elif stream and u < 0.5:
            _, parent = stream[int(rng.integers(len(stream)))]
            stream.append((f"n{i}", _near(rng, parent, float(rng.uniform(0.0, 0.25)), int(rng.integers(0, 80)))))
        else:
            fp = _fp(rng)
            if u > 0.9:  # one table's key alike in many clips: a crowded bucket
                bits = np.unpackbits(fp.sketch.view(np.uint8), bitorder="little")
                bits[dedup_index._POSITIONS[5]] = crowded
                fp = Fingerprint(fp.bits, fp.voiced, np.packbits(bits, bitorder="little").view("<u2"), fp.seconds)
            stream.append((f"d{i}", fp))
    return stream


def _blocks(stream: list[tuple[str, Fingerprint]], seed: int) -> list[list[tuple[str, Fingerprint]]]:
    rng = np.random.default_rng(seed)
    out: list[list[tuple[str, Fingerprint]]] = []
    at = 0
    while at < len(stream):
        size = int(rng.integers(1, 40))
        out.append(stream[at : at + size])
        at += size
    return out


@pytest.mark.parametrize("seed", [3, 11])
def test_the_stages_give_the_local_index_answer(seed: int) -> None:
    stream = _stream(seed, 500)
    blocks = _blocks(stream, seed)
    matches, degenerate = staged_matches([[fp for _, fp in b] for b in blocks], partitions=3, verifiers=2)
    assert not degenerate
    local, paired = ClipIndex(), PairedClips(matches, True, dedup_index.NEAR_THRESHOLD)
    got, expected = [], []
    for b, block in enumerate(blocks):
        for k, (h, fp) in enumerate(block):
            cid, match = local.resolve(h, fp)
            expected.append((cid, match.kind if match else None, match.similarity if match else None, match and match.clip))
            cid, match = paired.resolve(h, (b, k))
            got.append((cid, match.kind if match else None, match.similarity if match else None, match and match.clip))
    assert got == expected
    kinds = [k for _, k, _, _ in got]
    assert kinds.count("exact") > 20 and kinds.count("near") > 40 and kinds.count(None) > 150
    assert paired.comparisons == local.comparisons > 40  # the same clips compared, not just the same winners


def test_a_key_shared_past_the_bucket_limit_is_reported() -> None:
    """The local index skips a bucket fuller than MAX_BUCKET, depending on which clips were kept: the shuffle says
    so, and the driver then resolves the run from the fingerprints as the local run does."""
    blocks = [[fp for _, fp in b] for b in _blocks(_stream(5, 300), 5)]
    assert staged_matches(blocks)[1] is False
    assert staged_matches(blocks, limit=6)[1] is True  # the crowded key holds more than 6 clips
