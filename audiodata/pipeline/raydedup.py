"""``dedup --engine ray`` (near mode): fuzzy dedup as a cluster does it (NeMo Curator, datatrove), giving exactly the
clusters the local run gives, keep-first by global input order.

Stages, each on the cluster, only small things reaching the driver:

1. **fingerprint**: the lint/dedup workers' own analysis (:class:`audiodata.pipeline.lint.Analyser`) of a batch of
   records, on Ray actors set up once. Each block returns three things: what the driver needs of each record
   (where it is, kind, clip hashes, conversation digests: ~100 bytes), the block's fingerprints (~0.8 KB a clip,
   left in the object store), and the clips' LSH keys (the 32 table keys :mod:`audiodata.dedup.index` buckets
   clips by) split into ``P`` partitions by key: the map side of the shuffle.
2. **band shuffle**: partition ``p`` gathers every block's keys of ``p``; clips sharing a key are candidates, each
   pair (earlier, later) sent on by the later clip's block.
3. **verify**: each partition of pairs fetches the fingerprints of the blocks it names and applies the very tests of
   :meth:`ClipIndex.find <audiodata.dedup.index.ClipIndex.find>` (the sketch-distance filter, then the bit error
   rate), returning the pairs that pass the filter with their similarity.
4. **keep-first** on the driver: the records are replayed in global order through the one
   :class:`~audiodata.dedup.index.RecordDeduper`, whose clip index (:class:`PairedClips`) takes a clip's candidates
   from the verified pairs instead of its buckets. Local near dedup compares a clip with the earlier *kept*
   clips sharing a key; the pairs hold every earlier clip sharing a key, and the replay keeps those whose earlier
   clip was kept, so it compares exactly the clips the local index compares, in the same order, with the same
   similarity: the same clusters, matches, similarities, conflicts and comparison count.

One case is not distributed: the local index skips a bucket holding more than
:data:`~audiodata.dedup.index.MAX_BUCKET` clips (degenerate audio), and which clips a bucket holds when depends
on which were kept. A key shared by that many clips is reported by the shuffle, and the driver then resolves the
run as the local run does, from the fingerprints (fetched block by block). Exact mode needs no shuffle: its
records are analysed on the cluster (:func:`audiodata.pipeline.raymap.ray_ordered_map`) and checked here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from audiodata.dedup import index as dedup_index
from audiodata.dedup.fingerprint import Fingerprint, similarity
from audiodata.dedup.index import (
    KEY_TABLES,
    MAX_SKETCH_DISTANCE,
    MAX_SKETCH_DISTANCE_ONE_BAND,
    ClipIndex,
    ClipMatch,
    RecordDeduper,
    RecordInfo,
    _keys,
)
from audiodata.pipeline.lint import Analysis, Job, LintTask, ProgressFn, record_jobs
from audiodata.pipeline.options import ConvertOptions
from audiodata.readers.sources import InputFile

#: A clip of the run: (block, position among the block's fingerprints). Blocks are numbered in input order (the
#: ``--against`` dataset's block first), so these pairs sort in global order.
ClipKey = tuple[int, int]
#: What the driver keeps of a record: (file number, index, line, dedup) with dedup (kind, [(pcm hash, clip
#: position or -1)], prompt digest, response digest), or None when the record is not checked (convert rejects it).
Meta = tuple[int, int, int | None, tuple[str, list[tuple[str | None, int]], bytes, bytes] | None]
#: Keys of a shuffle partition: one row per (clip, table key).
#: Records per fingerprint block (task): ~1.8 MB of fingerprints at ~7 KB a clip, and few enough blocks that the
#: shuffle's objects (blocks x partitions) stay in the hundreds of thousands at a million clips.
BLOCK_RECORDS = 256
#: Shuffle (and verify) partitions: one per CPU, at most this many (each block writes one object per partition).
MAX_PARTITIONS = 64
_KEYS = np.dtype([("key", np.int64), ("block", np.int32), ("clip", np.int32)])
_PAIRS = np.dtype([("bi", np.int32), ("ki", np.int32), ("bj", np.int32), ("kj", np.int32)])
_VERIFIED = np.dtype([("bi", np.int32), ("ki", np.int32), ("bj", np.int32), ("kj", np.int32), ("sim", np.float64)])


def key_rows(prints: list[Fingerprint], block: int, partitions: int) -> list[np.ndarray]:
    """The map side of the shuffle: one row per (clip, table key) of a block's fingerprints, split into
    ``partitions`` parts by key."""
    rows = np.zeros(len(prints) * KEY_TABLES, _KEYS)
    rows["block"] = block
    for k, fp in enumerate(prints):
        rows["key"][k * KEY_TABLES : (k + 1) * KEY_TABLES] = _keys(fp)
        rows["clip"][k * KEY_TABLES : (k + 1) * KEY_TABLES] = k
    part = rows["key"] % partitions
    return [rows[part == p] for p in range(partitions)]


def _block(metas: list[Meta], prints: list[Fingerprint], block: int, partitions: int) -> tuple[Any, ...]:
    """A block's outputs: (metas, the fingerprints' bytes), fingerprints, then its LSH key rows in ``partitions`` parts."""
    return ((metas, sum(fp.nbytes for fp in prints)), prints, *key_rows(prints, block, partitions))


def _fingerprint_block(block: int, batch: list[Job], partitions: int) -> tuple[Any, ...]:
    """Stage 1 on a worker (its :class:`Analyser` set up by the actor): a batch of records analysed as local dedup
    analyses them, returned as :func:`_block` says. ``block`` numbers the block's keys."""
    from audiodata.pipeline import lint

    metas: list[Meta] = []
    prints: list[Fingerprint] = []
    for packed, (_, n, index, line, _) in zip(lint._analyse(batch), batch, strict=True):
        a = Analysis.unpack(packed)
        metas.append((n, index, line, _meta(a.dedup, prints)))
    return _block(metas, prints, block, partitions)


def _meta(dedup: tuple[Any, ...] | None, prints: list[Fingerprint]) -> Any:
    """A record's dedup tuple with each fingerprint moved into ``prints`` and named by its position there."""
    if dedup is None:
        return None
    kind, clips, prompt, response = dedup
    named: list[tuple[str | None, int]] = []
    for pcm_hash, fp in clips:
        if fp is None:
            named.append((pcm_hash, -1))
        else:
            named.append((pcm_hash, len(prints)))
            prints.append(fp)
    return (kind, named, prompt, response)


def _reference_block(against: str, partitions: int) -> tuple[Any, ...]:
    """Stage 1 for the ``--against`` dataset (block 0): its records as dedup sees them (stored fingerprints)."""
    from audiodata.dedup.stored import reference_records

    metas: list[Any] = []
    prints: list[Fingerprint] = []
    for info in reference_records(against, near=True):
        dedup = (info.kind, info.clips, info.prompt, info.response)
        metas.append((info.source, info.index, info.line, _meta(dedup, prints)))
    return _block(metas, prints, 0, partitions)


def candidate_pairs(verifiers: int, limit: int, *parts: np.ndarray) -> tuple[Any, ...]:
    """Stage 2, one shuffle partition: every pair of clips sharing a key (earlier, later), split into ``verifiers``
    parts by the later clip's block; last, (whether a key is shared by more than ``limit`` clips, the most a local bucket
    is searched at, how many pairs)."""
    rows = np.concatenate(parts) if parts else np.zeros(0, _KEYS)
    rows = np.sort(rows, order=("key", "block", "clip"))
    pairs: list[np.ndarray] = []
    degenerate = False
    if rows.size:
        starts = np.flatnonzero(np.r_[True, rows["key"][1:] != rows["key"][:-1]])
        sizes = np.diff(np.r_[starts, rows.size])
        for s, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
            if size > limit:
                degenerate = True
                continue
            group = rows[s : s + size]
            i, j = np.triu_indices(size, 1)
            p = np.zeros(i.size, _PAIRS)
            p["bi"], p["ki"], p["bj"], p["kj"] = group["block"][i], group["clip"][i], group["block"][j], group["clip"][j]
            pairs.append(p)
    allp = np.concatenate(pairs) if pairs else np.zeros(0, _PAIRS)
    part = allp["bj"] % verifiers
    return (*(allp[part == v] for v in range(verifiers)), (degenerate, int(allp.size)))


def verify_pairs(fetch: Callable[[list[int]], list[list[Fingerprint]]], *parts: np.ndarray) -> np.ndarray:
    """Stage 3, one partition of pairs: each distinct pair through :meth:`ClipIndex.find`'s tests (the later clip is
    the query, with its sub-frame phases; the earlier one as the index stores it), those passing the sketch filter
    returned with their similarity. ``fetch(blocks)`` gives those blocks' fingerprints."""
    pairs = np.unique(np.concatenate(parts)) if parts else np.zeros(0, _PAIRS)
    if not pairs.size:
        return np.zeros(0, _VERIFIED)
    needed = sorted(set(pairs["bi"].tolist()) | set(pairs["bj"].tolist()))
    blocks = dict(zip(needed, fetch(needed), strict=True))
    out = np.zeros(pairs.size, _VERIFIED)
    kept = 0
    for bi, ki, bj, kj in pairs.tolist():
        a, b = blocks[bj][kj], blocks[bi][ki]
        distance = int(np.bitwise_count(a.sketch ^ b.sketch).sum())
        agree = int((a.sketch == b.sketch).sum())
        if distance > MAX_SKETCH_DISTANCE or (agree <= 1 and distance > MAX_SKETCH_DISTANCE_ONE_BAND):
            continue
        out[kept] = (bi, ki, bj, kj, similarity(a, b.slim()))
        kept += 1
    return out[:kept]


def _verify(prints: list[Any], *parts: np.ndarray) -> np.ndarray:
    """:func:`verify_pairs` as a Ray task: ``prints`` are the blocks' fingerprint refs, fetched as needed."""
    import ray

    return verify_pairs(lambda needed: ray.get([prints[b] for b in needed]), *parts)


def pair_matches(verified: list[np.ndarray]) -> dict[ClipKey, list[tuple[ClipKey, float]]]:
    """Per later clip, its verified earlier clips in global order, with their similarity: :class:`PairedClips`'s input."""
    matches: dict[ClipKey, list[tuple[ClipKey, float]]] = defaultdict(list)
    for found in verified:
        for bi, ki, bj, kj, sim in found.tolist():
            matches[(bj, kj)].append(((bi, ki), sim))
    for m in matches.values():
        m.sort()
    return dict(matches)


def staged_matches(
    blocks: list[list[Fingerprint]], partitions: int = 3, verifiers: int = 2, limit: int | None = None
) -> tuple[dict[ClipKey, list[tuple[ClipKey, float]]], bool]:
    """The three stages in this process, over ``blocks`` of fingerprints (block ``b``'s clip ``k`` is ``(b, k)``):
    the verified pairs as :class:`PairedClips` takes them, and whether a key was degenerate. What the Ray stages
    compute, without Ray (the tests hold it to the local index)."""
    limit = dedup_index.MAX_BUCKET if limit is None else limit
    rows = [key_rows(prints, b, partitions) for b, prints in enumerate(blocks)]
    shuffled = [candidate_pairs(verifiers, limit, *(r[p] for r in rows)) for p in range(partitions)]
    degenerate = any(c[-1][0] for c in shuffled)
    verified = [verify_pairs(lambda needed: [blocks[b] for b in needed], *(c[v] for c in shuffled)) for v in range(verifiers)]
    return pair_matches(verified), degenerate


class PairedClips(ClipIndex):
    """:class:`ClipIndex` whose candidates are the verified pairs of the band shuffle. A clip's "fingerprint" here
    is its :data:`ClipKey`; :meth:`find` walks the clip's verified earlier clips in global order, keeps those that
    were kept (a canonical clip id, as the local buckets hold only those) and picks the best as the local index does."""

    def __init__(self, matches: dict[ClipKey, list[tuple[ClipKey, float]]], near: bool, threshold: float) -> None:
        super().__init__(near=False, threshold=threshold)  # no buckets: the pairs are the candidates
        self.near = near
        self.matches = matches
        self.canonical: dict[ClipKey, int] = {}

    def find(self, pcm_hash: str, fp: Any) -> ClipMatch | None:
        hit = self.by_hash.get(pcm_hash)
        if hit is not None:
            return ClipMatch(hit, "exact", 1.0)
        if not self.near or fp is None:
            return None
        best, best_sim = None, self.threshold
        for other, sim in self.matches.get(fp, ()):
            cid = self.canonical.get(other)
            if cid is None:
                continue  # that clip matched an earlier one: the local index never held it
            self.comparisons += 1
            if sim > best_sim or (best is None and sim == best_sim):
                best, best_sim = cid, sim
        return None if best is None else ClipMatch(best, "near", round(best_sim, 4))

    def add(self, pcm_hash: str, fp: Any) -> int:
        cid = self.prints.add(None)
        self.by_hash.setdefault(pcm_hash, cid)
        if fp is not None:
            self.canonical[fp] = cid
        return cid


@dataclass
class Stages:
    """What the stages did, for the summary and the benchmark: blocks, clips, keys shuffled, pairs."""

    blocks: int = 0
    clips: int = 0  # fingerprinted clips (silent ones have none)
    print_bytes: int = 0  # their fingerprints, as the verify stage fetches them (with the query phases)
    key_bytes: int = 0  # the LSH key rows shuffled
    pairs: int = 0
    verified: int = 0
    degenerate: bool = False


def near_on_ray(
    files: list[InputFile],
    opts: ConvertOptions,
    task: LintTask,
    deduper: RecordDeduper,
    against: str | None,
    on_progress: ProgressFn | None = None,
    on_stage: Callable[[str], None] | None = None,
    stages: Stages | None = None,
) -> Iterator[tuple[bool, RecordInfo | None]]:
    """Near dedup of ``files`` on the connected Ray cluster: ``(reference, record info or None)`` for every record
    (the ``--against`` dataset's first), in global order, each already checked by ``deduper`` (whose clip index this
    replaces with :class:`PairedClips`): the caller counts. ``on_stage(name)`` as each stage starts; ``stages`` is
    filled with what the stages moved."""
    from audiodata.pipeline import lint
    from audiodata.pipeline.rayengine import get, start
    from audiodata.pipeline.raymap import Stage, cpus
    from audiodata.pipeline.raymap import task as remote_job

    ray, _ = start(None)
    workers = cpus(ray)
    parts = min(workers, MAX_PARTITIONS)
    stages = stages if stages is not None else Stages()
    say = on_stage or (lambda _: None)
    say("fingerprint")
    stage = Stage(ray, lint._init_worker, (task,))
    fingerprint = remote_job(ray, num_returns=2 + parts)
    blocks: list[tuple[Any, ...]] = []  # per block: (metas, prints, *keys) refs
    if against is not None:
        blocks.append(fingerprint.remote(stage, _reference_block, str(against), parts))
    total = sum(f.size for f in files)
    done_bytes = [0]
    records = 0
    pending: dict[Any, int] = {}  # metas ref -> records

    def file_done(n: int) -> None:
        done_bytes[0] = n

    def settle(wait_all: bool) -> None:
        nonlocal records
        while pending and (wait_all or len(pending) > 2 * workers + 1):
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                records += pending.pop(ref)
                get(ray, ref)  # a worker's error (after Ray's retries) stops the run here
            if on_progress:
                on_progress(done_bytes[0], total, records)

    def submit(block: list[Job]) -> None:
        refs = fingerprint.remote(stage, _fingerprint_block, len(blocks), block, parts)
        blocks.append(tuple(refs))
        pending[refs[0]] = len(block)
        settle(False)

    gathered: list[Job] = []
    for batch, _ in record_jobs(files, opts, task, file_done):
        gathered += batch
        if len(gathered) >= BLOCK_RECORDS:
            submit(gathered)
            gathered = []
    if gathered:
        submit(gathered)
    settle(True)
    stages.blocks = len(blocks)
    say("band shuffle")
    verifiers = parts
    shuffle = remote_job(ray, num_returns=verifiers + 1)  # on the workers the fingerprint stage warmed
    limit = dedup_index.MAX_BUCKET
    candidate = [shuffle.remote(stage, candidate_pairs, verifiers, limit, *(b[2 + p] for b in blocks)) for p in range(parts)]
    counts = get(ray, [c[-1] for c in candidate])
    stages.degenerate = degenerate = any(d for d, _ in counts)
    stages.pairs = sum(n for _, n in counts)
    prints = [b[1] for b in blocks]
    if not degenerate:
        say("verify")
        verify = remote_job(ray)
        verified = get(ray, [verify.remote(stage, _verify, prints, *(c[v] for c in candidate)) for v in range(verifiers)])
        stages.verified = sum(v.size for v in verified)
        deduper.clips = PairedClips(pair_matches(verified), deduper.near, deduper.threshold)
    say("keep-first")
    for b, refs in enumerate(blocks):
        metas, nbytes = get(ray, refs[0])
        stages.print_bytes += nbytes
        fps = get(ray, refs[1]) if degenerate else None
        reference = against is not None and b == 0
        for n, index, line, dedup in metas:
            if dedup is not None:
                fingerprinted = sum(1 for _, k in dedup[1] if k >= 0)
                stages.clips += fingerprinted
                stages.key_bytes += fingerprinted * KEY_TABLES * _KEYS.itemsize
            if dedup is None:
                yield reference, None
                continue
            kind, named, prompt, response = dedup
            # the local index's fingerprints (the fallback), else the clip's name in the verified pairs
            clips = cast(Any, [(h, (fps[k] if fps is not None else (b, k)) if k >= 0 else None) for h, k in named])
            source = n if reference else files[n].display
            info = RecordInfo(source, index, line, kind, clips, prompt, response, reference=reference)
            deduper.check(info)
            yield reference, info


__all__ = [
    "BLOCK_RECORDS",
    "MAX_PARTITIONS",
    "PairedClips",
    "Stages",
    "candidate_pairs",
    "key_rows",
    "near_on_ray",
    "pair_matches",
    "staged_matches",
    "verify_pairs",
]
